#!/usr/bin/env bash
# Start or stop a throwaway PostgreSQL server on 127.0.0.1 for tests and benchmarks.
#   source .ci/pg.sh start [PORT]   -> exports ADVDB_TEST_PG_URL
#   source .ci/pg.sh stop
# Installs Debian's postgresql package when no server binaries are found (needs root).
set -u
pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
    echo "installing PostgreSQL server (apt-get install postgresql)..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) >&2 || return 1
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  fi
  echo "$d"
}
case "${1:-start}" in
  start)
    PGPORT_TEST=${2:-55432}
    BIN=$(pg_bindir) || { echo "no PostgreSQL server binaries" >&2; return 1 2>/dev/null || exit 1; }
    export ADVDB_PG_DIR=$(mktemp -d /tmp/advdb-pg.XXXXXX)
    chown postgres "$ADVDB_PG_DIR" 2>/dev/null || true
    RUN="runuser -u postgres --"; [ "$(id -u)" != 0 ] && RUN=""
    $RUN "$BIN/initdb" -D "$ADVDB_PG_DIR/data" -U postgres -A trust --no-sync >/dev/null
    $RUN "$BIN/pg_ctl" -D "$ADVDB_PG_DIR/data" -w -l "$ADVDB_PG_DIR/log" \
      -o "-p $PGPORT_TEST -c listen_addresses=127.0.0.1 -c unix_socket_directories=$ADVDB_PG_DIR -c fsync=off -c max_connections=200" start >/dev/null
    "$BIN/createdb" -h 127.0.0.1 -p "$PGPORT_TEST" -U postgres advdb_test
    export ADVDB_PG_BIN="$BIN"
    export ADVDB_TEST_PG_URL="postgresql://postgres@127.0.0.1:$PGPORT_TEST/advdb_test"
    echo "PostgreSQL up: $ADVDB_TEST_PG_URL" >&2
    ;;
  stop)
    if [ -n "${ADVDB_PG_DIR:-}" ] && [ -d "$ADVDB_PG_DIR/data" ]; then
      RUN="runuser -u postgres --"; [ "$(id -u)" != 0 ] && RUN=""
      $RUN "$ADVDB_PG_BIN/pg_ctl" -D "$ADVDB_PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
      rm -rf "$ADVDB_PG_DIR"
    fi
    ;;
esac
