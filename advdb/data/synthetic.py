"""Random images of a chosen shape, for throughput benchmarks of big models without data."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from advdb.data.base import ImageDataset


class Synthetic(ImageDataset):
    """``n`` uniform-random images; image ``i`` is generated from ``(seed, i)``, so any subset is cheap.

    It has no labels: the runner takes the classifier's prediction as the label. Runs on it
    are marked synthetic.
    """

    kind = "synthetic"
    synthetic = True

    def __init__(self, *, shape: tuple[int, int, int] = (3, 224, 224), n: int = 1024, seed: int = 0) -> None:
        self.name = "synthetic"
        self._shape = tuple(int(s) for s in shape)
        self._n = int(n)
        self._seed = int(seed)

    @property
    def n_classes(self) -> None:
        return None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self._shape  # type: ignore[return-value]

    @property
    def labels(self) -> None:
        return None

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(f"synthetic:{self._shape}:{self._n}:{self._seed}".encode()).hexdigest()

    def __len__(self) -> int:
        return self._n

    def load_array(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        out = np.empty((len(indices), *self._shape), dtype=np.float32)
        for k, i in enumerate(indices):
            out[k] = np.random.default_rng([self._seed, int(i)]).random(self._shape, dtype=np.float32)
        return out
