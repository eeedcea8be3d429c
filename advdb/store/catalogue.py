"""Datasets, images and classifiers in the store (get-or-create by content).

Get-or-create is safe when several processes register the same dataset or classifier at
once (torchrun ranks, concurrent attacks on PostgreSQL): the one whose insert loses on the
unique key reads the winner's row instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from advdb.store.engine import Store
from advdb.store.models import Classifier, Dataset, Image
from advdb.store.records import ClassifierRecord, DatasetRecord, to_record, utcnow

T = TypeVar("T")


def _get_or_create(attempt: Callable[[], T]) -> T:
    """Run a get-or-create once more when a concurrent process created the row first."""
    try:
        return attempt()
    except IntegrityError:
        return attempt()


def register_dataset(
    store: Store,
    *,
    name: str,
    kind: str,
    fingerprint: str,
    labels: np.ndarray,
    image_shape: Sequence[int],
    n_classes: int,
    split: str | None = None,
    root: str | None = None,
    paths: Sequence[str] | None = None,
    synthetic: bool = False,
) -> tuple[int, np.ndarray]:
    """The dataset's id and its image ids (index order), creating rows on first use."""
    return _get_or_create(
        lambda: _register_dataset(
            store,
            name=name,
            kind=kind,
            fingerprint=fingerprint,
            labels=labels,
            image_shape=image_shape,
            n_classes=n_classes,
            split=split,
            root=root,
            paths=paths,
            synthetic=synthetic,
        )
    )


def _register_dataset(
    store: Store,
    *,
    name: str,
    kind: str,
    fingerprint: str,
    labels: np.ndarray,
    image_shape: Sequence[int],
    n_classes: int,
    split: str | None,
    root: str | None,
    paths: Sequence[str] | None,
    synthetic: bool,
) -> tuple[int, np.ndarray]:
    with store.session() as s:
        ds = s.scalar(select(Dataset).where(Dataset.name == name, Dataset.fingerprint == fingerprint))
        if ds is None:
            ds = Dataset(
                name=name,
                kind=kind,
                split=split,
                root=root,
                fingerprint=fingerprint,
                n_images=len(labels),
                n_classes=n_classes,
                image_shape=list(image_shape),
                synthetic=synthetic,
                created_at=utcnow(),
            )
            s.add(ds)
            s.flush()
            rows = [
                {"dataset_id": ds.dataset_id, "idx": i, "label": int(lab), "path": paths[i] if paths else None}
                for i, lab in enumerate(labels.tolist())
            ]
            for start in range(0, len(rows), 20_000):
                s.execute(insert(Image), rows[start : start + 20_000])
        dataset_id = ds.dataset_id
        ids = s.execute(select(Image.idx, Image.image_id).where(Image.dataset_id == dataset_id)).all()
    out = np.empty(len(ids), dtype=np.int64)
    for idx, image_id in ids:
        out[idx] = image_id
    return dataset_id, out


def register_classifier(store: Store, **fields: Any) -> int:
    """The classifier's id (by name and weights sha256), creating the row on first use."""
    return _get_or_create(lambda: _register_classifier(store, **fields))


def _register_classifier(store: Store, **fields: Any) -> int:
    with store.session() as s:
        c = s.scalar(
            select(Classifier).where(
                Classifier.name == fields["name"], Classifier.weights_sha256 == fields["weights_sha256"]
            )
        )
        if c is None:
            c = Classifier(created_at=utcnow(), **fields)
            s.add(c)
            s.flush()
        return c.classifier_id


def get_classifier(store: Store, classifier_id: int) -> ClassifierRecord | None:
    with store.session() as s:
        row = s.get(Classifier, classifier_id)
        return to_record(ClassifierRecord, row) if row is not None else None


def classifier_names(store: Store) -> dict[int, str]:
    """Every classifier's name by id."""
    with store.session() as s:
        return {int(i): str(n) for i, n in s.execute(select(Classifier.classifier_id, Classifier.name))}


def get_dataset(store: Store, dataset_id: int) -> DatasetRecord | None:
    with store.session() as s:
        row = s.get(Dataset, dataset_id)
        return to_record(DatasetRecord, row) if row is not None else None


def image_indices(store: Store, dataset_id: int) -> dict[int, int]:
    """The dataset index of each image id of a dataset."""
    with store.session() as s:
        return {
            int(i): int(x)
            for i, x in s.execute(select(Image.image_id, Image.idx).where(Image.dataset_id == dataset_id))
        }
