"""What defines an attack run (:class:`AttackSpec`), and the data and classifier it names."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from advdb.artifacts import check_format
from advdb.attacks import Attack, create_attack
from advdb.attacks.defaults import dataset_defaults
from advdb.data import ImageDataset, create_dataset
from advdb.devices import resolve_device
from advdb.errors import ConfigError, check_seed
from advdb.execution import ExecutionFields
from advdb.models import LoadedClassifier, create_classifier, default_dataset
from advdb.planning import ALL, ImageCount
from advdb.vocabulary import DEFAULT_SOURCE, TARGET_RULES, check_choice

#: Built-in architectures made for one input shape (torchvision networks take any image size).
BUILT_IN_ARCHITECTURES = ("digits-cnn", "digits-mlp", "circles-mlp", "mnist-lenet5")


@dataclass(kw_only=True)
class AttackSpec(ExecutionFields):
    """Everything that defines an attack run; stored in full as the run's configuration.

    ``params`` are the attack's hyperparameters as the user gave them; ``labels``
    restricts the attacked images to those classes (the circles experiment uses it).
    ``n`` is a number of correctly classified images, or :data:`ALL` for every one of them:
    the configuration keeps what was asked, the run's ``resolved["n"]`` and ``n_images`` the count.
    """

    attack: str = "unified"
    params: dict[str, Any] = field(default_factory=lambda: {"loss": DEFAULT_SOURCE})
    model: str = "digits-cnn"
    weights: str | None = None
    dataset: str | None = None
    data_dir: str | None = None
    image_size: int = 224
    image_shape: tuple[int, int, int] | None = None
    n: ImageCount = 500
    batch_size: int = 128
    device: str = "auto"
    seed: int = 0
    targets: str = "random"
    image_format: str = "png"
    save_images: bool = True
    labels: list[int] | None = None
    name: str | None = None

    @property
    def dataset_name(self) -> str:
        """The data set attacked: the one named, else the model's own."""
        return self.dataset or default_dataset(self.model)

    def validate(self) -> Attack:
        """Check every option before any work; returns the configured attack."""
        check_count(self.n)
        if self.n == ALL and self.dataset_name == "synthetic":
            raise ConfigError("--n all needs a data set of fixed size; synthetic images are made on demand: give --n N")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        check_seed(self.seed)
        if self.image_size < 1:
            raise ConfigError(f"--image-size must be at least 1 pixel, got {self.image_size}")
        check_choice(self.targets, TARGET_RULES, "target selection")
        check_format(self.image_format)
        resolve_device(self.device)
        self.execution  # noqa: B018 - validates the precision and memory format
        return create_attack(self.attack, **{**dataset_defaults(self.attack, self.dataset_name), **self.params})

    def to_config(self) -> dict[str, Any]:
        d = asdict(self)
        d["image_shape"] = list(self.image_shape) if self.image_shape else None
        return d

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> AttackSpec:
        c = dict(config)
        c.pop("resolved", None)
        if c.get("image_shape"):
            c["image_shape"] = tuple(c["image_shape"])
        return cls(**c)


def check_count(n: object) -> ImageCount:
    """``n`` if it is a positive number of images or :data:`ALL`; a :class:`ConfigError` otherwise."""
    if n == ALL:
        return ALL
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"--n must be a number of images (at least 1) or 'all', got {n!r}")
    return n


def load_data_and_model(spec: AttackSpec, device: torch.device) -> tuple[ImageDataset, LoadedClassifier]:
    """The spec's classifier (on ``device``) and dataset, checked to fit each other."""
    clf = create_classifier(spec.model, weights=spec.weights, seed=spec.seed)
    dataset = spec.dataset_name
    opts: dict[str, Any] = {"data_dir": spec.data_dir, "image_size": spec.image_size, "seed": spec.seed}
    if dataset == "synthetic":
        opts["image_shape"] = spec.image_shape or clf.input_shape
        opts["n_synthetic"] = spec.n
    ds = create_dataset(dataset, **opts)
    if clf.architecture in BUILT_IN_ARCHITECTURES and tuple(ds.image_shape) != tuple(clf.input_shape):
        raise ConfigError(f"model {clf.name} takes {clf.input_shape} images, dataset {ds.name} has {ds.image_shape}")
    if ds.n_classes is not None and ds.n_classes > clf.num_classes:
        raise ConfigError(f"dataset {ds.name} has {ds.n_classes} classes but model {clf.name} only {clf.num_classes}")
    clf.to(device)
    return ds, clf
