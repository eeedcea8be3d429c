"""Shared fixtures: real SQLite files, a real PostgreSQL database per test, a session-wide advdb home."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_URL = os.environ.get("ADVDB_TEST_PG_URL")
REQUIRE_PG = os.environ.get("ADVDB_REQUIRE_PG") == "1"


@pytest.fixture(scope="session", autouse=True)
def advdb_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private ADVDB_HOME for the whole session (the digits CNN is trained once into it)."""
    home = Path(os.environ.get("ADVDB_TEST_HOME") or tmp_path_factory.mktemp("advdb-home"))
    old = os.environ.get("ADVDB_HOME")
    os.environ["ADVDB_HOME"] = str(home)
    os.environ.pop("ADVDB_DATABASE_URL", None)
    os.environ.pop("ADVDB_ARTIFACTS_DIR", None)
    yield home
    if old is None:
        os.environ.pop("ADVDB_HOME", None)
    else:
        os.environ["ADVDB_HOME"] = old


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


def _pg_admin():  # noqa: ANN202
    import psycopg

    return psycopg.connect(PG_URL.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the test server (dropped afterwards)."""
    if not PG_URL:
        if REQUIRE_PG:
            pytest.fail("ADVDB_REQUIRE_PG=1 but ADVDB_TEST_PG_URL is not set: start a server with .ci/pg.sh")
        pytest.skip("no PostgreSQL server: set ADVDB_TEST_PG_URL (see .ci/pg.sh)")
    name = f"advdb_t_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as con:
        con.execute(f'CREATE DATABASE "{name}"')
    base = PG_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with _pg_admin() as con:
        con.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        con.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend in turn; the store's artifacts go under tmp_path."""
    os.environ["ADVDB_ARTIFACTS_DIR"] = str(tmp_path / "artifacts")
    request.addfinalizer(lambda: os.environ.pop("ADVDB_ARTIFACTS_DIR", None))
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """Invoke the real Typer app in-process; returns (exit_code, stdout, stderr)."""
    from typer.testing import CliRunner

    from advdb.cli import app

    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args), input=input, catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return invoke


def digits_batch(n: int, target_shift: int):  # noqa: ANN201
    """The digits CNN and ``n`` held-out digits with targets ``(y + target_shift) % 10``."""
    import torch

    from advdb.data import create_dataset
    from advdb.models import create_classifier

    clf = create_classifier("digits-cnn")
    ds = create_dataset("digits")
    y = torch.as_tensor(ds.labels[:n])
    return clf, ds.load(range(n)), y, (y + target_shift) % 10


def small_attack(url: str, loss: str) -> int:
    """A finished 12-image, 20-iteration equal-perturbation attack run of ``loss`` on the digits default."""
    from advdb.runner import run_attack
    from advdb.spec import AttackSpec
    from advdb.store import open_store

    spec = AttackSpec(params={"loss": loss, "mode": "equal-perturbation", "iterations": 20}, n=12, batch_size=6)
    with open_store(url) as store:
        return run_attack(store, spec)
