"""Batches of images for planning: decoded by DataLoader worker processes ahead of the model.

Datasets held in memory (digits, synthetic, circles) load in the calling process. File-backed
ones (an ImageFolder of JPEGs) declare ``loader_workers``: that many worker processes each
decode whole batches, ``prefetch`` batches ahead per worker, into pinned memory when the
model is on CUDA, so decoding and resizing overlap the model instead of alternating with it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from advdb.data.base import ImageDataset
from advdb.errors import AdvdbError


class _IndexBatches(Dataset[torch.Tensor | AdvdbError]):
    """Item ``i`` is the float32 tensor of the images of ``batches[i]``, or the advdb error
    loading them raised (returned, not raised: DataLoader would wrap it in the worker's
    traceback, and the user must see one line naming the file)."""

    def __init__(self, ds: ImageDataset, batches: Sequence[np.ndarray]) -> None:
        self.ds, self.batches = ds, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> torch.Tensor | AdvdbError:
        try:
            return self.ds.load(self.batches[i])
        except AdvdbError as exc:
            return exc


def _one_thread_per_worker(_: int) -> None:
    """In a worker process the workers are the parallelism: decode there one image at a time."""
    info = get_worker_info()
    assert info is not None
    info.dataset.ds.decode_threads = 1  # type: ignore[attr-defined]


def load_batches(
    ds: ImageDataset,
    batches: Sequence[np.ndarray],
    *,
    device: torch.device,
    workers: int | None = None,
    prefetch: int = 2,
) -> Iterator[torch.Tensor]:
    """The images of each index batch in turn, as float32 tensors on the CPU (pinned for CUDA).

    ``workers`` defaults to the dataset's ``loader_workers``; with none, batches load here,
    one at a time. Stopping early (breaking out of the loop) shuts the workers down.
    """
    workers = min(ds.loader_workers if workers is None else workers, len(batches))
    if workers == 0:
        for b in batches:
            yield ds.load(b)
        return
    loader = DataLoader(
        _IndexBatches(ds, batches),
        batch_size=None,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=prefetch,
        worker_init_fn=_one_thread_per_worker,
    )
    for item in loader:
        if isinstance(item, AdvdbError):
            raise item
        yield item
