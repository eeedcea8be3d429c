"""The floors of DESIGN.md: imports point down, never up; the library never imports the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "advdb"


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def modules(sub: str) -> list[Path]:
    base = PKG / sub
    return sorted(base.rglob("*.py")) if base.is_dir() else [base.with_suffix(".py")]


def _starts(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


# ``advdb/__main__.py`` (``python -m advdb``) is the console script's twin: an entry point of the CLI layer.
@pytest.mark.parametrize("path", [p for p in PKG.rglob("*.py") if "cli" not in p.relative_to(PKG).parts
                                  and p.name != "__main__.py"], ids=str)
def test_library_never_imports_the_cli_layer(path: Path) -> None:
    bad = {m for m in imports_of(path) if _starts(m, ("advdb.cli", "typer", "rich", "click"))}
    assert not bad, f"{path.relative_to(PKG)} imports {bad}"


@pytest.mark.parametrize("path", modules("attacks"), ids=str)
def test_attacks_are_pure_tensor_code(path: Path) -> None:
    bad = {m for m in imports_of(path) if _starts(m, ("advdb.store", "advdb.analytics", "advdb.runner", "sqlalchemy", "duckdb"))}
    assert not bad, f"{path.relative_to(PKG)} imports {bad}"


@pytest.mark.parametrize("path", modules("store") + modules("analytics") + [PKG / "artifacts.py"], ids=str)
def test_store_and_analytics_need_no_torch(path: Path) -> None:
    bad = {m for m in imports_of(path) if _starts(m, ("torch", "torchvision", "advdb.attacks", "advdb.runner", "advdb.models"))}
    assert not bad, f"{path.relative_to(PKG)} imports {bad}"


def test_the_writer_process_does_not_load_torch() -> None:
    import subprocess
    import sys

    code = "import sys, advdb.store.writer, advdb.analytics; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_wheel_carries_migrations_and_cli_and_no_generic_modules(tmp_path: Path) -> None:
    import subprocess
    import sys
    import zipfile

    root = PKG.parent
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(root)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("advdb-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.startswith("advdb-")}
    assert tops == {"advdb"}, tops  # no top-level cli/ or migrations/ module
    assert "advdb/migrations/env.py" in names and "advdb/migrations/script.py.mako" in names
    assert any(n.startswith("advdb/migrations/versions/0001_") for n in names)
    assert "advdb/cli/app.py" in names and "advdb/analytics/sql/table1.sql" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "advdb = advdb.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_readme_cli_reference_is_in_sync() -> None:
    from advdb.cli.reference import END, START, reference

    readme = (PKG.parent / "README.md").read_text()
    section = readme[readme.index(START) : readme.index(END) + len(END)]
    assert section == reference(), "run: python -m advdb.cli.reference --write"
