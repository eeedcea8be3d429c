"""The command-line layer (Typer + rich): parses options, calls the library, renders.

This is the only package that imports typer or rich; the library never imports it.
"""

from .app import app, main

__all__ = ["app", "main"]
