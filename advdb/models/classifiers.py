"""The classifier registry: the built-in digits CNN and torchvision architectures by name."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from advdb.artifacts import sha256_of as sha256_file
from advdb.errors import ConfigError, DataError
from advdb.models.weights import load_state_file, load_state_into
from advdb.models.wrapper import PixelSpaceClassifier
from advdb.registry import Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

CLASSIFIERS: Registry = Registry("model")

#: The data set each built-in classifier is made for; torchvision classifiers take an ImageFolder.
BUILT_IN_DATASETS = {
    "digits-cnn": "digits",
    "digits-cnn-seed1": "digits",
    "digits-mlp": "digits",
    "circles-mlp": "circles",
    "efficientnet-lite0": "imagenet-sample",
    "efficientnet-lite1": "imagenet-sample",
    "efficientnet-lite2": "imagenet-sample",
    "mnist-lenet5": "mnist",
    "mnist-lenet5-robust": "mnist",
}


def default_dataset(model: str) -> str:
    """The data set ``model`` attacks when none is named: a built-in's own; a plugin's, the
    ``default_dataset`` attribute of its factory (``create_x.default_dataset = "digits"``), read
    without building the model; otherwise an ImageFolder."""
    if model in BUILT_IN_DATASETS:
        return BUILT_IN_DATASETS[model]
    declared = getattr(CLASSIFIERS.get(model), "default_dataset", None) if model in CLASSIFIERS else None
    return declared if isinstance(declared, str) else "imagefolder"


@dataclass
class LoadedClassifier:
    """A ready classifier (pixel space in, logits out) and what the store records about it."""

    name: str
    architecture: str
    module: PixelSpaceClassifier
    num_classes: int
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    weights_source: str
    weights_sha256: str
    test_accuracy: float | None = None
    default_dataset: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: the packages its weights and architecture come from, stored among a run's versions
    versions: dict[str, str] = field(default_factory=dict)
    #: ``input_shape`` is the size it was trained at: images of another size are resized to it
    #: on the way in where a deployed pipeline would (transfer); torchvision networks take any size
    resize_input: bool = False

    @property
    def normalization(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}

    def catalogue_fields(self) -> dict[str, Any]:
        """What the store's catalogue records about this classifier."""
        return {
            "name": self.name,
            "architecture": self.architecture,
            "weights_source": self.weights_source,
            "weights_sha256": self.weights_sha256,
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape),
            "normalization": self.normalization,
            "test_accuracy": self.test_accuracy,
        }

    def to(self, device: torch.device) -> LoadedClassifier:
        self.module = self.module.to(device)
        return self


def _digits_model(name: str) -> LoadedClassifier:
    from advdb.models.digits_cnn import DIGITS_MODELS, load_or_train

    net, meta, path = load_or_train(name)
    return LoadedClassifier(
        name=name,
        architecture=DIGITS_MODELS[name].architecture,
        module=PixelSpaceClassifier(net, meta["mean"], meta["std"]),
        num_classes=10,
        input_shape=(1, 8, 8),
        mean=tuple(meta["mean"]),
        std=tuple(meta["std"]),
        weights_source=str(path),
        weights_sha256=meta["sha256"],
        test_accuracy=meta["test_accuracy"],
        default_dataset=BUILT_IN_DATASETS[name],
    )


@CLASSIFIERS.register("digits-cnn", "built-in small CNN for 8×8 digits, trained deterministically on first use")
def _digits_cnn(**_: Any) -> LoadedClassifier:
    return _digits_model("digits-cnn")


@CLASSIFIERS.register("digits-cnn-seed1", "the same CNN trained from another seed (transfer between twins)")
def _digits_cnn_seed1(**_: Any) -> LoadedClassifier:
    return _digits_model("digits-cnn-seed1")


@CLASSIFIERS.register("digits-mlp", "an MLP for 8×8 digits (another architecture), trained deterministically on use")
def _digits_mlp(**_: Any) -> LoadedClassifier:
    return _digits_model("digits-mlp")


@CLASSIFIERS.register("circles-mlp", "one-hidden-layer ReLU net for the 2-D circles experiment, trained on use")
def _circles_mlp(**_: Any) -> LoadedClassifier:
    from advdb.models.circles_mlp import EPOCHS, HIDDEN, train_circles_mlp

    net, meta = train_circles_mlp()
    return LoadedClassifier(
        name="circles-mlp",
        architecture="circles-mlp",
        module=PixelSpaceClassifier(net, meta["mean"], meta["std"]),
        num_classes=2,
        input_shape=(2, 1, 1),
        mean=tuple(meta["mean"]),
        std=tuple(meta["std"]),
        weights_source=f"trained:hidden={HIDDEN},epochs={EPOCHS}",
        weights_sha256=meta["sha256"],
        test_accuracy=meta["test_accuracy"],
        default_dataset=BUILT_IN_DATASETS["circles-mlp"],
    )


