"""Terminal tables fit an 80-column terminal (or a pipe): one line per row, human headings and
values, long values cut with an ellipsis, the least important columns dropped when narrow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import small_attack as attack


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('tables') / 'store.db'}"
    for loss in ("ce", "ce-sign", "logit"):
        attack(url, loss)
    return url


def advdb(url: str, *args: str, columns: int = 80) -> list[str]:
    """Run the real command, piped (not a terminal), as an 80-column terminal would see it."""
    env = {"COLUMNS": str(columns), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    import os

    env.update({k: v for k, v in os.environ.items() if k.startswith(("ADVDB_", "PYTHON"))})
    out = subprocess.run(
        [sys.executable, "-m", "advdb", "--db", url, *args],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    return out.stdout.splitlines()


def test_runs_list_fits_80_columns(store: str) -> None:
    lines = advdb(store, "runs", "list")
    assert lines and all(len(line) <= 80 for line in lines), "\n".join(lines)
    header = next(line for line in lines if "run" in line and "status" in line)
    assert "wall_seconds" not in header and "n_images" not in header  # human headings
    body = [line for line in lines if line.startswith("│") and any(c.isdigit() for c in line[:8])]
    assert len(body) == 3  # one line per run, nothing wrapped
    assert any(" s " in line or line.rstrip("│ ").endswith(" s") for line in body)  # durations read as seconds


def test_wide_terminal_shows_every_column(store: str) -> None:
    wide = " ".join(advdb(store, "runs", "list", columns=200))
    narrow = " ".join(advdb(store, "runs", "list", columns=80))
    assert "device" in wide and "created" in wide
    assert "device" not in narrow  # dropped first when narrow


def test_sql_tables_fit_and_cut_long_values(store: str) -> None:
    lines = advdb(store, "sql", "SELECT run_id, repeat('x', 200) AS long_text, config FROM runs")
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    assert any("…" in line for line in lines)
    assert len([line for line in lines if line.startswith("┃")]) == 1  # the header, on one line
    assert len([line for line in lines if line.startswith("│")]) == 3  # one line per row


def test_runs_show_fits(store: str) -> None:
    lines = advdb(store, "runs", "show", "1")
    table = [line for line in lines if line.startswith(("│", "┃", "┏", "└", "┗", "┡", "╇"))]
    assert all(len(line) <= 80 for line in table), "\n".join(table)
