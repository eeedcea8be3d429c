"""One attack run over many processes: the real torchrun, --join workers started at different
times, a SIGKILLed worker taken over, the store's artifact root; on PostgreSQL and SQLite.

Every multi-process run must end like a single-process run of the same plan: T+1 trajectory
rows per planned image, one sample and one image file each, no duplicate, the same values
bit for bit.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from advdb.analytics import run_sql
from advdb.store import open_store
from advdb.store.workers import committed_batches

T = 6
BASE = ["attack", "--loss", "ce", "--mode", "equal-perturbation", "--tau", "0.3", "-T", str(T), "--device", "cpu"]


def env_for(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ADVDB_ARTIFACTS_DIR", "RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(ADVDB_DATABASE_URL=url, OMP_NUM_THREADS="1", **extra)  # torchrun gives each rank one thread too
    return env


def advdb(url: str, *args: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "advdb", *args],
        env=env_for(url, **extra),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def start(url: str, *args: str, cwd: Path, **extra: str) -> subprocess.Popen:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "advdb", *args],
        env=env_for(url, **extra),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def q(url: str, sql: str) -> list[dict]:
    with open_store(url) as store:
        loc = store.location
    return run_sql(loc, sql).to_pylist()


def run_rows(url: str, run_id: int) -> dict[str, list]:
    """Everything a run stored that must not depend on how many workers made it."""
    return {
        "trajectory": q(
            url, f"SELECT * EXCLUDE (run_id) FROM trajectory WHERE run_id = {run_id} ORDER BY image_id, iteration"
        ),
        "samples": q(url, f"SELECT * EXCLUDE (run_id) FROM samples WHERE run_id = {run_id} ORDER BY image_id"),
        "artifacts": q(
            url, f"SELECT image_id, sha256, saved_pred FROM artifacts WHERE run_id = {run_id} ORDER BY image_id"
        ),
        "plan": q(url, f"SELECT * EXCLUDE (run_id) FROM run_images WHERE run_id = {run_id} ORDER BY position"),
    }


def check_complete(url: str, run_id: int, n: int, *, elsewhere: Path, iterations: int = T) -> None:
    """Exactly the planned rows, no duplicate, every file under the recorded root (read from another folder)."""
    counts = q(
        url,
        f"""SELECT (SELECT count(*) FROM trajectory WHERE run_id = {run_id}) AS rows,
        (SELECT count(DISTINCT (image_id, iteration)) FROM trajectory WHERE run_id = {run_id}) AS keys,
        (SELECT count(*) FROM samples WHERE run_id = {run_id}) AS samples,
        (SELECT count(*) FROM artifacts WHERE run_id = {run_id}) AS files,
        (SELECT count(*) FROM run_images WHERE run_id = {run_id}) AS planned,
        (SELECT status FROM runs WHERE run_id = {run_id}) AS status""",
    )[0]
    assert counts == {
        "rows": n * (iterations + 1),
        "keys": n * (iterations + 1),
        "samples": n,
        "files": n,
        "planned": n,
        "status": "finished",
    }
    per_image = q(
        url,
        f"SELECT count(*) AS c, min(iteration) AS lo, max(iteration) AS hi FROM trajectory "
        f"WHERE run_id = {run_id} GROUP BY image_id",
    )
    assert len(per_image) == n and all((r["c"], r["lo"], r["hi"]) == (iterations + 1, 0, iterations) for r in per_image)
    elsewhere.mkdir(parents=True, exist_ok=True)
    old, override = os.getcwd(), os.environ.pop("ADVDB_ARTIFACTS_DIR", None)
    os.chdir(elsewhere)  # the root is the store's, not the working directory's or the environment's
    try:
        with open_store(url) as store:
            root = store.location.artifacts_dir
        from advdb.artifacts import load

        for a in q(url, f"SELECT path, sha256 FROM artifacts WHERE run_id = {run_id}"):
            assert load(root / a["path"], expected_sha256=a["sha256"]).shape == (1, 8, 8)
    finally:
        os.chdir(old)
        if override is not None:
            os.environ["ADVDB_ARTIFACTS_DIR"] = override


def single_process_reference(url: str, cwd: Path, *args: str) -> int:
    res = advdb(url, *BASE, *args, "--json", cwd=cwd)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)["run_id"]


def workers(url: str, run_id: int) -> list[dict]:
    res = advdb(url, "runs", "show", str(run_id), "--json", cwd=Path.cwd())
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)["workers"]


@pytest.mark.parametrize("backend, ranks", [("sqlite", 2), pytest.param("postgresql", 4, marks=pytest.mark.postgres)])
def test_torchrun_ranks_share_one_run(request: pytest.FixtureRequest, tmp_path: Path, backend: str, ranks: int) -> None:
    store_url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    n, batch, iterations = 192, 8, 40
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    args = [*BASE, "-n", str(n), "--batch-size", str(batch), "-T", str(iterations)]
    proc = subprocess.run(
        [torchrun, "--standalone", "--nproc-per-node", str(ranks), "-m", "advdb", *args, "--json"],
        env=env_for(store_url),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_id = json.loads(proc.stdout)["run_id"]  # rank 0 alone prints the run
    assert q(store_url, "SELECT count(*) AS n FROM runs") == [{"n": 1}]
    ws = workers(store_url, run_id)
    assert sorted(w["rank"] for w in ws) == list(range(ranks)) and all(w["status"] == "finished" for w in ws)
    assert sum(w["batches_done"] for w in ws) == n // batch
    assert sum(w["batches_done"] > 0 for w in ws) >= 2  # the work was shared
    check_complete(store_url, run_id, n, elsewhere=tmp_path / "elsewhere", iterations=iterations)
    ref = single_process_reference(store_url, tmp_path / "other-cwd", *args[len(BASE) :])
    assert run_rows(store_url, run_id) == run_rows(store_url, ref)


@pytest.mark.postgres
def test_join_workers_started_at_different_times(pg_url: str, tmp_path: Path) -> None:
    n, batch = 192, 8
    planned = advdb(
        pg_url,
        *BASE,
        "-n",
        str(n),
        "--batch-size",
        str(batch),
        "-T",
        "150",
        "--plan-only",
        "--json",
        cwd=tmp_path / "planner",
    )
    assert planned.returncode == 0, planned.stderr
    run_id = json.loads(planned.stdout)["run_id"]
    assert q(pg_url, f"SELECT status FROM runs WHERE run_id = {run_id}") == [{"status": "planned"}]
    first = start(pg_url, "attack", "--join", str(run_id), "--json", cwd=tmp_path / "w1")
    deadline = time.time() + 120
    while (
        time.time() < deadline and not q(pg_url, f"SELECT count(*) AS n FROM batches WHERE run_id = {run_id}")[0]["n"]
    ):
        time.sleep(0.2)
    later = [start(pg_url, "attack", "--join", str(run_id), "--json", cwd=tmp_path / f"w{k}") for k in (2, 3)]
    for p in [first, *later]:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
        assert json.loads(out)["status"] == "finished"
    ws = workers(pg_url, run_id)
    assert len(ws) == 3 and all(w["status"] == "finished" for w in ws)
    assert sum(w["batches_done"] for w in ws) == n // batch and sum(w["batches_done"] > 0 for w in ws) >= 2
    check_complete(pg_url, run_id, n, elsewhere=tmp_path / "elsewhere", iterations=150)


def test_killed_worker_is_taken_over_and_restart_finishes(store_url: str, tmp_path: Path) -> None:
    n, batch = 160, 8
    # 40 iterations, not 6: at 6 a fast machine committed all 20 batches before the first poll saw one
    size = ("-n", str(n), "--batch-size", str(batch), "-T", "40")
    planned = advdb(store_url, *BASE, *size, "--plan-only", "--json", cwd=tmp_path)
    run_id = json.loads(planned.stdout)["run_id"]
    victim = start(store_url, "attack", "--join", str(run_id), "--lease", "2", cwd=tmp_path)
    deadline = time.time() + 120
    with open_store(store_url) as store:  # poll through one connection: a batch takes milliseconds
        while time.time() < deadline and not committed_batches(store, run_id):
            time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    # the store says a worker is still at it (nobody could say otherwise) until someone looks
    left = q(store_url, f"SELECT count(*) AS n FROM batches WHERE run_id = {run_id}")[0]["n"]
    assert 0 < left < n // batch
    survivor = advdb(store_url, "attack", "--join", str(run_id), "--lease", "2", "--json", cwd=tmp_path / "survivor")
    assert survivor.returncode == 0, survivor.stderr
    ws = workers(store_url, run_id)
    assert [w["status"] for w in ws] == ["dead", "finished"]
    check_complete(store_url, run_id, n, elsewhere=tmp_path / "elsewhere", iterations=40)
    ref = single_process_reference(store_url, tmp_path / "ref", *size)
    assert run_rows(store_url, run_id) == run_rows(store_url, ref)


def test_claims_lease_and_takeover_across_hosts(store_url: str) -> None:
    """A claim is exclusive while its lease lasts and passes on when it runs out (a worker on another host)."""
    from advdb.store.models import Worker
    from advdb.store.runs import create_run
    from advdb.store.workers import claim_batch, ensure_claims, heartbeat, list_workers, register_worker

    with open_store(store_url) as store:
        run = create_run(store, kind="attack", config={})
        ensure_claims(store, run.run_id, 3)
        ensure_claims(store, run.run_id, 3)  # idempotent
        a = register_worker(store, run.run_id, device="cpu", rank=None, lease_seconds=0.6)
        b = register_worker(store, run.run_id, device="cpu", rank=None, lease_seconds=0.6)
        with store.session() as s:  # make worker a live on another machine: only its heartbeat tells
            s.get(Worker, a).host = "elsewhere"
        assert claim_batch(store, run.run_id, a, 0.6) == 0
        assert claim_batch(store, run.run_id, b, 0.6) == 1
        heartbeat(store, a, 0.6)
        assert {w.worker_id: w.live for w in list_workers(store, run.run_id)} == {a: True, b: True}
        assert claim_batch(store, run.run_id, b, 0.6) == 2
        assert claim_batch(store, run.run_id, b, 0.6) is None  # a's lease still runs
        time.sleep(0.8)
        assert [w.live for w in list_workers(store, run.run_id) if w.worker_id == a] == [False]
        assert claim_batch(store, run.run_id, b, 0.6) == 0  # taken over
        # b's claims of 1 and 2 ran out too (nobody renewed them): the lowest goes first
        assert claim_batch(store, run.run_id, a, 0.6) == 1


def test_artifact_root_is_recorded_once_and_checked(store_url: str, tmp_path: Path) -> None:
    n = 16
    first = advdb(
        store_url,
        *BASE,
        "-n",
        str(n),
        "--batch-size",
        "8",
        "--json",
        cwd=tmp_path / "first",
        ADVDB_ARTIFACTS_DIR=str(tmp_path / "shared"),
    )
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "shared" / ".advdb-store").exists()
    shown = advdb(store_url, "db", "artifact-root", cwd=tmp_path / "second")
    assert str(tmp_path / "shared") in shown.stdout
    # another working directory, no variable: the recorded root is used
    again = advdb(store_url, *BASE, "-n", str(n), "--batch-size", "8", "--seed", "1", "--json", cwd=tmp_path / "second")
    assert again.returncode == 0, again.stderr
    run_id = json.loads(again.stdout)["run_id"]
    assert (tmp_path / "shared" / f"run-{run_id}").is_dir() and not (tmp_path / "second" / "advdb-artifacts").exists()
    # a machine where the variable names a folder that is not the shared root: refused before any work
    before = q(store_url, "SELECT (SELECT count(*) FROM runs) r, (SELECT count(*) FROM workers) w")
    wrong = advdb(
        store_url,
        *BASE,
        "-n",
        str(n),
        "--batch-size",
        "8",
        cwd=tmp_path / "third",
        ADVDB_ARTIFACTS_DIR=str(tmp_path / "not-mounted"),
    )
    assert wrong.returncode == 3 and "not reachable" in wrong.stderr and "Traceback" not in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1
    assert q(store_url, "SELECT (SELECT count(*) FROM runs) r, (SELECT count(*) FROM workers) w") == before
    # the root is moved: recorded anew, and found there
    shutil.move(tmp_path / "shared", tmp_path / "moved")
    moved = advdb(store_url, "db", "artifact-root", str(tmp_path / "moved"), cwd=tmp_path)
    assert moved.returncode == 0, moved.stderr
    check_complete(store_url, run_id, n, elsewhere=tmp_path / "elsewhere")


def test_python_m_advdb_and_bad_launch_options(sqlite_url: str, tmp_path: Path, cli) -> None:  # noqa: ANN001
    res = advdb(sqlite_url, "--version", cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.startswith("advdb ")
    for args, message in (
        (["--lease", "0"], "--lease"),
        (["--lease", "nan"], "--lease"),
        (["--join", "5", "--resume", "5"], "exclude each other"),
        (["--join", "999"], "no run 999"),
    ):
        code, _, err = cli("--db", sqlite_url, "attack", *args)
        assert code != 0 and message in err and "Traceback" not in err, err
    code, out, err = cli(
        "--db", sqlite_url, "attack", "-n", "8", "-T", "2", "--batch-size", "4", "--join-key", "k1", "--json"
    )
    assert code == 0, err
    run_id = json.loads(out)["run_id"]
    code, out, err = cli(
        "--db", sqlite_url, "attack", "-n", "8", "-T", "2", "--batch-size", "4", "--join-key", "k1", "--json"
    )
    assert code == 0 and json.loads(out)["run_id"] == run_id  # same key: the same (finished) run, nothing redone
    code, _, err = cli("--db", sqlite_url, "attack", "-n", "9", "-T", "2", "--batch-size", "4", "--join-key", "k1")
    assert code == 7 and "n=8" in err
