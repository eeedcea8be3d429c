"""An ``ImageFolder``-style directory: ``ROOT/<class>/<image>``, classes in sorted order.

The ImageNet validation set arranged by synset folder (``n01440764/…``) gets the standard
class indices this way. Images are resized and centre-cropped as the classifier's weights
expect (256 → 224 for ImageNet models) and returned in pixel space [0, 1].
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from advdb.data.base import ImageDataset
from advdb.errors import DataError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".jpeg"}


class ImageFolder(ImageDataset):
    kind = "imagefolder"

    def __init__(self, root: str | Path, *, resize: int = 256, crop: int = 224, channels: int = 3, workers: int = 8) -> None:
        root = Path(root).expanduser()
        if not root.is_dir():
            raise DataError(f"dataset folder {root} does not exist: pass --data-dir ROOT with one sub-folder per class")
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        if not classes:
            raise DataError(f"dataset folder {root} has no class sub-folders: arrange it as ROOT/<class>/<image>")
        files: list[str] = []
        labels: list[int] = []
        for ci, c in enumerate(classes):
            for f in sorted((root / c).iterdir()):
                if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file():
                    files.append(str(f.relative_to(root)))
                    labels.append(ci)
        if not files:
            raise DataError(f"dataset folder {root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self.name = root.name
        self.root = str(root.resolve())
        self.split = None
        self.classes = classes
        self._files = files
        self._labels = np.asarray(labels, dtype=np.int64)
        self._resize, self._crop, self._channels = resize, crop, channels
        self._workers = workers

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self._channels, self._crop, self._crop)

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256(f"{self._resize}:{self._crop}:{self._channels}".encode())
        root = Path(self.root)
        for f in self._files:
            h.update(f.encode())
            h.update(str((root / f).stat().st_size).encode())
        return h.hexdigest()

    def __len__(self) -> int:
        return len(self._files)

    def paths(self) -> list[str]:
        return list(self._files)

    def _load_one(self, i: int) -> torch.Tensor:
        from PIL import Image, UnidentifiedImageError
        from torchvision.transforms import functional as TF

        path = Path(self.root) / self._files[i]
        try:
            with Image.open(path) as im:
                im = im.convert("RGB" if self._channels == 3 else "L")
                im = TF.center_crop(TF.resize(im, self._resize, antialias=True), self._crop)
                return TF.to_tensor(im)
        except FileNotFoundError:
            raise DataError(f"image file {path} is missing: restore it or rebuild the dataset folder") from None
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"image file {path} cannot be read ({exc.__class__.__name__}): replace or remove it") from None

    def load(self, indices: Sequence[int]) -> torch.Tensor:
        if len(indices) <= 2:
            return torch.stack([self._load_one(int(i)) for i in indices])
        with ThreadPoolExecutor(max_workers=self._workers) as pool:
            return torch.stack(list(pool.map(self._load_one, [int(i) for i in indices])))
