"""A writer process: commits batches (and writes their image files) while the attack runs on.

Two different SQLite libraries in one process (Python's ``sqlite3`` under SQLAlchemy and the
one inside DuckDB's scanner) must never have the same file open at once: POSIX locks are
per process, so one library's close drops the other's locks and the database can be
corrupted. The bulk path therefore runs in its own process, which also takes PNG
encoding, hashing and the commit off the attack's critical path.

The child is a plain ``python -c`` subprocess talking pickle over its stdin/stdout (not
``multiprocessing``, which would re-import the caller's ``__main__`` script). It runs in
its own session, so a Ctrl-C at the terminal reaches only the parent, which decides; it
exits when its stdin closes, so it never outlives a killed parent.
"""

from __future__ import annotations

import errno
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from advdb.errors import AdvdbError, StoreError
from advdb.store.ingest import ArrayLike, BatchRecord, Ingestor
from advdb.store.location import StoreLocation

DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
LOST_WRITER = "the writer process stopped unexpectedly (see the messages above); resume the run with --resume"


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
    for image_id, pixels in zip(payload.image_id.tolist(), payload.pixels, strict=True):
        data = artifacts.encode(pixels, payload.format)
        rel = artifacts.relative_path(run_id, int(image_id), payload.format, artifacts.digest(data))
        sha, size = artifacts.write_file(location.artifacts_dir / rel, data)
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


def _handle(ingestor: Ingestor, location: StoreLocation, op: str, args: Any) -> Any:
    if op == "commit":
        batch, payload = args
        if payload is not None:
            try:
                batch.artifacts = write_artifacts(location, batch.run_id, payload)
            except OSError as exc:
                if exc.errno not in DISK_FULL:
                    raise
                raise StoreError(
                    f"no room for the image files of batch {batch.batch_index} of run {batch.run_id} under "
                    f"{location.artifacts_dir} ({os.strerror(exc.errno or 0).lower()}): nothing of the batch was "
                    f"recorded; free space, then `advdb attack --resume {batch.run_id}`"
                ) from None
        return ingestor.commit(batch)
    if op == "insert":
        table, columns, run_id = args
        return ingestor.insert(table, columns, run_id=run_id)
    raise StoreError(f"unknown writer operation {op!r}")


def serve() -> None:
    """The child's main loop: requests on stdin, one response per request on stdout."""
    out: BinaryIO = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, never into the protocol
    inp = sys.stdin.buffer

    def reply(msg: tuple[Any, ...]) -> None:
        try:
            pickle.dump(msg, out, protocol=pickle.HIGHEST_PROTOCOL)
            out.flush()
        except OSError:  # the parent is gone (killed): nothing to tell, nobody to tell it to
            os._exit(0)

    try:
        location: StoreLocation = pickle.load(inp)
        ingestor = Ingestor(location)
    except AdvdbError as exc:
        reply((-1, False, f"{type(exc).__name__}:{exc}"))
        return
    except EOFError:
        return
    reply((-1, True, None))
    while True:
        try:
            item = pickle.load(inp)
        except EOFError:  # the parent is gone or done
            break
        if item is None:
            break
        seq, op, args = item
        try:
            reply((seq, True, _handle(ingestor, location, op, args)))
        except AdvdbError as exc:
            reply((seq, False, f"{type(exc).__name__}:{exc}"))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises
            reply((seq, False, f"StoreError:writer failed: {type(exc).__name__}: {exc}"))
    ingestor.close()


def _raise(message: str) -> None:
    from advdb import errors

    name, _, text = message.partition(":")
    cls = getattr(errors, name, StoreError)
    if not (isinstance(cls, type) and issubclass(cls, AdvdbError)):
        cls = StoreError
    raise cls(text)


