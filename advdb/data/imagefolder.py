"""An ``ImageFolder``-style directory: ``ROOT/<class>/<image>``, classes in sorted order.

The ImageNet validation set arranged by synset folder (``n01440764/…``) gets the standard
class indices this way. Images are resized and centre-cropped as the classifier's weights
expect (256 → 224 for ImageNet models) and returned in pixel space [0, 1].

Planning reads it through ``loader_workers`` DataLoader processes (:mod:`advdb.data.loader`),
each decoding whole batches; an attack's next batch decodes on ``decode_threads`` threads
(Pillow releases the GIL while it decodes and resizes) while the current one is attacked.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from advdb.data.base import ImageDataset
from advdb.errors import DataError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}


class ImageFiles(ImageDataset):
    """Image files under ``root`` with their labels, decoded, resized and centre-cropped on load."""

    kind = "imagefiles"

    def __init__(
        self,
        root: Path,
        files: list[str],
        labels: list[int],
        classes: list[str],
        *,
        resize: int = 256,
        crop: int = 224,
        channels: int = 3,
        workers: int | None = None,
    ) -> None:
        self._root = root.resolve()
        self.root = str(self._root)
        self.split = None
        self._classes = classes
        self._files = files
        self._labels = np.asarray(labels, dtype=np.int64)
        self._resize, self._crop, self._channels = resize, crop, channels
        self.loader_workers = min(8, os.cpu_count() or 1) if workers is None else workers
        self.decode_threads = max(1, self.loader_workers)

    @property
    def classes(self) -> list[str]:
        """Class names, by label index."""
        return self._classes

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
        root = self._root
        for f in self._files:
            h.update(f.encode())
            h.update(str((root / f).stat().st_size).encode())
        return h.hexdigest()

    def __len__(self) -> int:
        return len(self._files)

    def paths(self) -> list[str]:
        return list(self._files)

    def _load_one(self, i: int) -> np.ndarray:
        """Resize the shorter side to ``resize`` (bilinear, antialiased), centre-crop ``crop``."""
        from PIL import Image, UnidentifiedImageError

        path = self._root / self._files[i]
        try:
            with Image.open(path) as im:
                im = im.convert("RGB" if self._channels == 3 else "L")
                w, h = im.size
                scale = self._resize / min(w, h)
                nw, nh = max(self._crop, round(w * scale)), max(self._crop, round(h * scale))
                im = im.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=None)
                left, top = (nw - self._crop) // 2, (nh - self._crop) // 2
                im = im.crop((left, top, left + self._crop, top + self._crop))
                arr = np.asarray(im, dtype=np.float32) / 255.0
                return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        except FileNotFoundError:
            raise DataError(f"image file {path} is missing: restore it or rebuild the dataset folder") from None
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(
                f"image file {path} cannot be read ({exc.__class__.__name__}): replace or remove it"
            ) from None

    def load_array(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        if len(indices) <= 2 or self.decode_threads <= 1:
            return np.stack([self._load_one(int(i)) for i in indices])
        with ThreadPoolExecutor(max_workers=self.decode_threads) as pool:
            return np.stack(list(pool.map(self._load_one, [int(i) for i in indices])))


class ImageFolder(ImageFiles):
    kind = "imagefolder"

    def __init__(
        self,
        root: str | Path,
        *,
        resize: int = 256,
        crop: int = 224,
        channels: int = 3,
        workers: int | None = None,
    ) -> None:
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
        super().__init__(root, files, labels, classes, resize=resize, crop=crop, channels=channels, workers=workers)
        self.name = root.name
