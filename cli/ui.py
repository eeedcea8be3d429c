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
) -> None:
    """Browse runs, trajectories, comparisons and reports in a web browser (read-only)."""
    from advdb.analytics.query import checked_location
    from advdb.errors import ConfigError
    from advdb.web import serve

    if not 0 < port < 65536:
        raise ConfigError(f"--port must be between 1 and 65535, got {port}")
    location = checked_location(State.db)
    where = "this machine only" if host in ("127.0.0.1", "localhost", "::1") else f"the network at {host}"
    render.err_console.print(
        f"advdb ui: {location.masked}, read-only, at http://{host}:{port}/ (listening on {where}; Ctrl-C stops it)"
    )
    serve(location, host=host, port=port)