class BackgroundWriter:
    """Commits batches in a child process, at most ``max_pending`` ahead of the caller."""

    def __init__(self, location: StoreLocation, *, max_pending: int = 2) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-X", "faulthandler", "-c", "from advdb.store.writer import serve; serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        self._outbox: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._sender = threading.Thread(target=self._send_loop, args=(location,), daemon=True, name="advdb-writer-send")
        self._receiver = threading.Thread(target=self._receive_loop, daemon=True, name="advdb-writer-receive")
        self._seq = 0
        self._pending: set[int] = set()
        self._results: dict[int, Any] = {}
        self._error: str | None = None
        self._lost = threading.Event()
        self._ready = False
        self._stopped = False
        self._sender.start()
        self._receiver.start()

    # --- threads -------------------------------------------------------------------------

    def _send_loop(self, location: StoreLocation) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            pickle.dump(location, stdin, protocol=pickle.HIGHEST_PROTOCOL)
            stdin.flush()
            while True:
                item = self._outbox.get()
                pickle.dump(item, stdin, protocol=pickle.HIGHEST_PROTOCOL)
                stdin.flush()
                if item is None:
                    break
        except (BrokenPipeError, OSError):
            pass
        finally:
            try:
                stdin.close()
            except OSError:
                pass

    def _receive_loop(self) -> None:
        stdout = self._proc.stdout
        assert stdout is not None
        while True:
            try:
                self._inbox.put(pickle.load(stdout))
            except (EOFError, OSError, pickle.UnpicklingError):
                if self._ready and not self._stopped:  # gone while at work, before it was asked to stop
                    self._lost.set()
                self._inbox.put(None)  # the child is gone
                return

    def how_it_ended(self) -> str:
        """The child's end as people read it: an exit status or the signal that killed it."""
        try:
            code = self._proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "it stopped answering"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit status {code}"

    @property
    def alive(self) -> bool:
        """False once the child is gone without being asked to stop (as soon as its end of the pipe closes)."""
        return not self._lost.is_set() and (self._stopped or self._proc.poll() is None)

    def _put(self, item: Any) -> None:
        """Queue a request, waiting for room while the child lives; a dead child is an error, not a hang."""
        while True:
            if self._lost.is_set() or self._proc.poll() is not None:
                raise StoreError(LOST_WRITER)
            try:
                self._outbox.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    # --- protocol ------------------------------------------------------------------------

    def _get(self, block: bool) -> tuple[int, bool, Any] | None:
        msg = self._inbox.get(block=block)
        if msg is None:
            self._inbox.put(None)  # keep reporting the end
            raise StoreError(LOST_WRITER)
        return msg  # type: ignore[no-any-return]

    def _ensure_ready(self) -> None:
        """Wait for the child to attach the store (it starts in the background)."""
        if self._ready:
            return
        _, ok, msg = self._get(block=True)  # type: ignore[misc]
        if not ok:
            self.stop()
            _raise(msg)
        self._ready = True

    def _collect(self, *, block: bool) -> None:
        while self._pending:
            try:
                seq, ok, result = self._get(block=block)  # type: ignore[misc]
            except queue.Empty:
                return
            self._pending.discard(seq)
            if ok:
                self._results[seq] = result
            elif self._error is None:
                self._error = result

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
        self._put((self._seq, op, args))  # waits while max_pending requests wait
        return self._seq

    # --- API -----------------------------------------------------------------------------

    def submit(self, batch: BatchRecord, artifacts: ArtifactPayload | None = None) -> None:
        """Queue a batch for commit; errors surface on a later call."""
        self._send("commit", (batch, artifacts))

    def insert(self, table: str, columns: Mapping[str, ArrayLike], *, run_id: int | None = None) -> int:
        """Bulk-insert rows and wait for the commit."""
        seq = self._send("insert", (table, dict(columns), run_id))
        self.drain()
        return int(self._results.pop(seq))

    def drain(self) -> None:
        """Wait until everything submitted is committed; raise the first error."""
        self._ensure_ready()
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
        if self._stopped:
            return
        self._stopped = True
        try:
            self._put(None)
        except StoreError:  # the child is gone: nothing to finish
            pass
        try:
            self._proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._sender.join(5)
        self._receiver.join(5)

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.stop()


if __name__ == "__main__":
    serve()
