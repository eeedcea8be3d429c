"""``advdb retrain``: train a detector of adversarial images on stored attack runs (Tables II, III)."""

from __future__ import annotations

from typing import Any

import typer

from advdb.vocabulary import parse_run_ids

from . import context, render
from .errors import command
from .options import (
    MemoryFormat,
    Optimizer,
    Precision,
    compile_option,
    memory_format_option,
    precision_option,
)

app = typer.Typer()


class _EpochPrinter:
    """Implements :class:`advdb.progress.EpochProgress` on stderr."""

    def epoch(self, *, run_id: int, epoch: int, epochs: int, train_loss: float, test_accuracy: float) -> None:
        render.err_console.print(
            f"run {run_id} epoch {epoch + 1}/{epochs}: train loss {train_loss:.4f}, test accuracy {test_accuracy:.1%}"
        )


@command(app, "retrain")
def retrain(
    arch: str = typer.Option(
        "small-cnn",
        "--arch",
        help="small-cnn, or a torchvision classifier: alexnet, resnet18, vgg16, resnet34, resnet152, …",
    ),
    sources: str | None = typer.Option(
        None,
        "--sources",
        help="Attack run ids whose adversarial images to detect, comma-separated (one: Table II; several: Table III).",
    ),
    weights: str | None = typer.Option(
        None, "--weights", help="ImageNet weights for a torchvision --arch [default: torchvision's cache if present]."
    ),
    epochs: int = typer.Option(10, "--epochs"),
    batch_size: int = typer.Option(64, "--batch-size", "-b"),
    optimizer: Optimizer = typer.Option("adam", "--optimizer"),
    lr: str = typer.Option("1e-3", "--lr", help="Learning rate."),
    momentum: float = typer.Option(0.9, "--momentum", help="SGD momentum."),
    weight_decay: float = typer.Option(5e-4, "--weight-decay", help="SGD weight decay."),
    step_size: int | None = typer.Option(
        None, "--step-size", help="Epochs between learning-rate decays [default: epochs/3]."
    ),
    gamma: float = typer.Option(0.1, "--gamma", help="Learning-rate decay factor."),
    test_fraction: float = typer.Option(0.2, "--test-fraction", help="Share of images held out for testing."),
    image_size: int | None = typer.Option(
        None, "--image-size", help="Resize images to this side [default: 224 for torchvision]."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, the initialisation and the shuffling."),
    device: str = typer.Option("auto", "--device"),
    precision: Precision = precision_option(),
    compile: bool = compile_option(),
    memory_format: MemoryFormat = memory_format_option(),
    workers: int = typer.Option(0, "--workers", help="DataLoader worker processes (use several on a GPU)."),
    sweep: bool = typer.Option(
        False,
        "--sweep",
        help="Train once per optimiser setting (adam 1e-3, adam 1e-4, sgd 0.01); the tables show the best.",
    ),
    resume: int | None = typer.Option(None, "--resume", help="Continue detector run RUN from its last finished epoch."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Train a detector (genuine vs adversarial) on the stored adversarial images of attack runs."""
    from advdb.api import detector_spec
    from advdb.detectors import resume_detector
    from advdb.store.detector_results import detector_results

    spec = None  # checked before the store opens
    if resume is None:
        spec = detector_spec(
            parse_run_ids(sources, "--sources"),
            arch=arch,
            weights=weights,
            epochs=epochs,
            batch_size=batch_size,
            optimizer=optimizer.value,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            step_size=step_size,
            gamma=gamma,
            test_fraction=test_fraction,
            image_size=image_size,
            seed=seed,
            device=device,
            workers=workers,
            precision=precision.value,
            compile=compile,
            memory_format=memory_format.value,
        )
    with context.store() as store:
        if resume is not None:
            run_id = resume_detector(store, resume, progress=_EpochPrinter())
        else:
            run_id = _train(store, spec, sweep=sweep)
        results = detector_results(store, run_id)
    if as_json:
        render.print_json(
            {
                "run_id": run_id,
                "results": [
                    {"group": r.group_name, "n_images": r.n_images, "accuracy": r.accuracy, "epoch": r.epoch}
                    for r in results
                ],
            }
        )
        return
    render.print_table(
        ["group", "test images", "accuracy", "best epoch"],
        [(r.group_name, r.n_images, f"{r.accuracy:.1%}", r.epoch) for r in results],
        title=f"detector run {run_id}",
    )


def _train(store: Any, spec: Any, *, sweep: bool) -> int:
    """Train the detector (once per setting with ``sweep``); returns the run to show: the best one."""
    from advdb.detectors import best_detector, sweep_detector, train_detector

    if not sweep:
        return int(train_detector(store, spec, progress=_EpochPrinter()))
    run_ids = sweep_detector(store, spec, progress=_EpochPrinter())
    best = best_detector(store, run_ids)
    render.err_console.print(f"runs {', '.join(map(str, run_ids))} trained; the best is run {best}")
    return best
