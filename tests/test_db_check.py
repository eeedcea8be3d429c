"""``advdb db check`` and ``advdb db gc`` on real tiny attack runs, SQLite and PostgreSQL.

Each planted problem (a missing file, a changed byte, a lost trajectory row, a lost sample,
orphan files, an orphan row, a columnar copy that disagrees) must be found and named, and
nothing else; ``gc`` lists the files no row references and deletes only those.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
from sqlalchemy import create_engine, text

from advdb.runner import run_attack
from advdb.spec import AttackSpec
from advdb.store import open_store

T = 3


def attack_runs(url: str, k: int = 2) -> list[int]:
    """``k`` finished attack runs of 4 images in batches of 2, T = 3 (4 rows per image)."""
    spec = AttackSpec(params={"loss": "ce", "mode": "equal-perturbation", "iterations": T}, n=4, batch_size=2)
    with open_store(url) as store:
        return [run_attack(store, spec) for _ in range(k)]


def execute(url: str, sql: str, **params: object) -> list[tuple]:
    """Plant a problem with plain SQL (the engine is closed again at once)."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.begin() as con:
            result = con.execute(text(sql), params)
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def artifacts(url: str, run_id: int) -> list[tuple[int, str, int]]:
    """(image, path, batch) of the run's files."""
    return execute(
        url,
        "SELECT a.image_id, a.path, s.batch_index FROM artifacts a JOIN samples s USING (run_id, image_id) "
        "WHERE a.run_id = :r ORDER BY s.batch_index, a.image_id",
        r=run_id,
    )


def root_of(url: str) -> Path:
    with open_store(url) as store:
        return store.location.artifacts_dir


def check(cli, url: str, *args: str) -> tuple[int, dict]:  # noqa: ANN001
    code, out, err = cli("--db", url, "db", "check", "--json", *args)
    assert err == "" or "note:" in err, err
    return code, json.loads(out)


def named(report: dict) -> set[tuple]:
    return {(p["kind"], p["run_id"], p["batch_index"], p["path"]) for p in report["problems"]}


