"""A writer process: commits batches (and writes their image files) while the attack runs on.

Two different SQLite libraries in one process (Python's ``sqlite3`` under SQLAlchemy and the
one inside DuckDB's scanner) must never have the same file open at once: POSIX locks are
per process, so one library's close drops the other's locks and the database can be
corrupted. The bulk path therefore runs in its own process, which also takes PNG
encoding, hashing and the commit off the attack's critical path.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from advdb.config import StoreLocation
from advdb.errors import AdvdbError, StoreError
from advdb.store.ingest import ArrayLike, BatchRecord, Ingestor


@dataclass
class ArtifactPayload:
    """Image files to write with a batch: pixels [B, C, H, W] (uint8 for png, float32 for npy)."""

    image_id: np.ndarray
    pixels: np.ndarray
    format: str
    saved_pred: np.ndarray
    still_adversarial: np.ndarray


def write_artifacts(location: StoreLocation, run_id: int, payload: ArtifactPayload) -> dict[str, Any]:
    """Write the files; returns the artifact columns for the store."""
    from advdb import artifacts

    paths, shas, sizes = [], [], []
    for image_id, pixels in zip(payload.image_id.tolist(), payload.pixels):
        rel = artifacts.relative_path(run_id, int(image_id), payload.format)
        sha, size = artifacts.write_file(location.artifacts_dir / rel, artifacts.encode(pixels, payload.format))
        paths.append(rel)
        shas.append(sha)
        sizes.append(size)
    n = len(paths)
    return {
        "image_id": payload.image_id.astype(np.int32),
        "path": paths,
        "format": [payload.format] * n,
        "sha256": shas,
        "n_bytes": np.asarray(sizes, dtype=np.int64),
        "saved_pred": payload.saved_pred.astype(np.int32),
        "still_adversarial": payload.still_adversarial.astype(bool),
    }


def _writer_main(location: StoreLocation, parent_pid: int, requests: Any, responses: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what an interrupt means
    try:
        ingestor = Ingestor(location)
    except AdvdbError as exc:
        responses.put((-1, False, f"{type(exc).__name__}:{exc}"))
        return
    responses.put((-1, True, None))
    while True:
        try:
            item = requests.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent_pid:
                break
            continue
        if item is None:
            break
        seq, op, args = item
        try:
            if op == "commit":
                batch, payload = args
                if payload is not None:
                    batch.artifacts = write_artifacts(location, batch.run_id, payload)
                result: Any = ingestor.commit(batch)
            elif op == "insert":
                table, columns, run_id = args
                result = ingestor.insert(table, columns, run_id=run_id)
            else:
                raise StoreError(f"unknown writer operation {op!r}")
            responses.put((seq, True, result))
        except AdvdbError as exc:
            responses.put((seq, False, f"{type(exc).__name__}:{exc}"))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises
            responses.put((seq, False, f"StoreError:writer failed: {type(exc).__name__}: {exc}"))
    ingestor.close()


def _raise(message: str) -> None:
    from advdb import errors

    name, _, text = message.partition(":")
    cls = getattr(errors, name, StoreError)
    raise cls(text)


class BackgroundWriter:
    """Commits batches in a child process, at most ``max_pending`` ahead of the caller."""

    def __init__(self, location: StoreLocation, *, max_pending: int = 2) -> None:
        ctx = mp.get_context("spawn")
        self._requests = ctx.Queue(maxsize=max_pending)
        self._responses = ctx.Queue()
        self._proc = ctx.Process(
            target=_writer_main, args=(location, os.getpid(), self._requests, self._responses), daemon=True, name="advdb-writer"
        )
        self._proc.start()
        self._seq = 0
        self._pending: set[int] = set()
        self._results: dict[int, Any] = {}
        self._error: str | None = None
        self._ready = False

    def _ensure_ready(self) -> None:
        """Wait for the process to attach the store (it starts in the background)."""
        if self._ready:
            return
        _, ok, msg = self._get(block=True, timeout=120)
        if not ok:
            self._proc.join(5)
            _raise(msg)
        self._ready = True

    def _get(self, *, block: bool, timeout: float | None = None) -> tuple[int, bool, Any]:
        while True:
            try:
                return self._responses.get(block=block, timeout=timeout if block else None)
            except queue.Empty:
                if not block:
                    raise
                if not self._proc.is_alive():
                    raise StoreError("the writer process died: see the messages above; resume the run with --resume") from None

    def _collect(self, *, block: bool) -> None:
        while self._pending:
            try:
                seq, ok, result = self._get(block=block, timeout=5)
            except queue.Empty:
                return
            self._pending.discard(seq)
            if ok:
                self._results[seq] = result
            elif self._error is None:
                self._error = result
            if not block:
                continue

    def _check(self) -> None:
        if self._error is not None:
            msg, self._error = self._error, None
            _raise(msg)

    def _send(self, op: str, args: Any) -> int:
        self._ensure_ready()
        self._collect(block=False)
        self._check()
        self._seq += 1
        self._pending.add(self._seq)
        while True:
            try:
                self._requests.put((self._seq, op, args), timeout=5)
                return self._seq
            except queue.Full:
                if not self._proc.is_alive():
                    raise StoreError("the writer process died; resume the run with --resume") from None
                self._collect(block=False)

    def submit(self, batch: BatchRecord, artifacts: ArtifactPayload | None = None) -> None:
        """Queue a batch for commit; errors surface on a later call."""
        self._send("commit", (batch, artifacts))

    def insert(self, table: str, columns: Mapping[str, ArrayLike], *, run_id: int | None = None) -> int:
        """Bulk-insert rows and wait for the commit."""
        seq = self._send("insert", (table, dict(columns), run_id))
        self.drain()
        return self._results.pop(seq)

    def drain(self) -> None:
        """Wait until everything submitted is committed; raise the first error."""
        self._ensure_ready()
        while self._pending:
            self._collect(block=True)
        self._check()

    def close(self) -> None:
        """Drain and stop the process."""
        try:
            self.drain()
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop the process after it finishes what is queued (no error check)."""
        if self._proc.is_alive():
            try:
                self._requests.put(None, timeout=30)
            except queue.Full:
                pass
            self._proc.join(60)
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(5)

    def __enter__(self) -> "BackgroundWriter":
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.stop()
