"""ImageFolder at ImageNet scale: decoding and resizing JPEGs against the model's speed.

    python benchmarks/imagefolder.py                       # 10,000 JPEGs at 224×224 and at 500×375
    python benchmarks/imagefolder.py --n 2000 --sizes 500x375 --workers 0 2 4

Generates an ImageFolder (10 class folders, smooth random JPEGs, quality 90) per source
size, then measures, in images/s: decoding + resizing + centre-cropping to 224 through
:func:`advdb.data.loader.load_batches` with each number of DataLoader workers (0: in the
calling process, one image at a time); the model alone on images already in memory
(``--model``, random weights, inference mode); and the planning pass
(:func:`advdb.planning.predict`: load and predict) with the default workers. The
planning pass keeps up when its time is close to the slower of the two (ratio ≈ 1);
loading and predicting one after the other would take their sum.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from advdb.data import ImageDataset, create_dataset
from advdb.data.loader import load_batches
from advdb.devices import resolve_device
from advdb.models import LoadedClassifier, create_classifier
from advdb.planning import predict


def generate(root: Path, n: int, size: tuple[int, int], seed: int = 0) -> None:
    """``n`` smooth random RGB JPEGs of ``size`` (width, height) in 10 class folders."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in range(10):
        (root / f"n{c:08d}").mkdir(parents=True)
    for i in range(n):
        small = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
        img = small.resize(size, Image.Resampling.BICUBIC)
        img.save(root / f"n{i % 10:08d}" / f"{i:06d}.JPEG", quality=90)


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:8,.0f} img/s"


def batches_of(indices: np.ndarray, size: int) -> list[np.ndarray]:
    return [indices[s : s + size] for s in range(0, len(indices), size)]


def decode(ds: ImageDataset, batches: list[np.ndarray], device: torch.device, workers: int | None = None) -> float:
    """Seconds to load every batch through the loader."""
    t0 = time.perf_counter()
    for _ in load_batches(ds, batches, device=device, workers=workers):
        pass
    return time.perf_counter() - t0


def model_alone(clf: LoadedClassifier, x: torch.Tensor, device: torch.device, batch_size: int) -> float:
    """Seconds of the model's predictions on images already in memory (after a warm-up batch)."""
    with torch.inference_mode():
        clf.module(x[:batch_size].to(device))
        t0 = time.perf_counter()
        for s in range(0, len(x), batch_size):
            clf.module(x[s : s + batch_size].to(device)).argmax(1).cpu()
        return time.perf_counter() - t0


def measure(ds: ImageDataset, clf: LoadedClassifier, device: torch.device, args: argparse.Namespace) -> None:
    batches = batches_of(np.arange(len(ds)), args.batch_size)
    for workers in args.workers or sorted({0, ds.loader_workers}):
        print(f"  decode+resize, {workers} workers: {rate(len(ds), decode(ds, batches, device, workers))}")
    subset = np.arange(min(args.plan_n, len(ds)))
    model_s = model_alone(clf, ds.load(subset), device, args.batch_size)
    decode_s = decode(ds, batches_of(subset, args.batch_size), device)
    t0 = time.perf_counter()
    predict(clf, ds, subset, device, args.batch_size)
    plan_s = time.perf_counter() - t0
    print(
        f"  {len(subset)} images: model alone {rate(len(subset), model_s)}, decode alone "
        f"{rate(len(subset), decode_s)}, planning pass {rate(len(subset), plan_s)}: "
        f"{plan_s / max(model_s, decode_s):.2f}× the slower of the two "
        f"(one after the other: {(model_s + decode_s) / max(model_s, decode_s):.2f}×)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="JPEGs per source size")
    ap.add_argument("--sizes", nargs="+", default=["224x224", "500x375"], help="source sizes WxH")
    ap.add_argument("--workers", type=int, nargs="+", default=None, help="loader workers to try [0 and the default]")
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--plan-n", type=int, default=512, help="images in the planning pass and the model-only pass")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = resolve_device(args.device)
    clf = create_classifier(args.model, weights="random")
    clf.to(device)
    print(f"{os.cpu_count()} CPU cores, device {device}, model {args.model}, batch {args.batch_size}")
    for size in args.sizes:
        w, h = (int(v) for v in size.split("x"))
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            generate(Path(tmp), args.n, (w, h))
            print(f"{size}: {args.n:,} JPEGs generated in {time.perf_counter() - t0:.0f} s")
            measure(create_dataset("imagefolder", data_dir=tmp, image_size=224), clf, device, args)


if __name__ == "__main__":
    main()
