"""Faults, for real processes: SIGKILL at seeded random points of every run kind and resume, compared
with an uninterrupted run; several attack processes writing one store at once while it is queried.
Both backends."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from advdb.analytics import run_sql
from advdb.store import open_store

SEED = int(os.environ.get("ADVDB_FAULT_SEED", "20261123"))


def env_for(url: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k != "ADVDB_ARTIFACTS_DIR"}, "ADVDB_DATABASE_URL": url}


def advdb(url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "advdb", *args], env=env_for(url), cwd=cwd, capture_output=True, text=True, timeout=600
    )


def q(url: str, sql: str) -> list[dict]:
    with open_store(url) as store:
        loc = store.location
    return run_sql(loc, sql).to_pylist()


def kill_when(url: str, args: list[str], cwd: Path, reached: Callable[[], bool]) -> None:
    """Start ``advdb ARGS``, SIGKILL it once ``reached()`` holds (it must still be running then)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "advdb", *args],
        env=env_for(url),
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            try:
                if reached():
                    break
            except Exception:  # noqa: BLE001 - the store may not be created yet
                pass
            time.sleep(0.05)
        assert proc.poll() is None, f"finished before the kill point: {proc.stderr.read() if proc.stderr else ''}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
        if proc.stderr:
            assert "Traceback" not in proc.stderr.read()


def attack_rows(url: str, run_id: int) -> dict[str, list]:
    return {
        "trajectory": q(
            url, f"SELECT * EXCLUDE (run_id) FROM trajectory WHERE run_id = {run_id} ORDER BY image_id, iteration"
        ),
        "samples": q(url, f"SELECT * EXCLUDE (run_id) FROM samples WHERE run_id = {run_id} ORDER BY image_id"),
        "artifacts": q(url, f"SELECT image_id, sha256 FROM artifacts WHERE run_id = {run_id} ORDER BY image_id"),
    }


def newest(url: str, kind: str) -> dict:
    return q(url, f"SELECT run_id, status FROM runs WHERE kind = '{kind}' ORDER BY run_id DESC LIMIT 1")[0]


ATTACKS = {
    "unified": [
        "attack",
        "--loss",
        "m-logit",
        "--mode",
        "equal-perturbation",
        "-n",
        "240",
        "-T",
        "40",
        "--batch-size",
        "8",
    ],
    "ifgs": ["attack", "--attack", "ifgs", "-n", "192", "-T", "40", "--batch-size", "8"],
    "cw": ["attack", "--attack", "cw", "-n", "80", "-T", "10", "--search-steps", "2", "--batch-size", "8"],
}


