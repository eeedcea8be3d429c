"""Option types shared by the commands: choices built from :mod:`advdb.vocabulary` (and, for
attacks and losses, the plugins' entry-point names, read from metadata without importing them:
:mod:`advdb.plugins`), numbers written as fractions, image counts (``all``), run-id lists, image
shapes and ``--param key=value``."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import typer

from advdb import vocabulary
from advdb.errors import ConfigError
from advdb.plugins import plugin_names


class Choice(str, Enum):
    """A choice of the command line; its members come from :mod:`advdb.vocabulary`."""


def choices(name: str, values: tuple[str, ...]) -> type[Choice]:
    """A :class:`Choice` of ``values`` (what Typer shows as ``[a|b|c]``)."""
    return Choice(name, {v: v for v in values})  # type: ignore[call-overload]


if TYPE_CHECKING:  # built at run time; to a type checker each is a Choice
    AttackName: TypeAlias = Choice
    Loss: TypeAlias = Choice
    Mode: TypeAlias = Choice
    Targets: TypeAlias = Choice
    ImageFormat: TypeAlias = Choice
    Optimizer: TypeAlias = Choice
    PresetName: TypeAlias = Choice
    Catalogue: TypeAlias = Choice
    OutFormat: TypeAlias = Choice
    ExportFormat: TypeAlias = Choice
    Precision: TypeAlias = Choice
    MemoryFormat: TypeAlias = Choice
else:
    AttackName = choices("AttackName", plugin_names("attack", vocabulary.ATTACKS))
    Loss = choices("Loss", plugin_names("loss", vocabulary.SOURCES))
    Mode = choices("Mode", vocabulary.MODES)
    Targets = choices("Targets", vocabulary.TARGET_RULES)
    ImageFormat = choices("ImageFormat", vocabulary.IMAGE_FORMATS)
    Optimizer = choices("Optimizer", vocabulary.OPTIMIZERS)
    PresetName = choices("PresetName", vocabulary.PRESETS)
    Catalogue = choices("Catalogue", vocabulary.CATALOGUES)
    OutFormat = choices("OutFormat", ("table", "csv", "json", "parquet"))
    ExportFormat = choices("ExportFormat", ("parquet",))
    Precision = choices("Precision", vocabulary.PRECISIONS)
    MemoryFormat = choices("MemoryFormat", vocabulary.MEMORY_FORMATS)


def parse_count(value: str, option: str = "--n") -> int | Literal["all"]:
    """A number of images, or ``all`` (every image the classifier gets right)."""
    if value.strip().lower() == "all":
        return "all"
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{option} must be a number of images or 'all', got {value!r}") from None


def parse_params(values: list[str] | None) -> dict[str, str]:
    """``--param key=value`` (repeatable) as a dict of strings; the source, attack or transform reads
    the values as the types it declares."""
    out: dict[str, str] = {}
    for item in values or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param takes key=value, such as --param kappa=2, got {item!r}")
        if key.strip() in out:
            raise ConfigError(f"--param gives {key.strip()!r} twice")
        out[key.strip()] = value.strip()
    return out


def param_option(of: str) -> Any:
    """``--param key=value``, repeatable: the hyperparameters of ``of``."""
    return typer.Option(
        None, "--param", "-p", metavar="KEY=VALUE", help=f"A hyperparameter of {of} (repeatable; see its docs)."
    )


def transforms_help() -> str:
    """The transformations ``advdb defend`` offers, built-in and plugins' (names from metadata)."""
    return ", ".join(plugin_names("transform", vocabulary.TRANSFORMS))


def plugins_help(what: str) -> str:
    """`` Plugins: a, b.`` for the installed plugins of registry ``what`` (names from metadata), or nothing."""
    names = plugin_names(what)
    return f" Plugins: {', '.join(names)}." if names else ""


def parse_shape(value: str | None) -> tuple[int, int, int] | None:
    """``C,H,W`` (or ``CxHxW``) of synthetic images."""
    if value is None:
        return None
    try:
        parts = tuple(int(p) for p in value.replace("x", ",").split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 1:
        raise ConfigError(f"--image-shape must be C,H,W such as 3,224,224, got {value!r}")
    return parts[0], parts[1], parts[2]


def precision_option() -> Any:
    """``--precision``, as attack, retrain and reproduce take it."""
    return typer.Option(
        "fp32",
        "--precision",
        help="fp32 (strict), tf32 (TF32 tensor cores on CUDA) or bf16 (autocast; statistics stay fp32).",
    )


def compile_option() -> Any:
    """``--compile/--no-compile``, as attack, retrain and reproduce take it."""
    return typer.Option(
        False, "--compile/--no-compile", help="Run the classifier through torch.compile (first batch pays the compile)."
    )


def memory_format_option() -> Any:
    """``--memory-format``, as attack, retrain and reproduce take it."""
    return typer.Option(
        vocabulary.DEFAULT_MEMORY_FORMAT,
        "--memory-format",
        help="Classifier layout: auto (channels-last on a CPU and when compiled on CUDA), contiguous or channels-last.",
    )
