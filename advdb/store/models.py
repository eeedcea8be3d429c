"""The SQL schema of an advdb store, as SQLAlchemy 2.0 typed models.

Alembic revisions in ``advdb/migrations/versions`` create exactly these tables; a test
checks that the two agree. The big table is :class:`Trajectory` (one row per image and
iteration); it is written in bulk by :mod:`advdb.store.ingest`, never through the ORM.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    REAL,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from advdb.store.records import utcnow

SchemaItemT = TypeVar("SchemaItemT", Index, PrimaryKeyConstraint)


def only_on(dialect: str, item: SchemaItemT) -> SchemaItemT:
    """Create ``item`` (an index or constraint) on ``dialect`` only.

    Alembic's comparison ignores ``ddl_if``; :func:`advdb.store.migrate.include_object_for`
    reads the dialect recorded here so that models and migrations still agree.
    """
    item.info["only_on"] = dialect
    return item.ddl_if(dialect=dialect)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


# --- catalogue -------------------------------------------------------------------------


class Dataset(Base):
    """A set of images (one split of one source), identified by name and content fingerprint."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("name", "fingerprint", name="uq_datasets_name_fingerprint"),)

    dataset_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    split: Mapped[str | None] = mapped_column(String(32))
    root: Mapped[str | None] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))
    n_images: Mapped[int] = mapped_column(Integer)
    n_classes: Mapped[int] = mapped_column(Integer)
    image_shape: Mapped[list[Any]] = mapped_column(JSON)
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Image(Base):
    """One image of a dataset: its position, label and (for file datasets) path."""

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("dataset_id", "idx", name="uq_images_dataset_idx"),)

    image_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.dataset_id", ondelete="CASCADE"))
    idx: Mapped[int] = mapped_column(Integer)
    label: Mapped[int] = mapped_column(Integer)
    path: Mapped[str | None] = mapped_column(Text)


class Classifier(Base):
    """A classifier: architecture, weights (source and sha256), classes, input and normalisation."""

    __tablename__ = "classifiers"
    __table_args__ = (UniqueConstraint("name", "weights_sha256", name="uq_classifiers_name_weights"),)

    classifier_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    architecture: Mapped[str] = mapped_column(String(64))
    weights_source: Mapped[str | None] = mapped_column(Text)
    weights_sha256: Mapped[str] = mapped_column(String(64))
    num_classes: Mapped[int] = mapped_column(Integer)
    input_shape: Mapped[list[Any]] = mapped_column(JSON)
    normalization: Mapped[dict[str, Any]] = mapped_column(JSON)
    test_accuracy: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Run(Base):
    """One unit of work (an attack, a detector training, the circles experiment).

    ``config`` holds the full configuration; the columns beside it repeat the fields that
    reports filter on.
    """

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_kind_status", "kind", "status"),
        Index("ix_runs_loss_mode", "loss", "mode"),
    )

    run_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(128))
    attack: Mapped[str | None] = mapped_column(String(16))
    loss: Mapped[str | None] = mapped_column(String(16))
    mode: Mapped[str | None] = mapped_column(String(32))
    classifier_id: Mapped[int | None] = mapped_column(ForeignKey("classifiers.classifier_id"))
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.dataset_id"))
    seed: Mapped[int | None] = mapped_column(Integer)
    # An attack's budget of recorded model evaluations per image (T for the unified iteration
    # and IFGS; search steps × iterations per step for CW and L-BFGS); a detector's epochs.
    iterations: Mapped[int | None] = mapped_column(Integer)
    n_images: Mapped[int | None] = mapped_column(Integer)
    batch_size: Mapped[int | None] = mapped_column(Integer)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    versions: Mapped[dict[str, Any]] = mapped_column(JSON)
    device: Mapped[str | None] = mapped_column(String(64))
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    wall_seconds: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    # Processes that share one run find it by this key (``--join-key``, a torchrun launch):
    # the first to insert the run creates it, the others join it.
    launch_key: Mapped[str | None] = mapped_column(String(128), index=True, unique=True)


# --- attack records ----------------------------------------------------------------------


class RunImage(Base):
    """An attack run's work list: which image, in which batch, towards which target."""

    __tablename__ = "run_images"
    __table_args__ = (Index("ix_run_images_batch", "run_id", "batch_index"),)

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.image_id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    batch_index: Mapped[int] = mapped_column(Integer)
    label: Mapped[int] = mapped_column(Integer)
    target: Mapped[int] = mapped_column(Integer)


class Batch(Base):
    """A commit unit of an attack run: its rows, samples and artifacts commit together."""

    __tablename__ = "batches"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True)
    batch_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    n_images: Mapped[int] = mapped_column(Integer)
    n_rows: Mapped[int] = mapped_column(Integer)
    first_row: Mapped[int] = mapped_column(BigInteger)
    attack_seconds: Mapped[float] = mapped_column(Float)
    committed_at: Mapped[dt.datetime] = mapped_column(DateTime)
    worker_id: Mapped[int | None] = mapped_column(Integer)  # the worker that attacked it (see Worker)


