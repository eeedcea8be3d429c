"""The whole study in one call: every attack, detector and experiment of the paper, then
every report and the findings. Work already in the store is skipped (finished) or
resumed (interrupted or failed): running it again continues and never duplicates.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from advdb.attacks.defaults import dataset_defaults
from advdb.circles import CirclesSpec, run_circles
from advdb.defenses import DefenseSpec, resume_defense, run_defense
from advdb.detectors import SMALL_ARCH, DetectorSpec, resume_detector, train_detector
from advdb.errors import ConfigError, ConflictError
from advdb.planning import ImageCount
from advdb.progress import StepProgress
from advdb.runner import resume_attack, run_attack, start_writer
from advdb.spec import AttackSpec, check_count
from advdb.store.engine import Store
from advdb.store.runs import is_live, list_runs
from advdb.store.writer import BackgroundWriter
from advdb.transfer import TransferSpec, resume_transfer, run_transfer
from advdb.vocabulary import (
    DEFAULT_MEMORY_FORMAT,
    DEFAULT_PRECISION,
    DETECTOR_SWEEP,
    FULL_ATTACKS,
    MODES,
    SOURCES,
    TRANSFORMS,
    check_choice,
)


@dataclass
class Step:
    """One unit of the study: what it is, how to find it in the store, how to run or resume it."""

    label: str
    kind: str
    config: Callable[[], dict[str, Any]]  # the run config it must match (resolved lazily: detectors need source ids)
    run: Callable[[], int]
    resume: Callable[[int], int] | None = None


@dataclass
class Preset:
    """What a study runs. ``n``: images per unified run ("all": every correctly classified one);
    ``models``: the classifiers attacked, each with the whole study (reports and findings per
    model); ``unified``: the unified runs' step sizes (α, τ) where the attack's own defaults do
    not fit the data."""

    n: ImageCount
    iterations: int
    batch_size: int
    full_attack_n: ImageCount
    detector_epochs: int
    model: str = "digits-cnn"
    weights: str | None = None
    dataset: str | None = None
    data_dir: str | None = None
    detector_archs: list[str] = field(default_factory=lambda: ["small-cnn"])
    detector_image_size: int | None = None
    circles: bool = True
    circles_n: int = 200
    circles_iterations: int = 100
    workers: int = 0
    # beyond the paper: the unified runs' images shown to other classifiers, and transformed
    transfer_models: list[str] = field(default_factory=lambda: ["digits-cnn-seed1", "digits-mlp"])
    defense_n: int | None = None  # images per source the defenses transform (None: all)
    also_models: list[str] = field(default_factory=list)  # further classifiers, each with the whole study
    unified: dict[str, Any] = field(default_factory=dict)

    @property
    def models(self) -> list[str]:
        return [self.model, *self.also_models]


STUDY_PRESETS = {
    # the embedded default: the whole study in minutes on a 2-core CPU
    "digits": Preset(n=500, iterations=300, batch_size=250, full_attack_n=200, detector_epochs=15),
    # the paper's configuration: ResNet-50 on the ImageNet validation set (every image it
    # classifies correctly, about 76–81 % of the 50,000), on a GPU
    "imagenet": Preset(
        n="all",
        iterations=500,
        batch_size=250,
        full_attack_n=1_000,
        detector_epochs=30,
        model="resnet50",
        dataset="imagefolder",
        detector_archs=["alexnet", "resnet18", "vgg16", "resnet34", "resnet152"],
        detector_image_size=224,
        circles=True,
        workers=8,
        transfer_models=[],  # other ImageNet models need their weights: `advdb transfer --model M --weights F`
        defense_n=1_000,
    ),
    # real ImageNet images and a real ImageNet classifier, offline, on a CPU: EfficientNet-Lite0
    # on the 20 foolbox images (the 17 it classifies correctly); T = 100 with τ a tenth of one
    # 1/255 IFGS step (about 15 iterations to the target, measured), transfer onto Lite1 and Lite2
    "imagenet-sample": Preset(
        n="all",
        iterations=100,
        batch_size=32,
        full_attack_n="all",
        detector_epochs=0,
        model="efficientnet-lite0",
        dataset="imagenet-sample",
        detector_archs=[],  # 17 images cannot train a detector: see the README
        circles=False,
        transfer_models=["efficientnet-lite1", "efficientnet-lite2"],
        unified={"tau": 0.152},
    ),
    # real MNIST digits; a LeNet-5 trained normally and one trained adversarially, side by side
    "mnist": Preset(
        n=200,
        iterations=200,
        batch_size=200,
        full_attack_n=100,
        detector_epochs=15,
        model="mnist-lenet5",
        also_models=["mnist-lenet5-robust"],
        dataset="mnist",
        circles=False,
        transfer_models=["mnist-lenet5", "mnist-lenet5-robust"],
    ),
}


def _find(store: Store, kind: str, config: dict[str, Any]) -> tuple[int, str] | None:
    """The newest run of ``kind`` whose stored configuration matches ``config`` (status included)."""
    for run in list_runs(store, kind=kind):
        stored = {k: v for k, v in run.config.items() if k != "resolved"}
        if all(stored.get(k) == v for k, v in config.items()):
            return run.run_id, ("live" if is_live(store, run) else run.status)
    return None


def detector_settings(arch: str) -> tuple[tuple[str, float], ...]:
    """The optimiser settings a study trains ``arch`` with: the sweep for torchvision networks;
    one for the small CNN, which Adam at 1e-3 trains to 90–100 % on every digits source."""
    return (("adam", 1e-3),) if arch == SMALL_ARCH else DETECTOR_SWEEP


def _attack_step(
    store: Store,
    label: str,
    spec: AttackSpec,
    writer: Callable[[], BackgroundWriter | None],
    notice: Callable[[str], None] | None = None,
) -> Step:
    cfg = spec.to_config()

    def run() -> int:
        return run_attack(store, spec, writer=writer(), notice=notice and (lambda line: notice(f"{label}: {line}")))

    def resume(run_id: int) -> int:
        return resume_attack(store, run_id, writer=writer())

    return Step(label, "attack", lambda: cfg, run, resume)


@dataclass
class StudyResult:
    runs: dict[str, int]
    skipped: list[str]
    seconds: float


def plan_study(
    store: Store,
    preset_name: str,
    *,
    device: str = "auto",
    data_dir: str | None = None,
    weights: str | None = None,
    with_torchvision_detectors: bool = False,
    seed: int = 0,
    n: ImageCount | None = None,
    iterations: int | None = None,
    precision: str = DEFAULT_PRECISION,
    compile: bool = False,
    memory_format: str = DEFAULT_MEMORY_FORMAT,
    writer: Callable[[], BackgroundWriter | None] = lambda: None,
    notice: Callable[[str], None] | None = None,
) -> tuple[list[Step], dict[str, int]]:
    """The study's steps, in order; ``n`` and ``iterations`` override the preset's; ``writer``
    gives the writer every attack shares (each starts its own without it); ``notice`` gets a line
    per attack saying how many images its planning found, before it attacks any."""
    p = _preset(preset_name, n=n, iterations=iterations)
    if preset_name == "imagenet" and not (data_dir and weights):
        raise ConfigError(
            "--preset imagenet needs --data-dir (ImageNet validation, ROOT/<synset>/<image>) and --weights "
            "(resnet50 state dict)"
        )
    archs = list(p.detector_archs) + (
        ["resnet18"] if with_torchvision_detectors and "resnet18" not in p.detector_archs else []
    )
    ids: dict[str, int] = {}
    steps: list[Step] = []
    execution: dict[str, Any] = {
        "device": device, "precision": precision, "compile": compile, "memory_format": memory_format
    }  # fmt: skip
    for model in p.models:
        prefix = f"{model}: " if len(p.models) > 1 else ""
        common = AttackSpec(
            model=model,
            weights=weights or p.weights,
            dataset=p.dataset,
            data_dir=data_dir or p.data_dir,
            batch_size=p.batch_size,
            seed=seed,
            **execution,
        )
        steps += _attack_steps(store, p, common, prefix, writer, notice)
        steps += _detector_steps(store, p, archs, prefix, ids, {"seed": seed, **execution})
        _evaluation_steps(store, p, steps, ids, execution, model=model, prefix=prefix)
    if p.circles:
        cspec = CirclesSpec(n=p.circles_n, iterations=p.circles_iterations, device=device, seed=seed)
        cfg = {k: v for k, v in cspec.__dict__.items()}
        steps.append(Step("circles", "circles", lambda: cfg, lambda: run_circles(store, cspec)))
    return steps, ids


def _preset(name: str, *, n: ImageCount | None, iterations: int | None) -> Preset:
    """The preset ``name`` with the user's ``n`` and ``iterations`` in place of its own."""
    p = STUDY_PRESETS[check_choice(name, tuple(STUDY_PRESETS), "preset")]
    if iterations is not None:
        if iterations < 1:
            raise ConfigError(f"--iterations must be at least 1, got {iterations}")
        p = replace(p, iterations=iterations)
    if n is not None:
        n = check_count(n)
        full = p.full_attack_n
        smaller = isinstance(n, int) and (full == "all" or (isinstance(full, int) and n < full))
        p = replace(p, n=n, full_attack_n=n if smaller else full)
    return p


