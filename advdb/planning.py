"""Which images a run attacks and towards which targets: the plan, computed once per run.

The plan takes ``n`` images the classifier gets right, in a seeded order, each with a
seeded target (random among the other classes, or the least likely class); ``n = "all"``
(:data:`ALL`) takes every one of them, however many that is. Plans are cached in
the process per (classifier weights, dataset, device type, n, seed, target rule, classes),
so the runs of one study (``advdb reproduce``: eight sources × modes on the same images)
plan once; a plan for ``"all"`` is cached under ``"all"``, never under its count.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Literal, TypeAlias

import numpy as np
import torch

from advdb.data import ImageDataset
from advdb.data.loader import load_batches
from advdb.errors import ConfigError, DataError
from advdb.execution import ExecutionOptions, set_precision
from advdb.models import LoadedClassifier

#: ``n`` of a plan (and a run) that takes every image its classifier gets right (``--n all``).
ALL: Literal["all"] = "all"
#: How many images a plan asks for: a number, or :data:`ALL`.
ImageCount: TypeAlias = int | Literal["all"]


@torch.inference_mode()
def _predictions(
    clf: LoadedClassifier, ds: ImageDataset, batches: list[np.ndarray], device: torch.device
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per index batch: the indices, the predictions and the least-likely classes. Images load
    ahead of the model (:func:`advdb.data.loader.load_batches`)."""
    for idx, x in zip(batches, load_batches(ds, batches, device=device), strict=True):
        z = clf.module(x.to(device, non_blocking=True))
        yield idx, z.argmax(1).cpu().numpy(), z.argmin(1).cpu().numpy()


def predict(
    clf: LoadedClassifier, ds: ImageDataset, indices: np.ndarray, device: torch.device, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and least-likely classes for ``indices``."""
    batches = [indices[s : s + batch_size] for s in range(0, len(indices), batch_size)]
    out = [(pred, least) for _, pred, least in _predictions(clf, ds, batches, device)]
    if not out:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate([p for p, _ in out]), np.concatenate([m for _, m in out])


@dataclass
class Plan:
    """The work list: dataset indices, labels and targets, in attack order.

    ``candidates``: how many images planning could choose from (the data set, or its images of
    the chosen classes); ``None`` for a plan read back from the store.
    """

    indices: np.ndarray
    labels: np.ndarray
    targets: np.ndarray
    candidates: int | None = None

    def describe(self, *, asked: ImageCount, dataset: str, classifier: str) -> str:
        """One line saying what planning found, for the person who started the run."""
        n = len(self.indices)
        if asked == ALL:
            of = f" of the {self.candidates:,} images" if self.candidates is not None else " images"
            return f"planned {n:,} images (--n all): {classifier} classifies {n:,}{of} in {dataset} correctly"
        return f"planned {n:,} images in {dataset} that {classifier} classifies correctly"


_CACHE: OrderedDict[tuple[object, ...], tuple[Plan, np.ndarray]] = OrderedDict()
_CACHE_SIZE = 8


def plan_targets(
    clf: LoadedClassifier,
    ds: ImageDataset,
    *,
    n: ImageCount,
    seed: int,
    targets: str,
    device: torch.device,
    batch_size: int,
    only_labels: list[int] | None = None,
) -> tuple[Plan, np.ndarray]:
    """Pick ``n`` correctly classified images (every one for :data:`ALL`) in a seeded order and a
    seeded target for each.

    ``only_labels`` restricts the images to those classes. Returns the plan and the
    dataset's labels (the classifier's predictions for synthetic data); a plan made before
    in this process for the same inputs is returned again (as copies).
    """
    classes = tuple(only_labels) if only_labels is not None else None
    key = (clf.name, clf.weights_sha256, ds.name, ds.fingerprint, device.type, n, seed, targets, classes)
    if key not in _CACHE:
        _CACHE[key] = _plan(
            clf, ds, n=n, seed=seed, targets=targets, device=device, batch_size=batch_size, only_labels=only_labels
        )
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    plan, labels = _CACHE[key]
    _CACHE.move_to_end(key)
    copied = replace(plan, indices=plan.indices.copy(), labels=plan.labels.copy(), targets=plan.targets.copy())
    return copied, labels.copy()


def _plan(
    clf: LoadedClassifier,
    ds: ImageDataset,
    *,
    n: ImageCount,
    seed: int,
    targets: str,
    device: torch.device,
    batch_size: int,
    only_labels: list[int] | None = None,
) -> tuple[Plan, np.ndarray]:
    set_precision(ExecutionOptions())  # plans are made in strict float32, whatever the run's precision
    order = np.random.default_rng(seed).permutation(len(ds))
    labels = ds.labels
    if only_labels is not None:
        if labels is None:
            raise ConfigError(f"dataset {ds.name} has no labels to restrict the images to")
        order = order[np.isin(labels[order], only_labels)]
    chosen: list[np.ndarray] = []
    chosen_least: list[np.ndarray] = []
    found = 0
    all_preds = np.full(len(ds), -1, dtype=np.int64)
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    for idx, pred, least in _predictions(clf, ds, batches, device):
        all_preds[idx] = pred
        ok = pred == (labels[idx] if labels is not None else pred)
        chosen.append(idx[ok])
        chosen_least.append(least[ok])
        found += int(ok.sum())
        if n != ALL and found >= n:
            break
    _check_found(found, n, candidates=len(order), where=ds.name, clf=clf.name, only_labels=only_labels)
    count = found if n == ALL else n
    idx = np.concatenate(chosen)[:count]
    y = labels[idx] if labels is not None else all_preds[idx]
    if targets == "least-likely":
        t = np.concatenate(chosen_least)[:count]
    else:
        r = np.random.default_rng([seed, 1]).integers(0, clf.num_classes - 1, size=count)
        t = r + (r >= y)
    if labels is None:
        labels = np.where(all_preds >= 0, all_preds, 0)
        # synthetic images not evaluated get their label when first predicted
        missing = np.flatnonzero(all_preds < 0)
        if len(missing):
            labels[missing], _ = predict(clf, ds, missing, device, batch_size)
    as_int = {"indices": idx.astype(np.int64), "labels": y.astype(np.int64), "targets": t.astype(np.int64)}
    return Plan(**as_int, candidates=len(order)), labels


def _check_found(
    found: int, n: ImageCount, *, candidates: int, where: str, clf: str, only_labels: list[int] | None
) -> None:
    """A :class:`DataError` when fewer than ``n`` images (for :data:`ALL`: none) are classified correctly."""
    if found >= (1 if n == ALL else n):
        return
    which = f" with labels {only_labels}" if only_labels is not None else ""
    if n == ALL:
        raise DataError(f"none of the {candidates} images{which} in {where} is classified correctly by {clf}")
    raise DataError(
        f"only {found} of {candidates} images{which} in {where} are classified correctly by {clf}: use "
        f"--n {found} or fewer"
    )
