"""Bulk ingest: one transaction per batch, exactly once, nothing left behind by a failure."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sqlalchemy import func, select

from advdb.errors import StoreError
from advdb.store import open_store
from advdb.store.columns import SAMPLE_COLUMNS
from advdb.store.ingest import BatchRecord
from advdb.store.location import resolve_store
from advdb.store.models import Batch, Sample, Trajectory
from advdb.store.runs import create_run, delete_run, run_counts
from advdb.store.writer import ArtifactPayload, BackgroundWriter
from advdb.vocabulary import TRAJECTORY_MEASURES

STAT = TRAJECTORY_MEASURES


def make_batch(run_id: int, b: int, n_img: int = 4, rows: int = 6) -> BatchRecord:
    rng = np.random.default_rng(b)
    n = n_img * rows
    ids = np.arange(b * n_img, (b + 1) * n_img, dtype=np.int32) + 1
    traj = {
        "image_id": np.repeat(ids, rows),
        "iteration": np.tile(np.arange(rows, dtype=np.int32), n_img),
        "search_step": np.zeros(n, np.int16),
        "pred": rng.integers(0, 10, n).astype(np.int16),
        **{k: rng.random(n, dtype=np.float32) for k in STAT},
    }
    samples = {k: rng.random(n_img).astype(np.float32) for k in SAMPLE_COLUMNS}
    samples.update(
        image_id=ids,
        batch_index=np.full(n_img, b),
        label=np.zeros(n_img, np.int32),
        target=np.ones(n_img, np.int32),
        final_pred=np.ones(n_img, np.int32),
        first_success_iter=np.array([2.0, np.nan, 5.0, np.nan][:n_img] + [1.0] * max(0, n_img - 4)),
        n_iterations=np.full(n_img, rows),
    )
    return BatchRecord(run_id=run_id, batch_index=b, trajectory=traj, samples=samples, attack_seconds=0.5)


def _images(store, n: int = 16) -> None:  # noqa: ANN001
    from advdb.store.catalogue import register_dataset

    register_dataset(
        store, name="t", kind="test", fingerprint="f", labels=np.zeros(n, np.int64), image_shape=[1, 2, 2], n_classes=10
    )


def test_batch_commits_once(store_url: str) -> None:
    with open_store(store_url) as store:
        _images(store)
        run = create_run(store, kind="attack", config={})
        with BackgroundWriter(store.location) as w:
            w.submit(make_batch(run.run_id, 0))
            w.submit(make_batch(run.run_id, 1))
            w.submit(make_batch(run.run_id, 0))  # the same batch again: refused, not duplicated
        counts = run_counts(store, run.run_id)
        assert (counts.batches, counts.samples, counts.trajectory_rows) == (2, 8, 48)
        with store.session() as s:
            nulls = s.scalar(select(func.count()).select_from(Sample).where(Sample.first_success_iter.is_(None)))
            assert nulls == 4  # NaN arrives as NULL
            fsi = sorted(x for x in s.scalars(select(Sample.first_success_iter)) if x is not None)
            assert fsi == [2, 2, 5, 5]
            t = s.scalars(
                select(Trajectory).where(
                    Trajectory.run_id == run.run_id, Trajectory.image_id == 1, Trajectory.iteration == 3
                )
            ).one()
            b0 = make_batch(run.run_id, 0)
            assert math.isclose(t.l2, float(b0.trajectory["l2"][3]), rel_tol=1e-6)
            assert s.get(Batch, (run.run_id, 0)).n_rows == 24


def test_failed_batch_leaves_nothing(store_url: str) -> None:
    with open_store(store_url) as store:
        _images(store)
        run = create_run(store, kind="attack", config={})
        bad = make_batch(run.run_id, 0)
        bad.samples = dict(bad.samples, label=[0, 0, None, 0])  # NOT NULL violated
        with pytest.raises(StoreError, match="batch 0"):
            with BackgroundWriter(store.location) as w:
                w.submit(bad)
                w.drain()
        counts = run_counts(store, run.run_id)
        assert (counts.batches, counts.samples, counts.trajectory_rows) == (0, 0, 0)
        with store.session() as s:
            assert s.scalar(select(func.count()).select_from(Trajectory)) == 0
        with BackgroundWriter(store.location) as w:  # and the batch can still be committed properly
            w.submit(make_batch(run.run_id, 0))
        assert run_counts(store, run.run_id).trajectory_rows == 24


def test_artifact_files_are_written_with_their_hash(store_url: str) -> None:
    import hashlib

    with open_store(store_url) as store:
        _images(store)
        run = create_run(store, kind="attack", config={})
        pixels = np.random.default_rng(0).integers(0, 256, (4, 1, 8, 8)).astype(np.uint8)
        payload = ArtifactPayload(
            image_id=np.arange(1, 5),
            pixels=pixels,
            format="png",
            saved_pred=np.ones(4),
            still_adversarial=np.array([True, True, False, True]),
        )
        with BackgroundWriter(store.location) as w:
            w.submit(make_batch(run.run_id, 0), payload)
        from advdb import artifacts
        from advdb.store.models import Artifact

        with store.session() as s:
            arts = list(s.scalars(select(Artifact).order_by(Artifact.image_id)))
        assert [a.still_adversarial for a in arts] == [True, True, False, True]
        for a, px in zip(arts, pixels, strict=True):
            path = store.location.artifacts_dir / a.path
            assert hashlib.sha256(path.read_bytes()).hexdigest() == a.sha256
            np.testing.assert_array_equal(artifacts.load(path, expected_sha256=a.sha256), px.astype(np.float32) / 255)
        delete_run(store, run.run_id)
        assert not (store.location.artifacts_dir / f"run-{run.run_id}").exists()
        assert run_counts(store, run.run_id).artifacts == 0


def test_writer_reports_an_unreachable_store(tmp_path) -> None:  # noqa: ANN001
    loc = resolve_store(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
    w = BackgroundWriter(loc)
    with pytest.raises(StoreError):
        w.insert("runs", {"run_id": [1]})
    w.stop()


def test_each_batch_owns_a_range_of_row_ids(store_url: str) -> None:
    with open_store(store_url) as store:
        _images(store)
        run = create_run(store, kind="attack", config={})
        with BackgroundWriter(store.location) as w:
            for b in (2, 0, 1):
                w.submit(make_batch(run.run_id, b))
        with store.session() as s:
            batches = s.execute(
                select(Batch.batch_index, Batch.first_row, Batch.n_rows).order_by(Batch.first_row)
            ).all()
            for b, first, n in batches:
                rows = s.execute(
                    select(Trajectory.row_id, Trajectory.image_id, Trajectory.iteration)
                    .where(Trajectory.row_id.between(first, first + n - 1))
                    .order_by(Trajectory.row_id)
                ).all()
                want = make_batch(run.run_id, b).trajectory
                assert [r[0] for r in rows] == list(range(first, first + n))
                assert [(r[1], r[2]) for r in rows] == list(
                    zip(want["image_id"].tolist(), want["iteration"].tolist(), strict=True)
                )
        assert [b for b, _, _ in batches] == [2, 0, 1]
        delete_run(store, run.run_id)
        with store.session() as s:
            assert s.scalar(select(func.count()).select_from(Trajectory)) == 0


def test_a_batch_repeating_an_image_iteration_pair_is_refused(store_url: str) -> None:
    from advdb.store.ingest import check_trajectory_keys

    with open_store(store_url) as store:
        _images(store)
        run = create_run(store, kind="attack", config={})
        bad = make_batch(run.run_id, 0)
        it = bad.trajectory["iteration"].copy()
        it[7] = it[6]  # image 2 has iteration 0 twice
        bad.trajectory = dict(bad.trajectory, iteration=it)
        with pytest.raises(StoreError, match=r"repeat an \(image_id, iteration\) pair; nothing was written"):
            with BackgroundWriter(store.location) as w:
                w.submit(bad)
                w.drain()
        assert run_counts(store, run.run_id).batches == 0
    ids = np.array([5, 5, 3, 3]), np.array([0, 1, 0, 1])
    assert check_trajectory_keys(*ids, sample_ids=np.array([3, 5])) is None
    assert check_trajectory_keys(np.array([5, 3, 5]), np.array([0, 0, 0]), sample_ids=np.array([3, 5])) is not None
    assert check_trajectory_keys(np.array([5, 3, 5]), np.array([0, 0, 1]), sample_ids=np.array([3, 5])) is None
    assert "not among the batch's samples" in check_trajectory_keys(*ids, sample_ids=np.array([5]))


def test_two_writers_commit_side_by_side(store_url: str) -> None:
    """Two writer processes commit interleaved batches of two runs: every batch lands once, row ranges stay disjoint."""
    n_img, rows, n_batches = 8, 400, 6
    with open_store(store_url) as store:
        _images(store, n=2 * n_img * n_batches)
        runs = [create_run(store, kind="attack", config={"writer": k}) for k in range(2)]
        writers = [BackgroundWriter(store.location) for _ in runs]
        try:
            for b in range(n_batches):
                for k, (run, w) in enumerate(zip(runs, writers, strict=True)):
                    batch = make_batch(run.run_id, b, n_img=n_img, rows=rows)
                    offset = np.int32(k * n_img * n_batches)  # each run attacks its own images
                    batch.trajectory = dict(batch.trajectory, image_id=batch.trajectory["image_id"] + offset)
                    batch.samples = dict(batch.samples, image_id=batch.samples["image_id"] + offset)
                    w.submit(batch)
            for w in writers:
                w.close()  # raises a writer's first error
        finally:
            for w in writers:
                w.stop()
        with store.session() as s:
            ranges = s.execute(select(Batch.first_row, Batch.n_rows).order_by(Batch.first_row)).all()
            total = s.scalar(select(func.count()).select_from(Trajectory))
        for run in runs:
            assert run_counts(store, run.run_id).trajectory_rows == n_batches * n_img * rows
    assert len(ranges) == 2 * n_batches and total == 2 * n_batches * n_img * rows
    assert all(a + n <= b for (a, n), (b, _) in zip(ranges, ranges[1:], strict=False))