def _attack_steps(
    store: Store,
    p: Preset,
    common: AttackSpec,
    prefix: str,
    writer: Callable[[], BackgroundWriter | None],
    notice: Callable[[str], None] | None,
) -> list[Step]:
    """The unified runs (each source in both modes) and the full attacks on one classifier."""
    steps = []
    for mode in MODES:
        for loss in SOURCES:
            params = {"loss": loss, "mode": mode, "iterations": p.iterations}
            params.update({k: v for k, v in p.unified.items() if k != "alpha" or mode == "equal-multiplier"})
            if mode == "equal-multiplier":
                params.pop("tau", None)
            spec = replace(common, params=params, n=p.n)
            steps.append(_attack_step(store, f"{prefix}{loss} {mode}", spec, writer, notice))
    for attack in FULL_ATTACKS:  # the data set's defaults written out, so the stored configuration names them
        params = dataset_defaults(attack, common.dataset_name)
        if attack == "ifgs":
            params["iterations"] = p.iterations
        spec = replace(common, attack=attack, params=params, n=p.full_attack_n)
        steps.append(_attack_step(store, f"{prefix}{attack}", spec, writer, notice))
    return steps


def _detector_steps(
    store: Store, p: Preset, archs: list[str], prefix: str, ids: dict[str, int], common: dict[str, Any]
) -> list[Step]:
    """One detector per equal-perturbation source and one on all of them, per architecture and setting."""
    steps = []

    def detector_step(label: str, arch: str, sources: Callable[[], list[int]], setting: tuple[str, float]) -> None:
        def spec() -> DetectorSpec:
            return DetectorSpec(
                arch=arch,
                sources=sources(),
                optimizer=setting[0],
                lr=setting[1],
                epochs=p.detector_epochs,
                image_size=p.detector_image_size if arch != "small-cnn" else None,
                workers=p.workers,
                **common,
            )

        steps.append(
            Step(
                label,
                "detector",
                lambda: spec().to_config(),
                lambda: train_detector(store, spec()),
                lambda r: resume_detector(store, r),
            )
        )

    eq_pert = [f"{prefix}{loss} equal-perturbation" for loss in SOURCES]
    for arch, setting in ((a, s) for a in archs for s in detector_settings(a)):
        tag = f" {setting[0]} {setting[1]:g}" if arch != SMALL_ARCH else ""
        for key, loss in zip(eq_pert, SOURCES, strict=True):
            sources = functools.partial(lambda k: [ids[k]], key)
            detector_step(f"{prefix}detector {arch} {loss}{tag}", arch, sources, setting)
        detector_step(f"{prefix}detector {arch} all sources{tag}", arch, lambda: [ids[k] for k in eq_pert], setting)
    return steps


