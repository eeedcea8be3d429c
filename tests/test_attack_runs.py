"""Attack runs end to end: store, files, reproducibility, interruption and resume, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from advdb.analytics import run_sql
from advdb.errors import ConfigError, ConflictError, DataError, InterruptedRun
from advdb.runner import AttackSpec, resume_attack, run_attack
from advdb.store import open_store
from advdb.store.runs import get_run, list_runs, run_counts

T = 12


def spec(**kw) -> AttackSpec:  # noqa: ANN003
    params = {"loss": "ce", "mode": "equal-perturbation", "iterations": T, "tau": 0.3}
    params.update(kw.pop("params", {}))
    return AttackSpec(params=params, n=kw.pop("n", 24), batch_size=kw.pop("batch_size", 8), **kw)


def q(url: str, sql: str) -> list[dict]:
    with open_store(url) as store:
        loc = store.location
    return run_sql(loc, sql).to_pylist()


def test_attack_run_is_stored_completely(store_url: str) -> None:
    with open_store(store_url) as store:
        run_id = run_attack(store, spec())
        run = get_run(store, run_id)
        counts = run_counts(store, run_id)
        artifacts_dir = store.location.artifacts_dir
    assert run.status == "finished" and run.loss == "ce" and run.mode == "equal-perturbation"
    assert run.config["resolved"]["attack"]["iterations"] == T and run.versions["torch"] == torch.__version__
    assert run.device == "cpu" and run.wall_seconds > 0 and run.seed == 0
    assert (counts.batches, counts.samples, counts.artifacts) == (3, 24, 24)
    assert q(store_url, "SELECT count(*) AS n FROM trajectory") == [{"n": 24 * (T + 1)}]  # rows, not bookkeeping
    # every image has exactly T+1 rows, 0…T
    rows = q(
        store_url,
        "SELECT image_id, count(*) AS n, min(iteration) AS lo, max(iteration) AS hi FROM trajectory WHERE run_id = "
        f"{run_id} GROUP BY 1",
    )
    assert len(rows) == 24 and all((r["n"], r["lo"], r["hi"]) == (T + 1, 0, T) for r in rows)
    # the per-image summary agrees with the stored trajectory
    check = q(
        store_url,
        f"""
        SELECT s.image_id, s.first_success_iter AS fsi, min(t.iteration) FILTER (WHERE t.pred = s.target) AS first,
               s.success_l2, max(t.l2) FILTER (WHERE t.iteration = s.first_success_iter) AS l2_at
        FROM samples s JOIN trajectory t USING (run_id, image_id) WHERE s.run_id = {run_id} GROUP BY ALL""",
    )
    assert all(r["fsi"] == r["first"] for r in check)
    assert all(r["fsi"] is None or abs(r["success_l2"] - r["l2_at"]) < 1e-6 for r in check)
    assert sum(r["fsi"] is not None for r in check) >= 20
    # labels are the true labels, targets differ from them, images were classified correctly
    plan = q(
        store_url,
        f"SELECT r.label, r.target, i.label AS truth, r0.pred FROM run_images r JOIN images i USING (image_id) "
        "JOIN trajectory r0 ON r0.run_id = r.run_id AND r0.image_id = r.image_id AND r0.iteration = 0 WHERE "
        f"r.run_id = {run_id}",
    )
    assert all(p["label"] == p["truth"] == p["pred"] != p["target"] for p in plan)
    files = q(store_url, f"SELECT path, still_adversarial, saved_pred FROM artifacts WHERE run_id = {run_id}")
    assert all((artifacts_dir / f["path"]).exists() for f in files)


def test_same_seed_gives_identical_results(sqlite_url: str) -> None:
    with open_store(sqlite_url) as store:
        a = run_attack(store, spec(n=16, params={"loss": "m-logit"}, seed=7))
        b = run_attack(store, spec(n=16, params={"loss": "m-logit"}, seed=7))
        c = run_attack(store, spec(n=16, params={"loss": "m-logit"}, seed=8))
    cols = "image_id, iteration, pred, p_target, z_target, loss, grad_l2, step_l2, l2"
    ta = q(sqlite_url, f"SELECT {cols} FROM trajectory WHERE run_id = {a} ORDER BY image_id, iteration")
    tb = q(sqlite_url, f"SELECT {cols} FROM trajectory WHERE run_id = {b} ORDER BY image_id, iteration")
    assert ta == tb
    pa_ = q(sqlite_url, f"SELECT image_id, target FROM run_images WHERE run_id = {a} ORDER BY position")
    pc = q(sqlite_url, f"SELECT image_id, target FROM run_images WHERE run_id = {c} ORDER BY position")
    assert pa_ != pc


class StopAfter:
    """A progress hook that presses Ctrl-C after ``n`` batches."""

    def __init__(self, n: int) -> None:
        self.n = n

    def start(self, **_: object) -> None:
        pass

    def advance(self, images: int) -> None:
        self.n -= 1
        if self.n == 0:
            raise KeyboardInterrupt


def test_interrupt_then_resume_gives_exactly_the_rows(store_url: str) -> None:
    with open_store(store_url) as store:
        with pytest.raises(InterruptedRun, match="--resume"):
            run_attack(store, spec(n=32), progress=StopAfter(2))
        run_id = max(r.run_id for r in list_runs(store))
        assert get_run(store, run_id).status == "interrupted"
        partial = run_counts(store, run_id)
        assert 2 <= partial.batches < 4
    # counted outside the open store: DuckDB's SQLite scanner and SQLAlchemy's never hold the file at once
    rows = f"SELECT count(*) AS n FROM trajectory WHERE run_id = {run_id}"
    assert q(store_url, rows) == [{"n": partial.batches * 8 * (T + 1)}]
    with open_store(store_url) as store:
        assert resume_attack(store, run_id) == run_id
        counts = run_counts(store, run_id)
        assert get_run(store, run_id).status == "finished"
    assert (counts.batches, counts.samples, counts.artifacts) == (4, 32, 32)
    assert q(store_url, rows) == [{"n": 32 * (T + 1)}]
    dup = q(
        store_url,
        f"SELECT count(*) AS n FROM (SELECT image_id, iteration FROM trajectory WHERE run_id = {run_id} GROUP BY ALL "
        "HAVING count(*) > 1)",
    )
    assert dup == [{"n": 0}]
    # the resumed run equals an uninterrupted one with the same seed
    with open_store(store_url) as store:
        fresh = run_attack(store, spec(n=32))
    cols = "image_id, iteration, pred, z_target, l2"
    assert q(store_url, f"SELECT {cols} FROM trajectory WHERE run_id = {run_id} ORDER BY 1, 2") == q(
        store_url, f"SELECT {cols} FROM trajectory WHERE run_id = {fresh} ORDER BY 1, 2"
    )


def _live_run_is_refused(url: str, run_id: int, cli) -> None:  # noqa: ANN001
    """``--resume`` and ``runs delete`` refuse a run another live process works on; nothing changes."""
    count = f"SELECT (SELECT count(*) FROM runs) AS r, (SELECT count(*) FROM batches WHERE run_id = {run_id}) AS b"
    before = q(url, count)[0]
    code, _, err = cli("--db", url, "attack", "--resume", str(run_id))
    assert code == ConflictError.exit_code and "still running" in err and "--join" in err, err
    code, _, err = cli("--db", url, "runs", "delete", str(run_id), "--yes")
    assert code == ConflictError.exit_code and "still running" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    after = q(url, count)[0]
    assert after["r"] == before["r"] and after["b"] >= before["b"]  # the run is still there, still growing
    assert q(url, f"SELECT status FROM runs WHERE run_id = {run_id}") == [{"status": "running"}]


@pytest.mark.parametrize("sig, status", [(signal.SIGKILL, "running"), (signal.SIGTERM, "interrupted")])
def test_killed_process_is_resumable(tmp_path: Path, sig: int, status: str, cli) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path / 'store.db'}"
    env = dict(os.environ, ADVDB_DATABASE_URL=url)
    cmd = [
        sys.executable,
        "-c",
        "from advdb.cli import main; main()",
        "attack",
        "--loss",
        "ce-sign",
        "--n",
        "400",
        "--iterations",
        "60",
        "--batch-size",
        "20",
        "--device",
        "cpu",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    batches = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
        try:
            batches = q(url, "SELECT count(*) AS n FROM batches")[0]["n"]
        except Exception:  # noqa: BLE001 - the store may not exist yet
            continue
        if batches >= 2:
            break
    assert proc.poll() is None, proc.stderr.read().decode()
    rid = q(url, "SELECT run_id FROM runs")[0]["run_id"]
    if sig == signal.SIGKILL:  # while the process works on the run, nobody else may resume or delete it
        try:
            _live_run_is_refused(url, rid, cli)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    proc.send_signal(sig)
    rc = proc.wait()
    run = q(url, "SELECT run_id, status FROM runs")[0]
    # SIGKILL: nobody could mark the run, it is found stale by its dead pid; SIGTERM: marked interrupted
    assert run["status"] == status
    if sig == signal.SIGTERM:
        assert rc == 130 and "--resume" in proc.stderr.read().decode()
    res = subprocess.run(
        [*cmd[:3], "attack", "--resume", str(run["run_id"]), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["status"] == "finished" and info["images"] == 400
    rows = q(
        url, f"SELECT count(*) AS n, count(DISTINCT (image_id, iteration)) AS k FROM trajectory WHERE run_id = {rid}"
    )
    assert rows == [{"n": 400 * 61, "k": 400 * 61}]


def test_finished_run_cannot_be_resumed(sqlite_url: str, cli) -> None:  # noqa: ANN001
    with open_store(sqlite_url) as store:
        run_id = run_attack(store, spec(n=8))
    code, _, err = cli("--db", sqlite_url, "attack", "--resume", str(run_id))
    assert code != 0 and "already finished" in err


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--loss", "hinge"], 2, "hinge"),
        (["--mode", "fast"], 2, "fast"),
        (["--n", "0"], ConfigError.exit_code, "--n"),
        (["--n", "100000"], DataError.exit_code, "use --n"),
        (["--iterations", "0"], ConfigError.exit_code, "iterations"),
        (["--alpha", "abc"], ConfigError.exit_code, "--alpha"),
        (["--norm", "3"], ConfigError.exit_code, "norm"),
        (["--model", "resnet9000"], ConfigError.exit_code, "resnet9000"),
        (["--dataset", "mnist"], ConfigError.exit_code, "mnist"),
        (
            ["--device", "cuda"] if not torch.cuda.is_available() else ["--device", "tpu"],
            ConfigError.exit_code,
            "device",
        ),
        (["--batch-size", "0"], ConfigError.exit_code, "batch-size"),
        (["--model", "resnet18", "--weights", "/nonexistent/w.pth"], DataError.exit_code, "does not exist"),
        (
            ["--model", "resnet18", "--weights", "random", "--dataset", "imagefolder"],
            ConfigError.exit_code,
            "--data-dir",
        ),
        (
            ["--model", "resnet18", "--weights", "random", "--dataset", "imagefolder", "--data-dir", "/nonexistent"],
            DataError.exit_code,
            "does not exist",
        ),
        (["--attack", "ifgs", "--mode", "equal-perturbation"], ConfigError.exit_code, "--mode"),
        (["--resume", "12345"], 4, "no run 12345"),
    ],
)
def test_bad_options_are_one_clear_line_and_leave_the_store_untouched(
    sqlite_url: str, cli, args: list, code: int, message: str
) -> None:  # noqa: ANN001
    with open_store(sqlite_url) as store:
        run_attack(store, spec(n=8))
    before = q(
        sqlite_url,
        "SELECT (SELECT count(*) FROM runs) r, (SELECT count(*) FROM trajectory) t, (SELECT count(*) FROM datasets) d",
    )
    got, out, err = (
        cli("--db", sqlite_url, "attack", "--iterations", "3", *args)
        if "--iterations" not in args
        else cli("--db", sqlite_url, "attack", *args)
    )
    assert got == code, err
    assert message in err and "Traceback" not in err
    after = q(
        sqlite_url,
        "SELECT (SELECT count(*) FROM runs) r, (SELECT count(*) FROM trajectory) t, (SELECT count(*) FROM datasets) d",
    )
    assert before == after


def test_corrupt_and_mismatched_weight_files(tmp_path: Path, sqlite_url: str, cli) -> None:  # noqa: ANN001
    junk = tmp_path / "junk.pth"
    junk.write_bytes(os.urandom(1000))
    code, _, err = cli("--db", sqlite_url, "attack", "--model", "resnet18", "--weights", str(junk))
    assert code == DataError.exit_code and "cannot be loaded" in err
    from advdb.models.digits_cnn import digits_cnn

    wrong = tmp_path / "wrong.pth"
    torch.save(digits_cnn().state_dict(), wrong)
    code, _, err = cli("--db", sqlite_url, "attack", "--model", "resnet18", "--weights", str(wrong))
    assert code == DataError.exit_code and "does not fit resnet18" in err


def test_torchvision_model_on_synthetic_images(sqlite_url: str, tmp_path: Path) -> None:
    import torchvision

    weights = tmp_path / "resnet18.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=1000).state_dict(), weights)
    with open_store(sqlite_url) as store:
        run_id = run_attack(
            store,
            AttackSpec(
                params={"loss": "logit", "mode": "equal-perturbation", "iterations": 2},
                model="resnet18",
                weights=str(weights),
                dataset="synthetic",
                image_shape=(3, 32, 32),
                n=4,
                batch_size=2,
                image_format="npy",
            ),
        )
        run = get_run(store, run_id)
        counts = run_counts(store, run_id)
    assert run.synthetic and counts.artifacts == 4
    assert q(sqlite_url, f"SELECT count(*) AS n FROM trajectory WHERE run_id = {run_id}") == [{"n": 4 * 3}]
    arts = q(sqlite_url, "SELECT path FROM artifacts")
    assert all(p["path"].endswith(".npy") for p in arts)


def test_imagefolder_dataset(tmp_path: Path) -> None:
    from PIL import Image

    from advdb.data import create_dataset

    rng = np.random.default_rng(0)
    for c in ("n001", "n002"):
        (tmp_path / c).mkdir()
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / c / f"{i}.png")
    ds = create_dataset("imagefolder", data_dir=str(tmp_path), image_size=32)
    assert len(ds) == 4 and ds.n_classes == 2 and list(ds.labels) == [0, 0, 1, 1]
    x = ds.load([0, 3])
    assert x.shape == (2, 3, 32, 32) and 0 <= float(x.min()) and float(x.max()) <= 1
    (tmp_path / "n002" / "1.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="1.png"):
        ds.load([3])
