"""The documentation site: it builds with --strict, its generated pages match the code, and the
guides' marked examples run.

A block is run when the line before its fence is ``<!-- exec -->``; the blocks of one page run in
order, in one fresh folder with one fresh SQLite store, with sizes made tiny (``--n``/``-n`` at
most 16, ``--iterations``/``-T`` at most 5, and the same for ``n=``/``iterations=`` in Python).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXEC = re.compile(r"^<!-- exec -->\n```(bash|python)\n(.*?)^```$", re.S | re.M)
SIZES = [
    (re.compile(r"(--n|-n)([ =])(\d+)"), 16),
    (re.compile(r"(--iterations|-T)([ =])(\d+)"), 5),
    (re.compile(r"\b(n|iterations)(=)(\d+)"), None),
]


def tiny(code: str) -> str:
    """The block with its image counts and iteration budgets made tiny."""
    for pattern, cap in SIZES:

        def sub(m: re.Match[str], cap: int | None = cap) -> str:
            limit = cap if cap is not None else (16 if m.group(1) == "n" else 5)
            return f"{m.group(1)}{m.group(2)}{min(int(m.group(3)), limit)}"

        code = pattern.sub(sub, code)
    return code


def exec_blocks() -> dict[str, list[tuple[str, str]]]:
    pages: dict[str, list[tuple[str, str]]] = {}
    for page in sorted(DOCS.rglob("*.md")):
        blocks = EXEC.findall(page.read_text())
        if blocks:
            pages[str(page.relative_to(DOCS))] = blocks
    return pages


def test_generated_pages_match_the_code() -> None:
    from advdb.cli.reference import stale_pages

    assert stale_pages(ROOT) == [], "run: python -m advdb.cli.reference --write"


def test_every_command_and_option_is_in_the_cli_reference() -> None:
    import typer.main

    from advdb.cli.app import app
    from advdb.cli.reference import commands

    page = (DOCS / "reference" / "cli.md").read_text()
    paths = list(commands())
    assert ["docs"] in paths and ["attack"] in paths and ["db", "upgrade"] in paths
    root = typer.main.get_command(app)
    for path in paths:
        assert f"## `{' '.join(['advdb', *path])}`" in page
        cmd = root
        for name in path:
            cmd = cmd.get_command(None, name)  # type: ignore[attr-defined]
        for param in cmd.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("-"):
                    assert opt in page, f"advdb {' '.join(path)} {opt} is not in docs/reference/cli.md"


def test_a_column_without_a_description_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from advdb.cli import reference
    from advdb.errors import ConfigError

    docs = {t: dict(cols) for t, cols in reference.COLUMN_DOCS.items()}
    del docs["trajectory"]["p_target"]
    monkeypatch.setattr(reference, "COLUMN_DOCS", docs)
    with pytest.raises(ConfigError, match=r"trajectory\.p_target has no description"):
        reference.schema_page()
    docs["trajectory"]["p_target"] = "x"
    docs["trajectory"]["gone"] = "a column that does not exist"
    with pytest.raises(ConfigError, match=r"trajectory\.gone"):
        reference.schema_page()


def test_every_report_query_and_table_is_on_its_page() -> None:
    from advdb.store.models import Base

    schema = (DOCS / "reference" / "schema.md").read_text()
    queries = (DOCS / "reference" / "queries.md").read_text()
    assert all(f"## `{t}`" in schema for t in Base.metadata.tables)
    sql = sorted((ROOT / "advdb" / "analytics" / "sql").glob("*.sql"))
    assert sql and all(f"## `{f.name}`" in queries for f in sql)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`advdb docs --build-only DIR`: MkDocs with --strict (a broken link or anchor, a page
    missing from the nav or an API docstring that does not render fails it)."""
    site = tmp_path_factory.mktemp("site")
    res = subprocess.run(
        [sys.executable, "-m", "advdb", "docs", "--build-only", str(site)], capture_output=True, text=True, timeout=180
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return site


def test_the_site_builds_strictly_and_offline(built_site: Path) -> None:
    for page in ("index.html", "reference/cli.html", "reference/api.html", "reference/schema.html", "paper.html"):
        assert (built_site / page).is_file(), page
    api = (built_site / "reference" / "api.html").read_text()
    assert "advdb.api.open" in api and "advdb.record.record" in api  # mkdocstrings rendered the docstrings
    for html in built_site.rglob("*.html"):
        text = html.read_text()
        assert "fonts.googleapis" not in text and "fonts.gstatic" not in text, html  # nothing fetched from a CDN


def test_own_model_guide_is_two_clicks_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "docs/guides/own-models.md" in readme or "docs/index.md" in readme
    assert "guides/own-models.md" in (DOCS / "index.md").read_text()


def test_advdb_docs_serves_the_built_site(built_site: Path) -> None:
    (built_site / ".advdb-docs-built").touch()  # built after every source: served as is, not rebuilt
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "advdb", "docs", "--site-dir", str(built_site), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/reference/cli.html", timeout=2) as r:
                    assert "advdb attack" in r.read().decode()
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "advdb docs did not serve within 30 s"
                time.sleep(0.2)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "building" not in err  # it did not rebuild a fresh site


def test_advdb_docs_bad_port_is_one_line(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "advdb", "docs", "--site-dir", str(tmp_path), "--port", "70000"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "--port" in res.stderr, res.stderr
    assert not any(tmp_path.iterdir())


def test_the_guides_have_runnable_examples() -> None:
    pages = exec_blocks()
    for page in ("getting-started/first-queries.md", "guides/python-api.md", "guides/own-models.md"):
        assert page in pages, page


@pytest.mark.parametrize("page", sorted(exec_blocks()))
def test_guide_examples_run(page: str, tmp_path: Path) -> None:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # the venv's advdb
    env = {
        **os.environ,
        "ADVDB_DATABASE_URL": f"sqlite:///{tmp_path / 'advdb.db'}",
        "OMP_NUM_THREADS": "1",
        "PATH": path,
    }
    env.pop("ADVDB_ARTIFACTS_DIR", None)
    for i, (lang, code) in enumerate(exec_blocks()[page]):
        code = tiny(code)
        if lang == "bash":
            cmd = ["bash", "-euo", "pipefail", "-c", code]
        else:
            cmd = [sys.executable, "-c", code]
        res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
        assert res.returncode == 0, f"{page}, block {i + 1} ({lang}):\n{code}\n--- stderr:\n{res.stderr[-3000:]}"