class Worker(Base):
    """One process working on a run: a single ``advdb attack``, one torchrun rank, one ``--join``.

    A worker beats its heart every few seconds (``heartbeat_at``); it is live while its
    process is (same host) or its heartbeat is younger than its lease (another host).
    ``status``: running, finished, interrupted, failed, or dead (its process ended without
    saying so; found by the next worker on its host). ``node`` names the kernel and pid
    namespace it runs in and ``process_start`` its process's start time
    (:func:`advdb.store.workers.this_process`): on the same node, pid and start time together
    say whether the process still exists. Times are the database's clock.
    """

    __tablename__ = "workers"
    __table_args__ = (Index("ix_workers_run", "run_id"),)

    worker_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    device: Mapped[str] = mapped_column(String(64))
    rank: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    lease_seconds: Mapped[float] = mapped_column(Float)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    error: Mapped[str | None] = mapped_column(Text)
    node: Mapped[str | None] = mapped_column(String(128))
    process_start: Mapped[int | None] = mapped_column(BigInteger)


class BatchClaim(Base):
    """Who may attack a batch of a run: free (no worker), or claimed by a worker until ``lease_until``.

    A batch is done when its :class:`Batch` row exists; a claim whose lease ran out (its
    worker died or stalled) is taken over by the next worker that asks.
    """

    __tablename__ = "batch_claims"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True)
    batch_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    worker_id: Mapped[int | None] = mapped_column(Integer)
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class StoreSetting(Base):
    """Settings of the store itself, e.g. ``artifact_root`` (where every worker writes image files)."""

    __tablename__ = "store_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Sample(Base):
    """Per-image summary of an attack run.

    ``first_success_iter`` is the first iteration whose prediction is the target (NULL if
    never); ``success_*`` are the L1/L2/L∞ sizes of ``x' − x`` at that iteration, ``final_*``
    at the last recorded one.
    """

    __tablename__ = "samples"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.image_id"), primary_key=True)
    batch_index: Mapped[int] = mapped_column(Integer)
    label: Mapped[int] = mapped_column(Integer)
    target: Mapped[int] = mapped_column(Integer)
    p_init: Mapped[float] = mapped_column(REAL)
    first_success_iter: Mapped[int | None] = mapped_column(Integer)
    success_l1: Mapped[float | None] = mapped_column(REAL)
    success_l2: Mapped[float | None] = mapped_column(REAL)
    success_linf: Mapped[float | None] = mapped_column(REAL)
    final_pred: Mapped[int] = mapped_column(Integer)
    final_p_target: Mapped[float] = mapped_column(REAL)
    final_z_target: Mapped[float] = mapped_column(REAL)
    final_l1: Mapped[float] = mapped_column(REAL)
    final_l2: Mapped[float] = mapped_column(REAL)
    final_linf: Mapped[float] = mapped_column(REAL)
    # Trajectory rows recorded for the image: T + 1 for the unified iteration (x₀ … x_T), fewer
    # with --early-stop; one per model evaluation for CW and L-BFGS.
    n_iterations: Mapped[int] = mapped_column(Integer)


class Trajectory(Base):
    """One image at one iteration of an attack run.

    Row ``iteration = n`` describes ``xₙ`` (prediction, softmax ``p_*`` and logits ``z_*`` of
    the initial class, the target and the strongest other class, the loss at ``xₙ``, the L2
    norm of the loss gradient at ``xₙ``) and the step taken from it (``step_l2 =
    ‖xₙ₊₁ − xₙ‖₂``, 0 on the last row); ``l1/l2/linf`` measure ``xₙ − x₀``. ``search_step``
    is the index of the outer search (CW / L-BFGS constant) and 0 elsewhere.

    ``row_id`` locates rows: a batch's rows are ``first_row … first_row + n_rows − 1`` of its
    :class:`Batch`. It is the only access path the table keeps, because a B-tree over
    ``(run_id, image_id, iteration)`` halves ingest speed on both backends: on SQLite it is
    the rowid (``INTEGER PRIMARY KEY``), on PostgreSQL a BRIN index over ``(row_id, run_id)``
    (rows arrive in ``row_id`` order). Each (run, image, iteration) still appears once: a
    batch commits at most once (the ``batches`` key), an image has one sample per run (the
    ``samples`` key), and :mod:`advdb.store.ingest` checks before writing a batch that its
    (image, iteration) pairs are distinct and its images are its samples.
    """

    __tablename__ = "trajectory"
    __table_args__ = (
        only_on("sqlite", PrimaryKeyConstraint("row_id", name="trajectory_pkey")),
        only_on("postgresql", Index("ix_trajectory_brin", "row_id", "run_id", postgresql_using="brin")),
    )

    row_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), autoincrement=False)
    run_id: Mapped[int] = mapped_column(Integer)
    image_id: Mapped[int] = mapped_column(Integer)
    iteration: Mapped[int] = mapped_column(Integer)
    search_step: Mapped[int] = mapped_column(SmallInteger)
    pred: Mapped[int] = mapped_column(SmallInteger)
    p_init: Mapped[float] = mapped_column(REAL)
    p_target: Mapped[float] = mapped_column(REAL)
    p_other: Mapped[float] = mapped_column(REAL)
    z_init: Mapped[float] = mapped_column(REAL)
    z_target: Mapped[float] = mapped_column(REAL)
    z_other: Mapped[float] = mapped_column(REAL)
    loss: Mapped[float] = mapped_column(REAL)
    grad_l2: Mapped[float] = mapped_column(REAL)
    step_l2: Mapped[float] = mapped_column(REAL)
    l1: Mapped[float] = mapped_column(REAL)
    l2: Mapped[float] = mapped_column(REAL)
    linf: Mapped[float] = mapped_column(REAL)


