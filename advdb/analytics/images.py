"""Genuine images of a stored data set, reloaded for figures and the web view (numpy only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from advdb.errors import NotFoundError


def genuine_images(
    kind: str, name: str, root: str | None, indices: Sequence[int], *, image_size: int | None = None
) -> np.ndarray:
    """Images ``indices`` of the data set (float32 [B, C, H, W] in [0, 1]), through the data set registry.

    ``image_size`` is the side an image folder was attacked at (its default when not given).
    """
    from advdb.data import reopen_dataset

    ds = reopen_dataset(kind=kind, name=name, root=root, image_size=image_size)
    if ds is None:
        raise NotFoundError(f"images of a {kind} dataset cannot be reloaded (they are generated, not stored)")
    return ds.load_array(list(indices))
