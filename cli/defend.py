"""``advdb defend``: transform the stored adversarial images of attack runs and classify them again."""

from __future__ import annotations

from contextlib import closing

import typer

from advdb.vocabulary import parse_run_ids

from . import context, render
from .errors import command
from .options import (
    MemoryFormat,
    Precision,
    compile_option,
    memory_format_option,
    param_option,
    parse_params,
    precision_option,
    transforms_help,
)
from .progress import RichProgress

app = typer.Typer()


def _strengths(value: str | None) -> list[str]:
    """The strengths as written, split at the commas (the library reads the numbers)."""
    return [v for v in (value or "").replace(" ", "").split(",") if v]


@command(app, "defend")
def defend(
    sources: str | None = typer.Option(
        None, "--sources", help="Attack run ids whose stored adversarial images to transform, comma-separated."
    ),
    transform: str = typer.Option(
        "jpeg", "--transform", "-t", help=f"{transforms_help()} (see `advdb list transforms`)."
    ),
    param: list[str] | None = param_option("the transform"),
    strength: str | None = typer.Option(
        None,
        "--strength",
        "-s",
        help="Strengths to sweep, comma-separated; 0 is no transformation [default: the transform's own sweep].",
    ),
    n: int | None = typer.Option(None, "-n", help="At most this many images per source [default: all]."),
    batch_size: int = typer.Option(256, "--batch-size", "-b"),
    device: str = typer.Option("auto", "--device"),
    precision: Precision = precision_option(),
    compile: bool = compile_option(),
    memory_format: MemoryFormat = memory_format_option(),
    resume: int | None = typer.Option(
        None, "--resume", help="Continue defense run RUN with the images it has not done."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the run's rates as JSON."),
) -> None:
    """Transform stored adversarial images (and their genuine originals) at each strength and classify them again."""
    from advdb.api import defense_spec
    from advdb.defenses import resume_defense, run_defense
    from advdb.store.evaluations import defense_summary

    with context.store() as store, closing(RichProgress()) as progress:
        if resume is not None:
            run_id = resume_defense(store, resume, progress=progress)
        else:
            spec = defense_spec(
                parse_run_ids(sources, "--sources"),
                transform=transform,
                strengths=_strengths(strength),
                params=parse_params(param),
                n=n,
                batch_size=batch_size,
                device=device,
                precision=precision.value,
                compile=compile,
                memory_format=memory_format.value,
            )
            run_id = run_defense(store, spec, progress=progress)
        rows = defense_summary(store, run_id)
    if as_json:
        render.print_json({"run_id": run_id, "results": rows})
        return
    render.print_table(
        ["source run", "strength", "images", "still target", "genuine correct"],
        [
            (
                r["source_run_id"],
                f"{r['strength']:g}",
                r["adversarial"],
                f"{r['still_target']:.1%}",
                f"{r['genuine_correct']:.1%}",
            )
            for r in rows
        ],  # fmt: skip
        title=f"defense run {run_id} (images adversarial on the source model)",
    )
