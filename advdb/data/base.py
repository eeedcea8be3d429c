"""The dataset interface: pixel-space images in [0, 1], labels, and a content fingerprint."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


class ImageDataset(ABC):
    """An indexable set of images in pixel space ``[0,1]^(C×H×W)``.

    ``labels`` may be None for synthetic data (the runner then uses the classifier's own
    prediction as the label). ``fingerprint`` identifies the content for the store.
    """

    name: str
    kind: str
    split: str | None = None
    root: str | None = None
    synthetic: bool = False
    #: DataLoader worker processes that decode its batches (:mod:`advdb.data.loader`); 0: held in memory
    loader_workers: int = 0

    @property
    @abstractmethod
    def n_classes(self) -> int | None: ...

    @property
    @abstractmethod
    def image_shape(self) -> tuple[int, int, int]: ...

    @property
    @abstractmethod
    def labels(self) -> np.ndarray | None: ...

    @property
    @abstractmethod
    def fingerprint(self) -> str: ...

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def load_array(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Images at ``indices`` as a float32 array [B, C, H, W] in [0, 1].

        Uses numpy only, no torch op, so it can run in a prefetch thread without waking a
        second OpenMP thread pool that would compete with the attack for the cores.
        """

    def load(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        """Images at ``indices`` as a float32 tensor [B, C, H, W] in [0, 1] (on the CPU)."""
        import torch

        return torch.from_numpy(np.ascontiguousarray(self.load_array(indices), dtype=np.float32))

    def paths(self) -> list[str] | None:
        """Per-image file paths, for file-backed datasets."""
        return None


class InMemoryImages(ImageDataset):
    """A data set held as arrays: images ``_x`` [N, C, H, W] in [0, 1] and labels ``_y`` [N],
    fingerprinted by their bytes."""

    _x: np.ndarray
    _y: np.ndarray
    classes_count: int = 10

    @property
    def n_classes(self) -> int:
        return self.classes_count

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self._x.shape[1:]
        return (int(c), int(h), int(w))

    @property
    def labels(self) -> np.ndarray:
        return self._y

    @property
    def fingerprint(self) -> str:
        import hashlib

        h = hashlib.sha256(self._x.tobytes())
        h.update(self._y.tobytes())
        return h.hexdigest()

    def __len__(self) -> int:
        return len(self._y)

    def load_array(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        return self._x[np.asarray(indices, dtype=np.int64)]