def test_healthy_store_passes_and_each_planted_problem_is_named(store_url: str, cli) -> None:  # noqa: ANN001
    a, b = attack_runs(store_url)
    root = root_of(store_url)
    code, out, _ = cli("--db", store_url, "sql", "SELECT count(*) AS n FROM trajectory")  # builds the columnar copy
    assert code == 0, out
    code, report = check(cli, store_url)
    assert (code, report["ok"], report["problems"]) == (0, True, [])
    assert report["checked"]["trajectory_rows"] == 2 * 4 * (T + 1) and report["checked"]["files"] == 8
    assert report["checked"]["columnar"] == "agrees" and report["checked"]["hashed"] is True
    code, out, _ = cli("--db", store_url, "db", "check")
    assert code == 0 and "no problems" in out

    (img0, p0, b0), (img1, p1, _), (img2, p2, b2), (img3, p3, b3) = artifacts(store_url, a)
    (root / p2).unlink()  # a missing file
    data = bytearray((root / p3).read_bytes())  # a changed byte (same size)
    data[len(data) // 2] ^= 0xFF
    (root / p3).write_bytes(bytes(data))
    (first,) = execute(store_url, "SELECT first_row FROM batches WHERE run_id = :r AND batch_index = 1", r=a)[0]
    execute(store_url, "DELETE FROM trajectory WHERE row_id = :i", i=first + 1)  # a lost trajectory row
    execute(store_url, "DELETE FROM samples WHERE run_id = :r AND image_id = :i", r=a, i=img0)  # a lost sample
    (root / f"run-{a}" / "999-0123456789abcdef.png").write_bytes(b"not referenced")  # orphan files
    (root / f"run-{a}" / f"{img1}-0123456789abcdef.png.tmp4242").write_bytes(b"half written")
    execute(  # an orphan row: a trajectory row of a run that does not exist
        store_url,
        "INSERT INTO trajectory SELECT row_id + 1000000, 9999, image_id, iteration, search_step, pred, p_init, "
        "p_target, p_other, z_init, z_target, z_other, loss, grad_l2, step_l2, l1, l2, linf FROM trajectory "
        "WHERE row_id = :i",
        i=first,
    )
    execute(store_url, "DELETE FROM batches WHERE run_id = :r AND batch_index = 1", r=b)  # a lost batch row
    copy = _columnar(store_url)
    with duckdb.connect(str(copy)) as con:  # the copy loses rows of run b
        con.execute("DELETE FROM trajectory WHERE run_id = ? AND iteration = 0", [b])

    code, report = check(cli, store_url)
    assert code == 1 and report["ok"] is False
    lost_batch_of_b = {  # its samples and rows stay; a finished run lacks a batch
        ("missing-batch", b, 1, None),
        ("stray-samples", b, 1, None),
        ("extra-trajectory", b, None, None),
    }
    assert named(report) == {
        ("missing-samples", a, b0, None),
        ("missing-trajectory", a, 1, None),
        ("missing-file", a, b2, p2),
        ("hash-mismatch", a, b3, p3),
        ("orphan-file", a, None, f"run-{a}/999-0123456789abcdef.png"),
        ("orphan-file", a, None, f"run-{a}/{img1}-0123456789abcdef.png.tmp4242"),
        ("orphan-rows", 9999, None, None),
        ("columnar-mismatch", a, None, str(copy)),  # the copy still holds the lost row
        ("columnar-mismatch", b, None, str(copy)),
        *lost_batch_of_b,
    }
    details = {p["kind"]: p["detail"] for p in report["problems"]}
    assert "8 trajectory rows lie outside" in details["extra-trajectory"]
    assert "1 of its 8 trajectory rows are missing" in details["missing-trajectory"]
    assert "of 4 rows" in details["missing-trajectory"]  # names the image short of its T + 1 rows
    assert "trajectory" in details["orphan-rows"] and "9999" in details["orphan-rows"]

    code, out, err = cli("--db", store_url, "db", "check")  # the table names every kind
    assert code == 1 and "12 problems" in out, out + err
    for kind in ("missing-samples", "missing-trajectory", "missing-file", "hash-mismatch", "orphan-file"):
        assert kind in out

    code, report = check(cli, store_url, "--no-hash")  # sizes only: the changed byte goes unseen
    assert code == 1 and report["checked"]["hashed"] is False
    assert "hash-mismatch" not in named_kinds(report) and "missing-file" in named_kinds(report)

    code, report = check(cli, store_url, "--run", str(b))  # one run: only its problems
    assert (code, named(report)) == (1, {("columnar-mismatch", b, None, str(copy)), *lost_batch_of_b})


def named_kinds(report: dict) -> set[str]:
    return {p["kind"] for p in report["problems"]}


def _columnar(url: str) -> Path:
    from advdb.analytics.columnar import columnar_path

    with open_store(url) as store:
        return columnar_path(store.location)


def test_gc_lists_stray_files_and_deletes_only_them(store_url: str, cli, tmp_path: Path) -> None:  # noqa: ANN001
    a, b = attack_runs(store_url)
    root = root_of(store_url)
    files_a = sorted(p.relative_to(root).as_posix() for p in (root / f"run-{a}").iterdir())
    kept = [root / p for _, p, _ in artifacts(store_url, b)]
    # `runs delete` on a machine where the artifact root is not mounted: the rows go, the files stay
    os.environ["ADVDB_ARTIFACTS_DIR"] = str(tmp_path / "elsewhere")
    try:
        assert cli("--db", store_url, "runs", "delete", str(a), "--yes")[0] == 0
    finally:
        os.environ["ADVDB_ARTIFACTS_DIR"] = str(root)
    (root / f"run-{b}" / "7-0000000000000000.npy.tmp999").write_bytes(b"x" * 10)  # a crashed writer's temp file

    code, out, err = cli("--db", store_url, "db", "gc", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert sorted(f["path"] for f in listed["files"]) == sorted([*files_a, f"run-{b}/7-0000000000000000.npy.tmp999"])
    assert listed["n_bytes"] == sum((root / f["path"]).stat().st_size for f in listed["files"])
    assert {f["reason"] for f in listed["files"] if f["run_id"] == a} == {f"run {a} does not exist"}
    assert all((root / f["path"]).exists() for f in listed["files"])  # read-only without --delete
    code, out, _ = cli("--db", store_url, "db", "gc")
    assert code == 0 and "advdb db gc --delete" in out

    code, out, err = cli("--db", store_url, "db", "gc", "--delete")
    assert code == 0 and "deleted 5 files" in out, out + err
    assert not (root / f"run-{a}").exists()  # its files and the empty folder
    assert all(p.exists() for p in kept) and (root / ".advdb-store").exists()
    assert json.loads(cli("--db", store_url, "db", "gc", "--json")[1])["files"] == []
    code, report = check(cli, store_url)
    assert (code, report["problems"]) == (0, [])


def test_gc_never_deletes_a_referenced_file_or_a_live_runs_file(sqlite_url: str, tmp_path: Path) -> None:
    from advdb.store.integrity import StrayFile, _remove, _scan, collect_garbage
    from advdb.store.runs import create_run

    os.environ["ADVDB_ARTIFACTS_DIR"] = str(tmp_path / "artifacts")
    try:
        (a,) = attack_runs(sqlite_url, 1)
        with open_store(sqlite_url) as store:
            root = store.location.artifacts_dir
            referenced = artifacts(sqlite_url, a)[0][1]
            # a list made before the file's row committed: the check just before deleting keeps it
            scanned = _scan(root, None)
            keep, _ = _remove(store, root, [StrayFile(referenced, a, 1, "stale list")], scanned)
            assert referenced in keep and (root / referenced).exists()
            # a live run's files may be written before their rows commit: left alone
            live = create_run(store, kind="circles", config={}).run_id
            sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            try:
                execute(sqlite_url, "UPDATE runs SET pid = :p WHERE run_id = :r", p=sleeper.pid, r=live)
                (root / f"run-{live}").mkdir()
                (root / f"run-{live}" / "in-flight.png").write_bytes(b"soon referenced")
                report = collect_garbage(store, delete=True)
                assert report.live_runs == (live,) and report.files == ()
                assert (root / f"run-{live}" / "in-flight.png").exists()
            finally:
                sleeper.kill()
                sleeper.wait()
            assert [f.path for f in collect_garbage(store).files] == [f"run-{live}/in-flight.png"]
    finally:
        os.environ.pop("ADVDB_ARTIFACTS_DIR", None)


def test_bad_input_is_one_line_and_touches_nothing(sqlite_url: str, cli, tmp_path: Path) -> None:  # noqa: ANN001
    missing = tmp_path / "none.db"
    code, out, err = cli("--db", str(missing), "db", "check")
    assert code == 4 and "there is no store" in err and len(err.strip().splitlines()) == 1
    assert not missing.exists()
    assert cli("--db", sqlite_url, "db", "upgrade")[0] == 0
    code, _, err = cli("--db", sqlite_url, "db", "check", "--run", "42")
    assert code == 4 and "42" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("--db", sqlite_url, "db", "check", "--threads", "0")
    assert code == 2 and "--threads" in err
    # a root that does not say it is this store's (no marker): gc lists, but deletes nothing
    stray = tmp_path / "foreign" / "run-1" / "1-00.png"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"someone else's")
    os.environ["ADVDB_ARTIFACTS_DIR"] = str(tmp_path / "foreign")
    try:
        code, out, _ = cli("--db", sqlite_url, "db", "gc", "--json")
        assert code == 0 and [f["path"] for f in json.loads(out)["files"]] == ["run-1/1-00.png"]
        code, _, err = cli("--db", sqlite_url, "db", "gc", "--delete")
        assert code == 3 and "nothing deleted" in err and stray.exists()
    finally:
        os.environ.pop("ADVDB_ARTIFACTS_DIR", None)
