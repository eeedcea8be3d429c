"""`advdb ui` under load: the UI as a process on a small digits store, N concurrent clients
for S seconds on the runs list, a run page, an image and the SQL box (small queries), while an
attack run commits batches in another process and one runaway query runs in the SQL box.

    python benchmarks/ui_load.py                      # 32 clients, 30 s
    python benchmarks/ui_load.py --clients 8 --seconds 10

Prints p50/p95 per page and the error count: every answer must be 200, apart from the
runaway's own answer (400, "ran past the … s limit").
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import defaultdict
from pathlib import Path

RUNAWAY = "SELECT count(*) FROM range(100000000000) a, range(10) b"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str, timeout: float = 60) -> tuple[int, bytes]:
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        con.request("GET", path, headers={"Host": f"localhost:{port}"})
        r = con.getresponse()
        return r.status, r.read()
    finally:
        con.close()


def small_store(url: str) -> tuple[int, int]:
    """A finished 24-image digits attack run; returns (run id, an image id with a file)."""
    from advdb.analytics import run_sql
    from advdb.analytics.query import checked_location
    from advdb.runner import run_attack
    from advdb.spec import AttackSpec
    from advdb.store import open_store

    spec = AttackSpec(params={"loss": "ce-sign", "mode": "equal-perturbation", "iterations": 20}, n=24, batch_size=8)
    with open_store(url) as store:
        run = run_attack(store, spec)
    image = run_sql(checked_location(url), f"SELECT min(image_id) AS i FROM artifacts WHERE run_id = {run}")
    return run, int(image.to_pylist()[0]["i"])


def start_ui(url: str, port: int, timeout: float) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "advdb", "--db", url, "ui", "--port", str(port), "--query-timeout", str(timeout)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"advdb ui exited: {proc.stderr.read() if proc.stderr else ''}") from None
            time.sleep(0.2)
    raise SystemExit("advdb ui did not start within 60 s")


def client(port: int, pages: dict[str, str], until: float, times: dict[str, list[float]], errors: list[str]) -> None:
    while time.monotonic() < until:
        for name, path in pages.items():
            t0 = time.perf_counter()
            try:
                status, _ = get(port, path)
            except OSError as exc:
                errors.append(f"{name}: {exc}")
                continue
            times[name].append(time.perf_counter() - t0)
            if status != 200:
                errors.append(f"{name}: HTTP {status}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--query-timeout", type=float, default=10.0)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    home = Path(tempfile.mkdtemp(prefix="advdb-bench-ui-load-"))
    url = f"sqlite:///{home / 'store.db'}"
    run, image = small_store(url)
    port = free_port()
    ui = start_ui(url, port, args.query_timeout)
    attack = subprocess.Popen(
        [sys.executable, "-m", "advdb", "--db", url, "attack", "--loss", "logit", "-n", "400", "-b", "16"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pages = {
        "runs": "/",
        "run page": f"/runs/{run}",
        "image": f"/image/{run}/{image}/adversarial.png",
        "sql box": "/sql?" + urllib.parse.urlencode({"q": "SELECT loss, count(*) AS n FROM runs GROUP BY 1"}),
    }
    times: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    runaway: dict[str, object] = {}

    def run_away() -> None:
        t0 = time.perf_counter()
        status, body = get(port, "/sql?" + urllib.parse.urlencode({"q": RUNAWAY}), timeout=args.query_timeout + 60)
        runaway.update(status=status, seconds=time.perf_counter() - t0, cut=b"ran past the" in body)

    until = time.monotonic() + args.seconds
    threads = [threading.Thread(target=run_away)] + [
        threading.Thread(target=client, args=(port, pages, until, times, errors)) for _ in range(args.clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batches = get(
        port, "/sql?" + urllib.parse.urlencode({"q": f"SELECT count(*) AS n FROM batches WHERE run_id > {run}"})
    )
    attack.terminate()
    ui.terminate()
    attack.wait()
    ui.wait()
    print(f"{args.clients} clients for {args.seconds:g} s; an attack run committing meanwhile; one runaway query")
    for name in pages:
        ts = sorted(times[name])
        p95 = ts[min(len(ts) - 1, int(0.95 * len(ts)))] if ts else float("nan")
        median = statistics.median(ts) if ts else float("nan")
        print(f"  {name:10s} {len(ts):6d} requests  p50 {median * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms")
    print(
        f"  runaway: HTTP {runaway.get('status')} after {runaway.get('seconds', float('nan')):.1f} s "
        f"(cut at the limit: {runaway.get('cut')}); the attack's batches visible at the end: "
        f"{b'<td>' in batches[1] and batches[1].split(b'<td>')[1].split(b'<')[0].decode()}"
    )
    print(f"  errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))


if __name__ == "__main__":
    main()