@pytest.mark.parametrize(
    "kind, backend",
    [
        ("unified", "sqlite"),  # on PostgreSQL: the full attack below, and test_worker_faults' outage
        pytest.param("cw", "postgresql", marks=pytest.mark.postgres),
    ],
)
def test_attacks_killed_at_random_points_resume_to_the_same_rows(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str, backend: str
) -> None:
    """The unified iteration on both backends, a full attack on each (three kills per run)."""
    store_url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    args = ATTACKS[kind]
    rng = random.Random(f"{SEED}-{kind}-{store_url.split(':')[0]}")
    res = advdb(store_url, *args, "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    reference = json.loads(res.stdout)["run_id"]

    def committed(run: str) -> int:
        return q(store_url, f"SELECT count(*) AS n FROM batches WHERE run_id {run}")[0]["n"]

    # a new run killed after 1-3 committed batches, its resume killed after 1-3 more, then resumed to the end
    step = rng.randint(1, 3)
    kill_when(store_url, args, tmp_path, lambda: committed(f"> {reference}") >= step)
    run_id = newest(store_url, "attack")["run_id"]
    assert run_id != reference
    target = committed(f"= {run_id}") + rng.randint(1, 3)
    kill_when(store_url, ["attack", "--resume", str(run_id)], tmp_path, lambda: committed(f"= {run_id}") >= target)
    if newest(store_url, "attack")["status"] != "finished":  # the kill may land after the last commit
        res = advdb(store_url, "attack", "--resume", str(run_id), "--json", cwd=tmp_path)
        assert res.returncode == 0 and json.loads(res.stdout)["status"] == "finished", res.stderr
    assert attack_rows(store_url, run_id) == attack_rows(store_url, reference)
    workers = [
        w["status"] for w in q(store_url, f"SELECT status FROM workers WHERE run_id = {run_id} ORDER BY worker_id")
    ]
    assert len(workers) >= 2 and workers[-1] == "finished" and set(workers[:-1]) == {"dead"}, workers


@pytest.fixture
def source_run(pg_url: str, tmp_path: Path) -> int:
    res = advdb(pg_url, "attack", "--loss", "ce-sign", "-n", "640", "-T", "5", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)["run_id"]


@pytest.mark.postgres
def test_detector_killed_at_random_epochs_resumes_to_the_same_results(
    pg_url: str, tmp_path: Path, source_run: int
) -> None:
    store_url = pg_url  # on PostgreSQL only: the epochs commit through the same store code on SQLite
    args = ["retrain", "--sources", str(source_run), "--epochs", "6", "--batch-size", "16", "--json"]
    res = advdb(store_url, *args, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    reference = json.loads(res.stdout)["run_id"]
    point = random.Random(f"{SEED}-detector-{store_url.split(':')[0]}").randint(1, 3)
    kill_when(
        store_url,
        args,
        tmp_path,
        lambda: bool(
            q(store_url, f"SELECT count(*) AS n FROM detector_epochs WHERE run_id > {reference}")[0]["n"] >= point
        ),
    )
    run_id = newest(store_url, "detector")["run_id"]
    assert newest(store_url, "detector")["status"] == "running"  # killed: nobody could say otherwise
    res = advdb(store_url, "retrain", "--resume", str(run_id), "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr

    def results(r: int) -> tuple[list, list]:
        return (
            q(
                store_url,
                "SELECT epoch, lr, train_loss, train_accuracy, test_accuracy FROM detector_epochs WHERE run_id = "
                f"{r} ORDER BY epoch",
            ),
            q(
                store_url,
                f"SELECT group_name, n_images, accuracy, epoch FROM detector_results WHERE run_id = {r} ORDER BY 1",
            ),
        )

    assert results(run_id) == results(reference)
    assert newest(store_url, "detector") == {"run_id": run_id, "status": "finished"}


def test_circles_killed_then_run_again_gives_the_same_maps(sqlite_url: str, tmp_path: Path) -> None:
    store_url = sqlite_url  # the grid's commit is backend-neutral (the ingest path, tested on both elsewhere)
    args = ["circles", "--n", "40", "-T", "20", "--grid", "31"]
    res = advdb(store_url, *args, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    reference = newest(store_url, "circles")["run_id"]
    attacks_before = q(store_url, "SELECT count(*) AS n FROM runs WHERE kind = 'attack'")[0]["n"]
    point = random.Random(f"{SEED}-circles-{store_url.split(':')[0]}").randint(1, 3)  # attack runs done before the kill
    kill_when(
        store_url,
        args,
        tmp_path,
        lambda: (
            q(store_url, "SELECT count(*) AS n FROM runs WHERE kind = 'attack' AND status = 'finished'")[0]["n"]
            >= attacks_before + point
        ),
    )
    res = advdb(store_url, *args, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    again = newest(store_url, "circles")
    assert again["status"] == "finished" and again["run_id"] != reference

    def grid(r: int) -> list:
        return q(
            store_url,
            f"SELECT loss, ix, iy, grad_norm, pred, p_target FROM circle_grid WHERE run_id = {r} ORDER BY 1, 2, 3",
        )

    assert grid(again["run_id"]) == grid(reference) and len(grid(reference)) == 4 * 31 * 31


def test_concurrent_attack_processes_while_querying(store_url: str, tmp_path: Path) -> None:
    n, T = 32, 6
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "advdb",
                "attack",
                "--loss",
                loss,
                "-n",
                str(n),
                "-T",
                str(T),
                "--batch-size",
                "8",
                "--seed",
                str(i),
                "--json",
            ],
            env=env_for(store_url),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, loss in enumerate(("ce", "ce-sign", "logit", "m-logit"))
    ]
    queries, seen = 0, {}  # run id → trajectory rows at the last query
    sql = "SELECT run_id, count(*) AS n FROM trajectory GROUP BY run_id ORDER BY run_id"
    while any(p.poll() is None for p in procs):
        res = advdb(store_url, "sql", sql, "--format", "csv", cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        now = {int(r["run_id"]): int(r["n"]) for r in csv.DictReader(io.StringIO(res.stdout))}
        # a reader sees whole batches only, and never fewer rows than before
        assert all(k % (8 * (T + 1)) == 0 and 0 < k <= n * (T + 1) for k in now.values()), now
        assert all(now.get(r, 0) >= k for r, k in seen.items()), (seen, now)
        seen = now
        queries += 1
    run_ids = []
    for p in procs:
        out, err = p.communicate()
        assert p.returncode == 0 and "Traceback" not in err, err
        run_ids.append(json.loads(out)["run_id"])
    assert queries >= 1 and len(set(run_ids)) == 4
    for run_id in run_ids:
        got = q(
            store_url,
            f"""SELECT (SELECT count(*) FROM trajectory WHERE run_id = {run_id}) AS rows,
            (SELECT count(DISTINCT (image_id, iteration)) FROM trajectory WHERE run_id = {run_id}) AS keys,
            (SELECT count(*) FROM samples WHERE run_id = {run_id}) AS samples,
            (SELECT count(*) FROM artifacts WHERE run_id = {run_id}) AS files,
            (SELECT status FROM runs WHERE run_id = {run_id}) AS status""",
        )[0]
        assert got == {"rows": n * (T + 1), "keys": n * (T + 1), "samples": n, "files": n, "status": "finished"}