def _evaluation_steps(
    store: Store,
    p: Preset,
    steps: list[Step],
    ids: dict[str, int],
    common: dict[str, Any],
    *,
    model: str,
    prefix: str = "",
) -> None:
    """Transfer onto each of the preset's other models and every defense, over the unified runs
    on ``model``; ``common``: the device and execution options."""
    unified = [f"{prefix}{loss} {mode}" for mode in MODES for loss in SOURCES]

    def transfer(model: str) -> TransferSpec:
        return TransferSpec(sources=[ids[k] for k in unified], model=model, **common)

    def defense(name: str) -> DefenseSpec:
        spec = DefenseSpec(sources=[ids[k] for k in unified], transform=name, n=p.defense_n, **common)
        spec.validate()  # fills in the transformation's default strengths, as the stored configuration has them
        return spec

    for other in (m for m in p.transfer_models if m != model):
        make_t: Callable[[], TransferSpec] = functools.partial(transfer, other)
        label = f"{prefix}transfer onto {other}"
        steps.append(_evaluation_step(store, label, "transfer", make_t, run_transfer, resume_transfer))
    for name in TRANSFORMS:
        make_d: Callable[[], DefenseSpec] = functools.partial(defense, name)
        label = f"{prefix}defense {name}"
        steps.append(_evaluation_step(store, label, "defense", make_d, run_defense, resume_defense))


