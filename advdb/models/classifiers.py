"""The classifier registry: the built-in digits CNN and torchvision architectures by name."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from advdb.artifacts import sha256_of as sha256_file
from advdb.errors import ConfigError, DataError
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
}


def default_dataset(model: str) -> str:
    """The data set ``model`` attacks when none is named."""
    return BUILT_IN_DATASETS.get(model, "imagefolder")


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


def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a ``torch.save`` file (``weights_only``).

    Anything else is one DataError line, with torch's warnings silenced.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. torch's multi-line note on a foreign pickle protocol
            return _unwrap_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except DataError as exc:
        raise DataError(f"weights file {path}: {exc}") from None
    except Exception as exc:  # corrupt zip, pickle refused by weights_only, truncated file …
        raise DataError(
            f"weights file {path} cannot be loaded ({type(exc).__name__}): is it a torch.save state dict?"
        ) from None


def load_state_into(net: torch.nn.Module, state: dict, path: Path, arch: str) -> None:
    """Load ``state`` into ``net``; a state dict of another architecture is one short DataError."""
    want, have = set(net.state_dict()), set(state) if isinstance(state, dict) else set()
    missing, unexpected = sorted(want - have), sorted(have - want)
    if missing or unexpected:
        example = (missing or unexpected)[0]
        raise DataError(
            f"weights file {path} does not fit {arch}: {len(missing)} missing and {len(unexpected)} unexpected "
            f"tensors (e.g. {example!r}): give a {arch} state dict"
        )
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = (lines[1] if len(lines) > 1 else lines[0] if lines else "")[:200]
        raise DataError(f"weights file {path} does not fit {arch}: {detail}") from None


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


def _unwrap_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DataError("the weights file holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


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
