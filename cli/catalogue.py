"""``advdb list``: the registered models, datasets, attacks, loss sources and defense transforms."""

from __future__ import annotations

import typer

from . import render
from .errors import command
from .options import Catalogue

app = typer.Typer()


@command(app, "list")
def list_catalogue(
    what: Catalogue = typer.Argument(..., help="models, datasets, attacks, losses or transforms."),
) -> None:
    """List the registered models, datasets, attacks, loss sources or defense transforms."""
    if what.value == "models":
        from advdb.models import list_classifiers

        items = list_classifiers()
    elif what.value == "datasets":
        from advdb.data import list_datasets

        items = list_datasets()
    elif what.value == "attacks":
        from advdb.attacks import list_attacks

        items = list_attacks()
    elif what.value == "transforms":
        from advdb.transforms import list_transforms

        items = list_transforms()
    else:
        from advdb.attacks import list_sources

        items = list_sources()
    render.print_table(["name", "description"], items.items(), wrap=["description"])
