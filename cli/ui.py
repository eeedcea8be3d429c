"""``advdb ui``: a local, read-only web view of the store."""

from __future__ import annotations

import typer

from . import render
from .context import State
from .errors import command

app = typer.Typer()


@command(app, "ui")
def ui(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 shares it on the network)."),
    port: int = typer.Option(8765, "--port", help="Port to listen on."),
    query_timeout: float = typer.Option(
        10.0, "--query-timeout", help="Seconds a SQL-box query may run before it is stopped."
    ),
    memory_limit: str = typer.Option("4GB", "--memory-limit", help="DuckDB's memory limit for the view's queries."),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="ADVDB_UI_TOKEN",
        show_envvar=True,
        help="Token the browser must show; one is made up and printed when serving beyond 127.0.0.1.",
    ),
    allowed_host: list[str] = typer.Option(
        [], "--allowed-host", help="Another Host name the view answers to (repeatable); others get 403."
    ),
) -> None:
    """Browse runs, trajectories, comparisons and reports in a web browser (read-only)."""
    from advdb.analytics.query import checked_location
    from advdb.errors import ConfigError, check_finite
    from advdb.web import UiSettings, serve
    from advdb.web.guard import needs_token, new_token
    from advdb.web.reader import check_memory_limit

    if not 0 < port < 65536:
        raise ConfigError(f"--port must be between 1 and 65535, got {port}")
    check_finite("query-timeout", query_timeout, positive=True)
    check_memory_limit(memory_limit)
    if token is not None and not token.strip():
        raise ConfigError("--token (or ADVDB_UI_TOKEN) must not be empty")
    made_up = token is None and needs_token(host)
    token = new_token() if made_up else token
    location = checked_location(State.db)
    where = "this machine only" if not needs_token(host) else f"the network at {host}"
    shown = "localhost" if host in ("0.0.0.0", "::") else (f"[{host}]" if ":" in host else host)
    url = f"http://{shown}:{port}/" + (f"?token={token}" if made_up else "")
    render.err_console.print(
        f"advdb ui: {location.masked}, read-only, at {url} (listening on {where}; Ctrl-C stops it)",
        markup=False,
    )
    if token is not None and not made_up:
        render.err_console.print("advdb ui: a token is needed (the one given with --token or ADVDB_UI_TOKEN)")
    settings = UiSettings(
        host=host,
        port=port,
        token=token,
        allowed_hosts=tuple(allowed_host),
        query_timeout=query_timeout,
        memory_limit=memory_limit,
    )
    serve(location, settings)
