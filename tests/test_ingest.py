"""Bulk ingest: one transaction per batch, exactly once, nothing left behind by a failure."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sqlalchemy import func, select

from advdb.config import resolve_store
from advdb.errors import StoreError
from advdb.store import open_store
from advdb.store.ingest import SAMPLE_COLUMNS, BatchRecord
from advdb.store.models import Batch, Sample, Trajectory
from advdb.store.runs import create_run, delete_run, run_counts
from advdb.store.writer import ArtifactPayload, BackgroundWriter

STAT = ("p_init", "p_target", "p_other", "z_init", "z_target", "z_other", "loss", "grad_l2", "step_l2", "l1", "l2", "linf")


def make_batch(run_id: int, b: int, n_img: int = 4, rows: int = 6) -> BatchRecord:
    rng = np.random.default_rng(b)
    n = n_img * rows
    ids = np.arange(b * n_img, (b + 1) * n_img, dtype=np.int32) + 1
    traj = {
        "image_id": np.repeat(ids, rows), "iteration": np.tile(np.arange(rows, dtype=np.int32), n_img),
        "search_step": np.zeros(n, np.int16), "pred": rng.integers(0, 10, n).astype(np.int16),
        **{k: rng.random(n, dtype=np.float32) for k in STAT},
    }
    samples = {k: rng.random(n_img).astype(np.float32) for k in SAMPLE_COLUMNS}
    samples.update(image_id=ids, batch_index=np.full(n_img, b), label=np.zeros(n_img, np.int32),
                   target=np.ones(n_img, np.int32), final_pred=np.ones(n_img, np.int32),
                   first_success_iter=np.array([2.0, np.nan, 5.0, np.nan][:n_img] + [1.0] * max(0, n_img - 4)),
                   n_iterations=np.full(n_img, rows))
    return BatchRecord(run_id=run_id, batch_index=b, trajectory=traj, samples=samples, attack_seconds=0.5)


def _images(store, n: int = 16) -> None:  # noqa: ANN001
    from advdb.store.catalogue import register_dataset

    register_dataset(store, name="t", kind="test", fingerprint="f", labels=np.zeros(n, np.int64), image_shape=[1, 2, 2], n_classes=10)


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
            t = s.get(Trajectory, (run.run_id, 1, 3))
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
        with BackgroundWriter(store.location) as w:  # and the batch can still be committed properly
            w.submit(make_batch(run.run_id, 0))
        assert run_counts(store, run.run_id).trajectory_rows == 24


def test_artifact_files_are_written_with_their_hash(store_url: str) -> None:
    import hashlib

    with open_store(store_url) as store:
        _images(store)
        run = create_run(store, kind="attack", config={})
        pixels = np.random.default_rng(0).integers(0, 256, (4, 1, 8, 8)).astype(np.uint8)
        payload = ArtifactPayload(image_id=np.arange(1, 5), pixels=pixels, format="png",
                                  saved_pred=np.ones(4), still_adversarial=np.array([True, True, False, True]))
        with BackgroundWriter(store.location) as w:
            w.submit(make_batch(run.run_id, 0), payload)
        from advdb import artifacts
        from advdb.store.models import Artifact

        with store.session() as s:
            arts = list(s.scalars(select(Artifact).order_by(Artifact.image_id)))
        assert [a.still_adversarial for a in arts] == [True, True, False, True]
        for a, px in zip(arts, pixels):
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
