"""``advdb transfer``: show the stored adversarial images of attack runs to another classifier."""

from __future__ import annotations

from contextlib import closing

import typer

from advdb.vocabulary import parse_run_ids

from . import context, render
from .errors import command
from .options import MemoryFormat, Precision, compile_option, memory_format_option, precision_option
from .progress import RichProgress

app = typer.Typer()


@command(app, "transfer")
def transfer(
    sources: str | None = typer.Option(
        None, "--sources", help="Attack run ids whose stored adversarial images to evaluate, comma-separated."
    ),
    model: str = typer.Option(
        "digits-cnn-seed1",
        "--model",
        "-m",
        help="The other classifier: a built-in one (digits-cnn-seed1, digits-mlp, efficientnet-lite1, "
        "mnist-lenet5-robust, …: advdb list models) or a torchvision architecture; one trained at another size gets "
        "the images resized.",
    ),
    weights: str | None = typer.Option(None, "--weights", help="Weights file for a torchvision --model."),
    n: int | None = typer.Option(None, "-n", help="At most this many images per source [default: all]."),
    batch_size: int = typer.Option(256, "--batch-size", "-b"),
    seed: int = typer.Option(0, "--seed", help="Seed of a torchvision model's random weights (--weights random)."),
    device: str = typer.Option("auto", "--device"),
    precision: Precision = precision_option(),
    compile: bool = compile_option(),
    memory_format: MemoryFormat = memory_format_option(),
    resume: int | None = typer.Option(
        None, "--resume", help="Continue transfer run RUN with the images it has not done."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the run's rates as JSON."),
) -> None:
    """Evaluate stored adversarial images on another classifier: targeted and untargeted transfer per source."""
    from advdb.api import transfer_spec
    from advdb.store.evaluations import transfer_summary
    from advdb.transfer import resume_transfer, run_transfer

    with context.store() as store, closing(RichProgress()) as progress:
        if resume is not None:
            run_id = resume_transfer(store, resume, progress=progress)
        else:
            spec = transfer_spec(
                parse_run_ids(sources, "--sources"),
                model=model,
                weights=weights,
                n=n,
                batch_size=batch_size,
                seed=seed,
                device=device,
                precision=precision.value,
                compile=compile,
                memory_format=memory_format.value,
            )
            run_id = run_transfer(store, spec, progress=progress)
        rows = transfer_summary(store, run_id)
    if as_json:
        render.print_json({"run_id": run_id, "sources": rows})
        return
    render.print_table(
        ["source run", "adversarial images", "targeted transfer", "untargeted transfer"],
        [(r["source_run_id"], r["adversarial"], f"{r['targeted']:.1%}", f"{r['untargeted']:.1%}") for r in rows],
        title=f"transfer run {run_id} (images still adversarial on the source model)",
    )