def _real_classifier(name: str, kind: str) -> LoadedClassifier:
    """A packaged real classifier (:mod:`advdb.models.real`)."""
    from advdb.models import real

    if kind == "efficientnet":
        module, path, versions = real.efficientnet_lite(name)
        size = real.EFFICIENTNET_LITE[name].size
        shape, classes, arch = (3, size, size), 1000, f"tf_efficientnet_{real.EFFICIENTNET_LITE[name].variant}"
    else:
        module, path, versions = real.mnist_lenet5(name)
        shape, classes, arch = (1, 28, 28), 10, "mnist-lenet5"
    return LoadedClassifier(
        name=name,
        architecture=arch,
        module=module,
        num_classes=classes,
        input_shape=shape,
        mean=tuple(module.mean.flatten().tolist()),
        std=tuple(module.std.flatten().tolist()),
        weights_source=str(path.resolve()),
        weights_sha256=sha256_file(path),
        default_dataset=BUILT_IN_DATASETS[name],
        versions=versions,
        resize_input=kind == "efficientnet",
    )


def _register_real() -> None:
    for variant, size in (("lite0", 224), ("lite1", 240), ("lite2", 260)):
        name = f"efficientnet-{variant}"
        CLASSIFIERS.register(
            name,
            f"EfficientNet-{variant.title()}, ImageNet-1k ({size} px), weights from efficientnet-{variant}-"
            "pytorch-model via timm",
        )(lambda name=name, **_: _real_classifier(name, "efficientnet"))
    CLASSIFIERS.register("mnist-lenet5", "advertorch's LeNet-5 for 28×28 MNIST, trained normally")(
        lambda **_: _real_classifier("mnist-lenet5", "lenet")
    )
    CLASSIFIERS.register("mnist-lenet5-robust", "advertorch's LeNet-5 for MNIST, adversarially trained (PGD)")(
        lambda **_: _real_classifier("mnist-lenet5-robust", "lenet")
    )


_register_real()


def torchvision_cache_file(arch: str) -> Path | None:
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(arch).DEFAULT
    except (ValueError, KeyError, AttributeError):
        return None
    name = Path(weights.url).name
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def torchvision_classifier(
    arch: str, *, weights: str | None = None, num_classes: int | None = None, seed: int = 0
) -> LoadedClassifier:
    """A torchvision classification architecture with weights from a file or torchvision's cache.

    ``weights="random"`` gives a seeded random initialisation (benchmarks and tests).
    """
    import torchvision

    if arch not in torchvision.models.list_models(module=torchvision.models):
        raise ConfigError(
            f"unknown model {arch!r}: use digits-cnn or a torchvision classification architecture (resnet50, "
            "alexnet, vgg16, …)"
        )
    if weights == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = torchvision.models.get_model(arch, weights=None, num_classes=num_classes or 1000)
        state = net.state_dict()
        import hashlib

        h = hashlib.sha256()
        for k, v in state.items():
            h.update(k.encode())
            h.update(v.detach().cpu().numpy().tobytes())
        source, sha = f"random:seed={seed}", h.hexdigest()
    else:
        path = Path(weights).expanduser() if weights else torchvision_cache_file(arch)
        if path is None:
            raise DataError(
                f"no pretrained weights known for {arch}: pass --weights FILE (a state dict saved with torch.save)"
            )
        if not path.exists():
            where = (
                ""
                if weights
                else " (torchvision's cache); download it elsewhere and copy it there, or pass --weights FILE"
            )
            raise DataError(f"weights file {path} does not exist{where}")
        state = load_state_file(path)
        if num_classes is None:
            last2d = [v for v in state.values() if v.ndim == 2]
            num_classes = int(last2d[-1].shape[0]) if last2d else 1000
        net = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
        load_state_into(net, state, path, arch)
        source, sha = str(path.resolve()), sha256_file(path)
    n_out = num_classes or 1000
    return LoadedClassifier(
        name=arch,
        architecture=arch,
        module=PixelSpaceClassifier(net, IMAGENET_MEAN, IMAGENET_STD),
        num_classes=n_out,
        input_shape=(3, 224, 224),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        weights_source=source,
        weights_sha256=sha,
        default_dataset=default_dataset(arch),
    )


def create_classifier(
    name: str, *, weights: str | None = None, num_classes: int | None = None, seed: int = 0
) -> LoadedClassifier:
    """Create a classifier by name: ``digits-cnn`` or any torchvision architecture (``resnet50`` …)."""
    if name in CLASSIFIERS:
        if weights not in (None, ""):
            raise ConfigError(f"model {name!r} is built in and takes no --weights")
        return CLASSIFIERS.get(name)()
    return torchvision_classifier(name, weights=weights, num_classes=num_classes, seed=seed)


def list_classifiers() -> dict[str, str]:
    """Built-in classifiers plus torchvision's classification architectures."""
    import torchvision

    out = CLASSIFIERS.describe()
    for arch in torchvision.models.list_models(module=torchvision.models):
        out[arch] = "torchvision architecture (weights from --weights FILE or torchvision's cache)"
    return out
