"""What the store hands out: plain, frozen dataclasses (never ORM rows), so that a schema
change touches only ``advdb/store/`` (like MLflow's store entities)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import Any, TypeVar

R = TypeVar("R")


def utcnow() -> dt.datetime:
    """Now, in UTC, without a time zone (as every timestamp column stores it)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def to_record(cls: type[R], row: Any) -> R:
    """The record ``cls`` with the same-named attributes of ``row`` (an ORM object)."""
    return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class RunRecord:
    """One run: an attack, a detector training or the circles experiment.

    ``config`` is its full configuration; ``iterations`` the attack's budget of recorded
    model evaluations per image (T for the unified iteration and IFGS, search steps ×
    iterations per step for CW and L-BFGS) or a detector's epochs.
    """

    run_id: int
    kind: str
    status: str
    name: str | None
    attack: str | None
    loss: str | None
    mode: str | None
    classifier_id: int | None
    dataset_id: int | None
    seed: int | None
    iterations: int | None
    n_images: int | None
    batch_size: int | None
    config: dict[str, Any]
    versions: dict[str, Any]
    device: str | None
    host: str | None
    pid: int | None
    synthetic: bool
    created_at: dt.datetime
    started_at: dt.datetime | None
    updated_at: dt.datetime | None
    finished_at: dt.datetime | None
    wall_seconds: float | None
    error: str | None
    launch_key: str | None


@dataclass(frozen=True)
class ClassifierRecord:
    classifier_id: int
    name: str
    architecture: str
    weights_source: str | None
    weights_sha256: str
    num_classes: int
    input_shape: list[Any]
    normalization: dict[str, Any]
    test_accuracy: float | None


@dataclass(frozen=True)
class DatasetRecord:
    dataset_id: int
    name: str
    kind: str
    split: str | None
    root: str | None
    fingerprint: str
    n_images: int
    n_classes: int
    image_shape: list[Any]
    synthetic: bool


@dataclass(frozen=True)
class DetectorResultRecord:
    """A detector's held-out accuracy on one group of images, at its best epoch."""

    group_name: str
    source_run_id: int | None
    n_images: int
    accuracy: float
    epoch: int


@dataclass(frozen=True)
class AttackedImageRecord:
    """A stored adversarial image with what its attack aimed at: its true class and its target."""

    run_id: int
    image_id: int
    path: str
    sha256: str
    label: int
    target: int
    still_adversarial: bool
