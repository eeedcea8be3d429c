"""The floors of docs/ARCHITECTURE.md: imports point down, never up or in circles; the library
never imports the CLI; SQL stays in the store; functions short enough to read at once."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "advdb"
CLI = ROOT / "cli"
MIGRATIONS = ROOT / "migrations"
ALL_CODE = sorted([*PKG.rglob("*.py"), *CLI.rglob("*.py"), *MIGRATIONS.rglob("*.py")])


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def module_name(path: Path) -> str:
    """The installed name: cli/app.py is advdb.cli.app, migrations/env.py advdb.migrations.env."""
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] in ("cli", "migrations"):
        parts.insert(0, "advdb")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(sub: str) -> list[Path]:
    base = PKG / sub
    return sorted(base.rglob("*.py")) if base.is_dir() else [base.with_suffix(".py")]


def _starts(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# ``advdb/__main__.py`` (``python -m advdb``) is the console script's twin: an entry point of the CLI layer.
@pytest.mark.parametrize("path", [p for p in PKG.rglob("*.py") if p.name != "__main__.py"], ids=_rel)
def test_library_never_imports_the_cli_layer(path: Path) -> None:
    bad = {m for m in imports_of(path) if _starts(m, ("advdb.cli", "typer", "rich", "click"))}
    assert not bad, f"{_rel(path)} imports {bad}"


@pytest.mark.parametrize(
    "path", [p for p in ALL_CODE if not _starts(module_name(p), ("advdb.store", "advdb.migrations"))], ids=_rel
)
def test_sql_stays_in_the_store(path: Path) -> None:
    """Only advdb/store/ and migrations/ speak SQLAlchemy; everyone else gets plain dataclasses."""
    bad = {m for m in imports_of(path) if _starts(m, ("sqlalchemy", "alembic", "advdb.store.models"))}
    assert not bad, f"{_rel(path)} imports {bad}"


@pytest.mark.parametrize("path", modules("attacks"), ids=_rel)
def test_attacks_are_pure_tensor_code(path: Path) -> None:
    bad = {
        m
        for m in imports_of(path)
        if _starts(m, ("advdb.store", "advdb.analytics", "advdb.runner", "sqlalchemy", "duckdb"))
    }
    assert not bad, f"{_rel(path)} imports {bad}"


@pytest.mark.parametrize(
    "path", modules("store") + modules("analytics") + [PKG / "artifacts.py", PKG / "vocabulary.py"], ids=_rel
)
def test_store_and_analytics_need_no_torch(path: Path) -> None:
    bad = {
        m
        for m in imports_of(path)
        if _starts(m, ("torch", "torchvision", "advdb.attacks", "advdb.runner", "advdb.models"))
    }
    assert not bad, f"{_rel(path)} imports {bad}"


def _graph() -> dict[str, set[str]]:
    names = {module_name(p): p for p in ALL_CODE}
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        deps = set()
        for m in imports_of(path):
            while m and m not in names:  # "advdb.attacks.engine.run_unified" → "advdb.attacks.engine"
                m = m.rpartition(".")[0]
            if m and m != name and not name.startswith(m + "."):  # a package's own __init__ is not a dependency back
                deps.add(m)
        graph[name] = deps
    return graph


def test_no_two_modules_import_each_other() -> None:
    """No import cycle anywhere (lazy imports inside functions included)."""
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" → ".join(c) for c in cycles)


MAX_BODY_LINES = 80


def test_functions_are_short_enough_to_read_at_once() -> None:
    long = []
    for path in ALL_CODE:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.end_lineno - node.body[0].lineno + 1  # type: ignore[operator]
                if body > MAX_BODY_LINES:
                    long.append(f"{_rel(path)}:{node.lineno} {node.name} ({body} lines)")
    assert not long, f"function bodies over {MAX_BODY_LINES} lines: {long}"


def test_the_writer_process_does_not_load_torch() -> None:
    import subprocess
    import sys

    code = "import sys, advdb.store.writer, advdb.analytics, advdb.vocabulary; print('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )


def test_wheel_is_one_package_with_the_cli_and_the_migrations(tmp_path: Path) -> None:
    import subprocess
    import sys
    import zipfile

    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("advdb-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    tops = {n.split("/")[0] for n in names if not n.startswith("advdb-")}
    assert tops == {"advdb"}, tops  # cli/ and migrations/ install inside advdb, nothing else at the top
    expected = {
        module_name(p).replace(".", "/") + ("/__init__.py" if p.name == "__init__.py" else ".py") for p in ALL_CODE
    }
    assert expected <= names, sorted(expected - names)
    assert "advdb/migrations/script.py.mako" in names and "advdb/analytics/sql/table1.sql" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "advdb = advdb.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
