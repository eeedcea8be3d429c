"""scikit-learn's bundled digits (1,797 8×8 grey images, 10 classes): the offline default.

The images are split once, deterministically, into halves: ``digits-train`` (used to train
the built-in CNN) and ``digits`` (held out: the images attacks run on).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from advdb.data.base import InMemoryImages
from advdb.errors import DataError

SPLIT_SEED = 0


def digits_file() -> Path:
    """scikit-learn's ``digits.csv.gz`` (what ``sklearn.datasets.load_digits`` reads), found
    without importing scikit-learn, whose import costs seconds."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the digits data ship with scikit-learn, which is not installed: pip install scikit-learn")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():
        raise DataError(f"scikit-learn's digits file {path} is missing: reinstall scikit-learn")
    return path


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    data = np.loadtxt(digits_file(), delimiter=",")  # 1,797 rows: 64 pixels in 0..16, then the class
    images = (data[:, :-1].reshape(-1, 8, 8) / 16.0).astype(np.float32)  # [N, 8, 8] in [0, 1]
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    return images, data[:, -1].astype(np.int64), order


class Digits(InMemoryImages):
    kind = "digits"

    def __init__(self, split: str = "test") -> None:
        images, targets, order = _digits()
        half = len(order) // 2
        idx = np.sort(order[half:] if split == "test" else order[:half])
        self.split = split
        self.name = "digits" if split == "test" else "digits-train"
        self._x = np.ascontiguousarray(images[idx][:, None])  # [N, 1, 8, 8]
        self._y = targets[idx]
        self._source_index = idx