def _evaluation_step(
    store: Store,
    label: str,
    kind: str,
    make: Callable[[], Any],
    run: Callable[[Store, Any], int],
    resume: Callable[[Store, int], int],
) -> Step:
    """A transfer or defense step; ``make`` builds its spec once the source runs exist."""
    return Step(label, kind, lambda: make().to_config(), lambda: run(store, make()), lambda r: resume(store, r))


def run_study(
    store: Store, preset_name: str = "digits", *, progress: StepProgress | None = None, **options: Any
) -> StudyResult:
    """Run (or continue) the whole study; reports are made by the caller (``advdb report all``)."""
    t0 = time.perf_counter()
    writer = functools.cache(lambda: start_writer(store))  # one writer for every attack, started when first needed
    try:
        steps, ids = plan_study(store, preset_name, writer=writer, **options)
        skipped = _run_steps(store, steps, ids, progress)
    finally:
        if writer.cache_info().currsize:
            writer().stop()
    return StudyResult(runs=ids, skipped=skipped, seconds=time.perf_counter() - t0)


def _run_steps(store: Store, steps: list[Step], ids: dict[str, int], progress: StepProgress | None) -> list[str]:
    """Run, resume or skip each step in turn; returns the labels of the skipped ones."""
    skipped: list[str] = []
    for i, step in enumerate(steps):
        found = _find(store, step.kind, step.config())
        if progress:
            progress.step(index=i, total=len(steps), label=step.label, state="start")
        if found and found[1] == "live":
            raise ConflictError(
                f"{step.label}: run {found[0]} is being worked on by another process; wait for it or stop it"
            )
        if found and found[1] == "finished":
            ids[step.label] = found[0]
            skipped.append(step.label)
            state = "skipped"
        elif found and found[1] in ("interrupted", "failed", "running") and step.resume is not None:
            ids[step.label] = step.resume(found[0])
            state = "resumed"
        else:
            ids[step.label] = step.run()
            state = "done"
        if progress:
            progress.step(index=i + 1, total=len(steps), label=step.label, state=state)
    return skipped
