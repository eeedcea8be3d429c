"""Adversarial image files: encode, write atomically with their sha256, load and verify.

``png`` stores the 8-bit quantised image (what an attacker could actually publish);
``npy`` stores the float32 image exactly. Paths in the store are relative to the store's
artifact folder and name the content: ``run-<run_id>/<image_id>-<sha256[:16]>.<format>``. A
batch attacked twice (a worker that lost its lease and finished anyway, on another device)
therefore never replaces a committed file: different bytes get another name, which no row
references (``advdb db gc`` removes it), and the same bytes replace the file with itself.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np

from advdb.errors import DataError
from advdb.vocabulary import IMAGE_FORMATS, check_choice


def check_format(fmt: str) -> str:
    return check_choice(fmt, IMAGE_FORMATS, "image format")


def relative_path(run_id: int, image_id: int, fmt: str, sha256: str) -> str:
    """Where an image file goes, named by its run, its image and its content."""
    return f"run-{run_id}/{image_id}-{sha256[:16]}.{fmt}"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encode(pixels: np.ndarray, fmt: str) -> bytes:
    """Encode one image [C, H, W]: uint8 for png, float32 in [0, 1] for npy."""
    if check_format(fmt) == "png":
        from PIL import Image

        arr = np.ascontiguousarray(pixels.transpose(1, 2, 0))
        if arr.shape[2] == 1:
            im = Image.fromarray(arr[:, :, 0], mode="L")
        else:
            im = Image.fromarray(arr, mode="RGB")
        buf = io.BytesIO()
        im.save(buf, format="PNG", compress_level=1)
        return buf.getvalue()
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(pixels, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def write_file(path: Path, data: bytes) -> tuple[str, int]:
    """Write atomically (a partly written file is never seen under ``path``); returns (sha256, size)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves no partial file behind
        raise
    return digest(data), len(data)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load(path: Path, *, expected_sha256: str | None = None) -> np.ndarray:
    """Load an artifact as float32 [C, H, W] in [0, 1], checking its sha256 if given."""
    if not path.exists():
        raise DataError(
            f"adversarial image {path} is missing: re-run the attack (advdb attack --resume) or restore the file"
        )
    if expected_sha256 is not None and sha256_of(path) != expected_sha256:
        raise DataError(
            f"adversarial image {path} has changed since it was stored (sha256 mismatch): restore it or re-run its "
            "attack"
        )
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False).astype(np.float32)
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr.transpose(2, 0, 1).astype(np.float32) / 255.0
