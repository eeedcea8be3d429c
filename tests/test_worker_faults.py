"""What clusters do to a run's workers: a writer killed with its queue full, a batch committed twice,
a torchrun launch without an id, a full disk, a reused pid, a shared host name, clock skew, a batch
that always fails, and a PostgreSQL server stopped for 30 s in the middle of a 4-worker run.

Each ends with the rows and files of an uninterrupted run, or a one-line error and an exact resume.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from advdb.errors import StoreError
from advdb.store import open_store
from advdb.store.workers import committed_batches, list_workers
from test_scale_out import BASE, advdb, check_complete, env_for, q, run_rows, single_process_reference, start, workers

ONE_LINE = "Traceback"


def one_line_error(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    assert lines and ONE_LINE not in stderr, stderr[-3000:]
    return lines[-1]


def writer_of(pid: int) -> list[int]:
    """The pid of the attack process's writer child (read from /proc)."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for kid in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{kid}/cmdline").read_bytes()
            if b"advdb.store.writer" in cmdline:
                out.append(int(kid))
    return out


def wait_for(predicate, timeout: float, what: str, step: float = 0.02) -> None:  # noqa: ANN001
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(step)


def test_writer_killed_with_its_queue_full_stops_the_worker_and_resume_is_exact(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The writer is paused until the queue to it is full, then SIGKILLed: the worker must notice, not hang."""
    n, batch = 96, 4
    victim = start(sqlite_url, *BASE, "-n", str(n), "--batch-size", str(batch), "--json", cwd=tmp_path)
    wait_for(lambda: bool(writer_of(victim.pid)), 120, "the writer process")
    writer = writer_of(victim.pid)[0]
    with open_store(sqlite_url) as store:
        wait_for(lambda: bool(committed_batches(store, 1)), 120, "a first committed batch")
    os.kill(writer, signal.SIGSTOP)
    time.sleep(3.0)  # the attack runs on: the queue fills and the worker waits for room
    assert victim.poll() is None
    os.kill(writer, signal.SIGKILL)
    _, err = victim.communicate(timeout=30)  # it used to hang here for ever
    assert victim.returncode != 0
    assert "--resume 1" in one_line_error(err) and "writer" in one_line_error(err)
    ws = workers(sqlite_url, 1)
    assert [w["status"] for w in ws] == ["failed"]
    with open_store(sqlite_url) as store:
        left = len(committed_batches(store, 1))
    assert 0 < left < n // batch
    res = advdb(sqlite_url, "runs", "show", "1", "--json", cwd=tmp_path)
    assert json.loads(res.stdout)["status"] == "interrupted"
    resumed = advdb(sqlite_url, "attack", "--resume", "1", "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    check_complete(sqlite_url, 1, n, elsewhere=tmp_path / "elsewhere")
    ref = single_process_reference(sqlite_url, tmp_path / "ref", "-n", str(n), "--batch-size", str(batch))
    assert run_rows(sqlite_url, 1) == run_rows(sqlite_url, ref)


def test_a_second_attempt_never_changes_a_committed_file(sqlite_url: str, tmp_path: Path) -> None:
    """Files are named by their content: another worker's different bytes for the same image go elsewhere."""
    from advdb.artifacts import sha256_of
    from advdb.store.writer import ArtifactPayload, write_artifacts

    res = advdb(sqlite_url, *BASE, "-n", "8", "--batch-size", "4", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    with open_store(sqlite_url) as store:
        location = store.location
    before = {p.name: sha256_of(p) for p in location.artifacts_dir.rglob("*.png")}
    assert len(before) == 8
    ids = np.arange(1, 5, dtype=np.int32)
    rng = np.random.default_rng(0)
    other = ArtifactPayload(  # the same images of batch 0, as another device would have computed them
        image_id=ids,
        pixels=rng.integers(0, 256, (4, 1, 8, 8), dtype=np.uint8),
        format="png",
        saved_pred=np.zeros(4, np.int32),
        still_adversarial=np.zeros(4, bool),
    )
    written = write_artifacts(location, 1, other)
    after = {p.name: sha256_of(p) for p in location.artifacts_dir.rglob("*.png")}
    assert {k: after[k] for k in before} == before  # every committed file as it was
    assert set(written["path"]).isdisjoint({f"run-1/{k}" for k in before})
    check_complete(sqlite_url, 1, 8, elsewhere=tmp_path / "elsewhere")


def test_torchrun_without_a_launch_id_is_refused(sqlite_url: str, tmp_path: Path) -> None:
    """torchrun without --rdzv-id or --standalone gives every launch the id 'none': that is no key."""
    first = advdb(sqlite_url, *BASE, "-n", "8", "--batch-size", "4", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    res = subprocess.run(  # the command: no --standalone, no --rdzv-id
        [torchrun, "--nproc-per-node", "2", "--master-port", str(_free_port()), "-m", "advdb",
         "attack", "--loss", "logit", "-n", "8", "-T", "2"],
        env=env_for(sqlite_url), cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert res.returncode != 0  # (torchrun prints its own traceback of the failed ranks; each rank says one line)
    refusals = [ln for ln in res.stderr.splitlines() if ln.startswith("advdb: error:")]
    assert len(refusals) == 2, res.stderr[-3000:]
    assert all("TORCHELASTIC_RUN_ID=none" in ln and "--standalone" in ln and "--join-key" in ln for ln in refusals)
    listed = advdb(sqlite_url, "runs", "list", "--json", cwd=tmp_path)
    assert [r["run_id"] for r in json.loads(listed.stdout)] == [1]  # nothing joined, nothing created


def _limit_file_size(limit: int):  # noqa: ANN202
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.postgres
def test_full_disk_is_one_line_and_resumes_exactly(pg_url: str, tmp_path: Path) -> None:
    """No image file can be written (a file-size limit, as on a full disk): one line, nothing half-recorded.

    On PostgreSQL, so that the limit meets only the image files (the store's own files are the server's).
    """
    n, batch, art = 32, 4, tmp_path / "artifacts"
    args = [*BASE, "-n", str(n), "--batch-size", str(batch), "--image-format", "npy"]
    planned = advdb(pg_url, *args, "--plan-only", "--json", cwd=tmp_path, ADVDB_ARTIFACTS_DIR=str(art))
    assert planned.returncode == 0, planned.stderr
    proc = subprocess.run(  # an 8x8 npy file is 384 bytes: none fits under 300
        [sys.executable, "-m", "advdb", "attack", "--resume", "1"],
        env=env_for(pg_url, ADVDB_ARTIFACTS_DIR=str(art)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=_limit_file_size(300),
    )
    line = one_line_error(proc.stderr)
    assert proc.returncode != 0 and "no room" in line and "--resume 1" in line, proc.stderr
    counts = q(pg_url, "SELECT (SELECT count(*) FROM trajectory) AS t, (SELECT count(*) FROM samples) AS s, "
               "(SELECT count(*) FROM artifacts) AS a, (SELECT count(*) FROM batches) AS b")  # fmt: skip
    assert counts == [{"t": 0, "s": 0, "a": 0, "b": 0}]
    assert not [p for p in art.rglob("run-*/*") if p.is_file()]  # no partial file either
    resumed = advdb(pg_url, "attack", "--resume", "1", "--json", cwd=tmp_path, ADVDB_ARTIFACTS_DIR=str(art))
    assert resumed.returncode == 0, resumed.stderr
    ref = advdb(pg_url, *args, "--json", cwd=tmp_path / "ref", ADVDB_ARTIFACTS_DIR=str(art))
    assert ref.returncode == 0, ref.stderr
    assert run_rows(pg_url, 1) == run_rows(pg_url, json.loads(ref.stdout)["run_id"])


def test_worker_identity_survives_pid_reuse_and_shared_host_names(store_url: str) -> None:
    """Same node: pid and start time must both match. Another pid namespace under the same host name: the lease."""
    from advdb.store.models import Worker
    from advdb.store.runs import create_run
    from advdb.store.workers import list_workers, reap_dead_workers, register_worker

    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        with open_store(store_url) as store:
            run = create_run(store, kind="attack", config={})
            me = register_worker(store, run.run_id, device="cpu", rank=None, lease_seconds=60)
            reused = register_worker(store, run.run_id, device="cpu", rank=None, lease_seconds=60)
            neighbour = register_worker(store, run.run_id, device="cpu", rank=None, lease_seconds=60)
            with store.session() as s:
                w = s.get(Worker, reused)  # a dead worker whose pid now belongs to another process
                w.pid, w.process_start = sleeper.pid, (w.process_start or 0) + 12345
                n = s.get(Worker, neighbour)  # a container with the same host name, another pid namespace
                n.pid, n.node = 999_999, "another-boot/pid:[1]"
            assert {w.worker_id: w.live for w in list_workers(store, run.run_id)} == {
                me: True,
                reused: False,
                neighbour: True,  # its heartbeat is fresh: its pid means nothing here
            }
            assert reap_dead_workers(store, run.run_id) == 1
            assert {w.worker_id: w.status for w in list_workers(store, run.run_id)} == {
                me: "running",
                reused: "dead",
                neighbour: "running",
            }
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.postgres
def test_leases_use_the_database_clock(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker whose clock runs five minutes ahead takes no live lease and keeps its own alive."""
    import advdb.store.records as records
    import advdb.store.workers as workers_module
    from advdb.store.models import Worker
    from advdb.store.runs import create_run
    from advdb.store.workers import claim_batch, ensure_claims, list_workers, register_worker

    with open_store(pg_url) as store:
        run = create_run(store, kind="attack", config={})
        ensure_claims(store, run.run_id, 1)
        a = register_worker(store, run.run_id, device="cpu", rank=None, lease_seconds=30)
        with store.session() as s:
            s.get(Worker, a).host = "elsewhere"
        assert claim_batch(store, run.run_id, a, 30) == 0
        real = records.utcnow
        for module in (records, workers_module):  # this process's clock, wherever it is read
            monkeypatch.setattr(module, "utcnow", lambda: real() + dt.timedelta(minutes=5))
        b = register_worker(store, run.run_id, device="cpu", rank=None, lease_seconds=30)
        assert claim_batch(store, run.run_id, b, 30) is None  # a's lease runs by the database's clock
        assert [w.live for w in list_workers(store, run.run_id) if w.worker_id == a] == [True]


def test_a_batch_that_keeps_failing_fails_the_run_naming_it(store_url: str) -> None:
    from advdb.store.runs import create_run
    from advdb.store.workers import claim_batch, ensure_claims, register_worker, reset_attempts

    with open_store(store_url) as store:
        run = create_run(store, kind="attack", config={})
        ensure_claims(store, run.run_id, 2)
        for _ in range(3):  # three workers take batch 0 in turn and die with it (their leases run out)
            w = register_worker(store, run.run_id, device="cpu", rank=None, lease_seconds=0.01)
            assert claim_batch(store, run.run_id, w, 0.01, max_attempts=3) == 0
            time.sleep(0.05)
        w = register_worker(store, run.run_id, device="cpu", rank=None, lease_seconds=60)
        with pytest.raises(StoreError, match=rf"batch 0 of run {run.run_id} was taken 3 times.*--resume"):
            claim_batch(store, run.run_id, w, 60, max_attempts=3)
        reset_attempts(store, run.run_id)  # what --resume does
        assert claim_batch(store, run.run_id, w, 60, max_attempts=3) == 0


# --- PostgreSQL stopped for 30 s under four workers ------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateServer:
    """A PostgreSQL server of this test's own, to stop and start (the shared test server must stay up)."""

    def __init__(self, bindir: Path, root: Path) -> None:
        self.bindir, self.data, self.port = bindir, root / "data", _free_port()
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        self.start()
        subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "advdb"],
                       check=True)  # fmt: skip
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/advdb"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_postgres, str(self.bindir / tool), *args], check=True, capture_output=True)

    def start(self) -> None:
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.data.parent} -c fsync=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-w", "-l", str(self.data.parent / "log"), "-o", opts, "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


@pytest.fixture
def private_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateServer]:
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not bins or not os.environ.get("ADVDB_TEST_PG_URL"):
        if os.environ.get("ADVDB_REQUIRE_PG") == "1":
            pytest.fail("PostgreSQL server binaries are required (see .ci/pg.sh)")
        pytest.skip("no PostgreSQL server binaries")
    server = PrivateServer(bins[-1].parent, Path(f"/tmp/advdb-pg-{uuid.uuid4().hex[:8]}"))
    yield server
    try:
        server.stop()
    except subprocess.CalledProcessError:
        pass  # a failed test left it stopped
    finally:
        shutil.rmtree(server.data.parent, ignore_errors=True)


@pytest.mark.postgres
def test_postgres_stopped_for_30_s_under_four_workers_finishes_exactly_once(
    private_pg: PrivateServer, tmp_path: Path
) -> None:
    url = private_pg.url
    n, batch, iterations = 128, 4, 30
    args = [*BASE, "-n", str(n), "--batch-size", str(batch), "-T", str(iterations)]
    planned = advdb(url, *args, "--plan-only", "--json", cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    run_id = json.loads(planned.stdout)["run_id"]
    procs = [
        start(url, "attack", "--join", str(run_id), "--lease", "10", "--json", cwd=tmp_path / f"w{k}") for k in range(4)
    ]
    with open_store(url) as store:  # every worker registered: past its start-up, at work
        wait_for(lambda: len(list_workers(store, run_id)) == 4, 300, "four workers at work", step=0.05)
        assert len(committed_batches(store, run_id)) < n // batch - 4  # the outage comes mid-run
    private_pg.stop()
    time.sleep(30)
    ended = [p.communicate()[1][-2000:] for p in procs if p.poll() is not None]
    assert not ended, ended  # every worker waits for the database
    private_pg.start()
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    assert {w["status"] for w in workers(url, run_id)} == {"finished"}
    check_complete(url, run_id, n, elsewhere=tmp_path / "elsewhere", iterations=iterations)
    ref = single_process_reference(url, tmp_path / "ref", "-n", str(n), "--batch-size", str(batch), "-T",
                                   str(iterations))  # fmt: skip
    assert run_rows(url, run_id) == run_rows(url, ref)
