"""``advdb docs``: build the documentation site (MkDocs) and serve it locally, offline.

The site's sources are ``mkdocs.yml`` and ``docs/`` in a checkout of advdb; the built site
goes to ``$ADVDB_HOME/docs-site`` (or ``--site-dir``) and is rebuilt only when a source is
newer than it. Serving is Python's own HTTP server on the built files: no CDN, no reload
server, nothing fetched.
"""

from __future__ import annotations

import functools
from pathlib import Path

import typer

from . import render
from .errors import command

app = typer.Typer()

STAMP = ".advdb-docs-built"


def checkout_root() -> Path:
    """The checkout this command runs from (``mkdocs.yml`` beside ``cli/``)."""
    return Path(__file__).resolve().parents[1]


def _sources(root: Path) -> list[Path]:
    code = [root / "advdb" / "api.py", root / "advdb" / "record.py"]  # the API reference's docstrings
    return [root / "mkdocs.yml", *code, *(p for p in (root / "docs").rglob("*") if p.is_file())]


def needs_build(root: Path, site: Path) -> bool:
    """True when ``site`` was never built or a source (mkdocs.yml, docs/, the API modules) changed since."""
    stamp = site / STAMP
    if not stamp.is_file():
        return True
    built = stamp.stat().st_mtime
    return any(p.stat().st_mtime > built for p in _sources(root))


def build_site(root: Path, site: Path) -> None:
    """Build the site into ``site`` with ``--strict`` semantics (a warning is an error)."""
    from advdb.errors import ConfigError

    config_file = root / "mkdocs.yml"
    if not config_file.is_file():
        raise ConfigError(f"advdb docs needs a checkout of advdb's sources: {config_file} not found")
    try:
        from mkdocs.commands.build import build
        from mkdocs.config import load_config
        from mkdocs.exceptions import Abort, ConfigurationError
    except ImportError:
        raise ConfigError("advdb docs needs MkDocs: pip install -e '.[docs]'") from None
    try:
        config = load_config(str(config_file), site_dir=str(site), strict=True)
        build(config)
    except (Abort, ConfigurationError) as exc:
        raise ConfigError(f"the documentation does not build: {exc}") from None
    (site / STAMP).write_text("")


def _default_site() -> Path:
    from advdb.config import advdb_home

    return advdb_home() / "docs-site"


def serve_site(site: Path, host: str, port: int) -> None:
    """Serve the built files until Ctrl-C."""
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(site))
    with ThreadingHTTPServer((host, port), handler) as server:
        render.err_console.print(f"advdb docs: {site} at http://{host}:{server.server_port}/ (Ctrl-C stops it)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


@command(app, "docs")
def docs(
    build_only: Path | None = typer.Option(
        None, "--build-only", metavar="DIR", help="Build the site into DIR and exit (no server)."
    ),
    site_dir: Path | None = typer.Option(
        None, "--site-dir", metavar="DIR", help="Where to build and serve from [default: $ADVDB_HOME/docs-site]."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on (0: any free port)."),
) -> None:
    """Build the documentation site (if needed) and serve it locally, offline."""
    from advdb.errors import ConfigError

    if not 0 <= port < 65536:
        raise ConfigError(f"--port must be between 0 and 65535, got {port}")
    root = checkout_root()
    if build_only is not None:
        build_site(root, build_only.resolve())
        render.err_console.print(f"advdb docs: built into {build_only}")
        return
    site = (site_dir or _default_site()).resolve()
    if needs_build(root, site):
        render.err_console.print(f"advdb docs: building the site into {site} …")
        build_site(root, site)
    serve_site(site, host, port)
