"""A detector's examples: genuine images and the stored adversarial image files of its source
runs, every file's sha256 checked, split by image so all versions of one image fall on one side."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from advdb import artifacts
from advdb.data import ImageDataset
from advdb.detectors.spec import DetectorSpec
from advdb.evaluation import check_files, load_dataset, source_runs
from advdb.store.catalogue import image_indices
from advdb.store.engine import Store
from advdb.store.evaluations import attacked_images


@dataclass
class Items:
    """The detector's examples: what to load, its label and its group (source run or genuine)."""

    image_id: np.ndarray  # genuine image id (the group for splitting)
    dataset_idx: np.ndarray  # index in the dataset (genuine) or -1
    path: list[str | None]  # artifact path (adversarial) or None
    label: np.ndarray  # 0 genuine, 1 adversarial
    source: np.ndarray  # source run id, 0 for genuine

    def __len__(self) -> int:
        return len(self.label)

    def subset(self, mask: np.ndarray) -> Items:
        idx = np.flatnonzero(mask)
        return Items(
            self.image_id[idx], self.dataset_idx[idx], [self.path[i] for i in idx], self.label[idx], self.source[idx]
        )


def build_items(store: Store, spec: DetectorSpec) -> tuple[Items, ImageDataset]:
    """Genuine and adversarial examples of the sources, every file's sha256 checked."""
    _, dataset_id = source_runs(store, spec.sources, what="detectors")
    ds = load_dataset(store, dataset_id)
    idx_of = image_indices(store, dataset_id)
    arts = attacked_images(store, spec.sources)
    check_files(store, arts, spec.sources)
    adv_ids = np.array([art.image_id for art in arts], dtype=np.int64)
    attacked = np.unique(adv_ids)
    n_adv = len(arts)
    genuine_ids = list(attacked)
    if spec.setting == "all-sources" and n_adv > len(genuine_ids):  # balance with extra genuine images
        rng = np.random.default_rng([spec.seed, 2])
        extra = np.setdiff1d(np.fromiter(idx_of.keys(), dtype=np.int64), attacked)
        genuine_ids += list(rng.permutation(extra)[: n_adv - len(genuine_ids)])
    genuine = np.asarray(genuine_ids, dtype=np.int64)
    items = Items(
        image_id=np.concatenate([genuine, adv_ids]),
        dataset_idx=np.concatenate([[idx_of[int(i)] for i in genuine], np.full(n_adv, -1)]).astype(np.int64),
        path=[None] * len(genuine) + [art.path for art in arts],
        label=np.concatenate([np.zeros(len(genuine)), np.ones(n_adv)]).astype(np.int64),
        source=np.concatenate([np.zeros(len(genuine)), [art.run_id for art in arts]]).astype(np.int64),
    )
    return items, ds


def split(items: Items, *, test_fraction: float, seed: int) -> np.ndarray:
    """A boolean test mask: whole images (all their versions) on one side, per class in proportion.

    Images that have adversarial versions are split on their own, extra genuine images on
    their own, so both classes get ``test_fraction`` of their images in the test set.
    """
    rng = np.random.default_rng([seed, 3])
    adv_groups = np.unique(items.image_id[items.label == 1])
    extra_groups = np.setdiff1d(np.unique(items.image_id), adv_groups)
    test_groups: list[np.ndarray] = []
    for groups in (adv_groups, extra_groups):
        if len(groups):
            k = max(1, round(test_fraction * len(groups))) if len(groups) > 1 else 0
            test_groups.append(rng.permutation(groups)[:k])
    return np.isin(items.image_id, np.concatenate(test_groups) if test_groups else [])


class _ItemDataset(torch.utils.data.Dataset):
    def __init__(self, items: Items, ds: ImageDataset, root: Path) -> None:
        self.items, self.ds, self.root = items, ds, root

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        it = self.items
        if it.label[i] == 0:
            x = self.ds.load_array([int(it.dataset_idx[i])])[0]
        else:
            x = artifacts.load(self.root / it.path[i])  # type: ignore[operator]
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), int(it.label[i]), int(it.source[i])