# PostgreSQL hands each batch a block of 2³² row ids from this sequence (parallel writers
# never wait for each other); SQLite numbers rows densely under its write lock.
TRAJECTORY_ROW_BLOCKS = "trajectory_row_blocks"
ROW_BLOCK_SIZE = 1 << 32


class Artifact(Base):
    """A stored adversarial image file (path relative to the artifact folder)."""

    __tablename__ = "artifacts"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.image_id"), primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(8))
    sha256: Mapped[str] = mapped_column(String(64))
    n_bytes: Mapped[int] = mapped_column(Integer)
    saved_pred: Mapped[int] = mapped_column(Integer)
    still_adversarial: Mapped[bool] = mapped_column(Boolean)


# --- detectors and the 2-D experiment ------------------------------------------------------


class DetectorEpoch(Base):
    """One epoch of a detector training run."""

    __tablename__ = "detector_epochs"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    lr: Mapped[float] = mapped_column(Float)
    train_loss: Mapped[float] = mapped_column(Float)
    train_accuracy: Mapped[float] = mapped_column(Float)
    test_accuracy: Mapped[float] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float)


class DetectorResult(Base):
    """A detector's test accuracy on one group: a source run, 'adversarial', 'genuine' or 'overall'."""

    __tablename__ = "detector_results"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True)
    group_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.run_id"))
    n_images: Mapped[int] = mapped_column(Integer)
    accuracy: Mapped[float] = mapped_column(Float)
    epoch: Mapped[int] = mapped_column(Integer)


class CircleGrid(Base):
    """The 2-D experiment: a loss source's gradient magnitude at one point of the plane."""

    __tablename__ = "circle_grid"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True)
    loss: Mapped[str] = mapped_column(String(16), primary_key=True)
    ix: Mapped[int] = mapped_column(Integer, primary_key=True)
    iy: Mapped[int] = mapped_column(Integer, primary_key=True)
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    grad_norm: Mapped[float] = mapped_column(Float)
    pred: Mapped[int] = mapped_column(SmallInteger)
    p_target: Mapped[float] = mapped_column(Float)


# --- evaluations of stored adversarial images (beyond the paper) --------------------------------


class TransferResult(Base):
    """One stored adversarial image of a source attack run, shown to another classifier.

    ``targeted``: the other model predicts the attack's target; ``untargeted``: it no longer
    predicts the image's true class. ``p_target`` / ``p_label`` are its softmax of the two.
    """

    __tablename__ = "transfer_results"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True)
    source_run_id: Mapped[int] = mapped_column(ForeignKey("runs.run_id"), primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.image_id"), primary_key=True)
    pred: Mapped[int] = mapped_column(Integer)
    p_target: Mapped[float] = mapped_column(REAL)
    p_label: Mapped[float] = mapped_column(REAL)
    targeted: Mapped[bool] = mapped_column(Boolean)
    untargeted: Mapped[bool] = mapped_column(Boolean)


class DefenseResult(Base):
    """One stored adversarial image and its genuine original, both transformed at one strength
    and shown to the attacked classifier (strength 0: untransformed).

    ``still_target``: the transformed adversarial image is still the target (the attack
    survives); ``genuine_correct``: the transformed genuine image is still its true class
    (what the defense costs).
    """

    __tablename__ = "defense_results"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True)
    source_run_id: Mapped[int] = mapped_column(ForeignKey("runs.run_id"), primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.image_id"), primary_key=True)
    strength: Mapped[float] = mapped_column(Float, primary_key=True)
    adv_pred: Mapped[int] = mapped_column(Integer)
    genuine_pred: Mapped[int] = mapped_column(Integer)
    still_target: Mapped[bool] = mapped_column(Boolean)
    genuine_correct: Mapped[bool] = mapped_column(Boolean)
