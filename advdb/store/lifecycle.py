"""One run lifecycle for every run kind: running → finished, interrupted or failed.

:func:`run_lifecycle` wraps the work of a detector, circles or any later run kind: Ctrl-C
and SIGTERM alike mark the run *interrupted* (and raise :class:`InterruptedRun` with the
command that resumes it), any other error marks it *failed* with the error, and success
marks it *finished* — in the same transaction as the run's final results, registered with
:meth:`RunLifecycle.on_finish`, so a crash can never leave results without their status or
a status without its results. Attack runs, shared by many workers, settle their status
through :mod:`advdb.worker` with the same helpers.
"""

from __future__ import annotations

import functools
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from advdb.errors import InterruptedRun
from advdb.store.engine import Store
from advdb.store.runs import finish_run, set_status


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises KeyboardInterrupt as Ctrl-C does (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(*_: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


F = TypeVar("F", bound=Callable[..., Any])


def sigterm_interrupts(fn: F) -> F:
    """Decorate a run's entry point: SIGTERM anywhere inside is handled like Ctrl-C."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with sigterm_as_interrupt():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class RunLifecycle:
    """What the work inside :func:`run_lifecycle` hands over: writes that commit with *finished*."""

    def __init__(self) -> None:
        self.final_writes: list[Callable[[Session], None]] = []

    def on_finish(self, write: Callable[[Session], None]) -> None:
        """Run ``write(session)`` in the transaction that marks the run finished."""
        self.final_writes.append(write)


@contextmanager
def run_lifecycle(
    store: Store, run_id: int, *, what: str, resume: str | None, prior_seconds: float = 0.0
) -> Iterator[RunLifecycle]:
    """Mark run ``run_id`` finished, interrupted or failed, whatever the work inside does."""
    started = time.perf_counter()
    life = RunLifecycle()

    def wall() -> float:
        return prior_seconds + time.perf_counter() - started

    try:
        with sigterm_as_interrupt():
            yield life
    except KeyboardInterrupt:
        set_status(store, run_id, "interrupted", wall_seconds=wall())
        hint = f"resume with `{resume}`" if resume else "start it again"
        raise InterruptedRun(f"{what} {run_id} interrupted; its finished work is kept: {hint}") from None
    except BaseException as exc:
        set_status(store, run_id, "failed", error=f"{type(exc).__name__}: {exc}", wall_seconds=wall())
        raise
    finish_run(store, run_id, wall_seconds=wall(), writes=life.final_writes)
