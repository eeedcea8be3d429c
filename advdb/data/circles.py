"""The 2-D experiment's data: scikit-learn's ``make_circles`` (two rings, same centre).

Points are stored in "pixel space" like every other dataset: the plane ``[-R, R]²`` is mapped
to ``[0, 1]²`` (the classifier wrapper maps it back), so the unified engine's clipping is
the plane's bounding box. Each point is a [2, 1, 1] "image". Label 0 is the outer ring,
label 1 the inner ring (the attacks' target).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from advdb.data.base import ImageDataset

PLANE_RADIUS = 1.5  # the plane [-1.5, 1.5]² holds both rings with room to move
OUTER, INNER = 0, 1


def to_pixels(points: np.ndarray) -> np.ndarray:
    return (points + PLANE_RADIUS) / (2 * PLANE_RADIUS)


class Circles(ImageDataset):
    kind = "circles"

    def __init__(
        self, *, n: int = 1000, noise: float = 0.05, factor: float = 0.5, seed: int = 0, split: str = "test"
    ) -> None:
        from sklearn.datasets import make_circles

        # the training half and the test half come from one seeded draw
        points, labels = make_circles(n_samples=2 * n, noise=noise, factor=factor, random_state=seed)
        half = slice(0, n) if split == "train" else slice(n, 2 * n)
        self.name = "circles" if split == "test" else "circles-train"
        self.split = split
        self.points = points[half].astype(np.float32)
        self._y = labels[half].astype(np.int64)
        self._params = (n, noise, factor, seed)

    @property
    def n_classes(self) -> int:
        return 2

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (2, 1, 1)

    @property
    def labels(self) -> np.ndarray:
        return self._y

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.points.tobytes() + self._y.tobytes()).hexdigest()

    def __len__(self) -> int:
        return len(self._y)

    def load_array(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        return to_pixels(self.points[np.asarray(indices, dtype=np.int64)])[:, :, None, None]
