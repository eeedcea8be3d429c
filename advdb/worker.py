"""One worker of an attack run: claim a batch, attack it, hand it to the writer, repeat.

A worker is any process working on a run — the only one, or one of many (torchrun ranks,
``--join`` processes on other machines). It registers itself in the store, beats its
heart, claims batches until none is left (waiting while other workers hold the last
ones, and taking over those whose lease runs out), and ends the run's lifecycle: the run
is *finished* when every batch is committed; a worker stopped by Ctrl-C or SIGTERM, or
failing, marks the run *interrupted* or *failed* only if no other worker is still at it.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from advdb.attacks import Attack
from advdb.attacks.stats import per_image_norm, prediction
from advdb.attacks.summary import summarise, trajectory_columns
from advdb.data import ImageDataset
from advdb.errors import InterruptedRun, StoreError
from advdb.execution import prepare, warm_up
from advdb.models import LoadedClassifier
from advdb.planning import Plan
from advdb.progress import AttackProgress
from advdb.spec import AttackSpec
from advdb.store.engine import Store
from advdb.store.ingest import BatchRecord
from advdb.store.lifecycle import sigterm_as_interrupt
from advdb.store.retry import patiently
from advdb.store.runs import set_status
from advdb.store.workers import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_MAX_ATTEMPTS,
    Heartbeat,
    busy_seconds,
    claim_batch,
    committed_batches,
    finish_worker,
    live_workers,
    reap_dead_workers,
    register_worker,
)
from advdb.store.writer import ArtifactPayload, BackgroundWriter


@dataclass(kw_only=True)
class WorkerOptions:
    """How this process works on a run; not part of the run's configuration."""

    lease_seconds: float = DEFAULT_LEASE_SECONDS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    rank: int | None = None
    started_at: dt.datetime | None = None

    @property
    def poll_seconds(self) -> float:
        """How often an idle worker looks for batches whose lease ran out."""
        return min(2.0, max(self.lease_seconds / 4, 0.1))


@torch.no_grad()
def final_summary(
    model: torch.nn.Module, x0: torch.Tensor, x_adv: torch.Tensor, t: torch.Tensor
) -> dict[str, np.ndarray]:
    """The ``final_*`` sample columns, measured on the image the attack returns.

    For the unified iteration that is the last iterate; CW and L-BFGS return their
    smallest-L2 successful image, which need not be the last one evaluated. The prediction
    follows the trajectory's rule (:func:`advdb.attacks.stats.prediction`: a tie is no success).
    """
    z = model(x_adv).float()
    d = x_adv - x0
    cols = (
        torch.stack(
            (
                prediction(z, t).float(),
                z.softmax(1).gather(1, t[:, None]).squeeze(1),
                z.gather(1, t[:, None]).squeeze(1),
                per_image_norm(d, 1.0),
                per_image_norm(d, 2.0),
                per_image_norm(d, math.inf),
            ),
            1,
        )
        .cpu()
        .numpy()
    )
    return {
        "final_pred": cols[:, 0].astype(np.int32),
        "final_p_target": cols[:, 1],
        "final_z_target": cols[:, 2],
        "final_l1": cols[:, 3],
        "final_l2": cols[:, 4],
        "final_linf": cols[:, 5],
    }


def _quantize(x: torch.Tensor) -> torch.Tensor:
    return (x * 255.0).round_().clamp_(0, 255).to(torch.uint8)


SETTLE_RETRY_SECONDS = 20.0


def batch_seed(seed: int, batch_index: int) -> int:
    """The torch seed of one batch: the same whichever worker attacks it, in whatever order."""
    return int(np.random.SeedSequence([seed, batch_index]).generate_state(1)[0])


class Execution:
    """One worker's loop over the batches it claims."""

    def __init__(
        self,
        store: Store,
        run_id: int,
        spec: AttackSpec,
        attack: Attack,
        ds: ImageDataset,
        clf: LoadedClassifier,
        device: torch.device,
        plan: Plan,
        image_ids: np.ndarray,
        progress: AttackProgress | None,
    ) -> None:
        self.store, self.run_id, self.spec, self.attack = store, run_id, spec, attack
        self.ds, self.clf, self.device, self.plan = ds, clf, device, plan
        self.model = prepare(clf.module, device, spec.execution)  # as the run computes: precision, compile
        self.image_ids = image_ids  # per plan position
        self.progress = progress
        self.worker_id: int | None = None
        self.options = WorkerOptions()

    @property
    def n_batches(self) -> int:
        return -(-len(self.plan.indices) // self.spec.batch_size)

    def remaining(self) -> int:
        done = patiently(lambda: committed_batches(self.store, self.run_id), what="counting committed batches")
        return self.n_batches - len(done)

    def _slice(self, b: int) -> slice:
        B = self.spec.batch_size
        return slice(b * B, min((b + 1) * B, len(self.plan.indices)))

    def _claim(self) -> int | None:
        worker_id, options = self.worker_id, self.options
        assert worker_id is not None
        return patiently(
            lambda: claim_batch(
                self.store, self.run_id, worker_id, options.lease_seconds, max_attempts=options.max_attempts
            ),
            what="claiming a batch",
        )

    def _load(self, loader: ThreadPoolExecutor, b: int) -> Future:
        # numpy only in the loader thread (see ImageDataset.load_array)
        return loader.submit(self.ds.load_array, self.plan.indices[self._slice(b)])

    def run(self, writer: BackgroundWriter) -> None:
        """Attack claimed batches until every batch of the run is committed."""
        if self.progress:
            done = committed_batches(self.store, self.run_id)
            label = self.attack.loss if self.attack.name == "unified" else self.attack.name
            self.progress.start(
                run_id=self.run_id,
                label=label or self.attack.name,
                total_images=len(self.plan.indices),
                done_images=sum(self._slice(b).stop - self._slice(b).start for b in done),
                iterations=self.attack.budget(),
            )
        with ThreadPoolExecutor(max_workers=1) as loader:
            cur = self._claim()
            data = self._load(loader, cur) if cur is not None else None
            while True:
                if cur is None or data is None:
                    writer.drain()  # this worker's own batches are committed before it counts what is left
                    if self.remaining() == 0:
                        return
                    time.sleep(self.options.poll_seconds)
                    patiently(lambda: reap_dead_workers(self.store, self.run_id), what="looking for dead workers")
                    cur = self._claim()
                    data = self._load(loader, cur) if cur is not None else None
                    continue
                x0 = torch.from_numpy(data.result())
                nxt = self._claim()  # one ahead, so its images load while this batch is attacked
                data = self._load(loader, nxt) if nxt is not None else None
                self._attack_batch(writer, cur, x0)
                if self.progress:
                    self.progress.advance(len(x0))
                cur = nxt

    def _attack_batch(self, writer: BackgroundWriter, b: int, x0_cpu: torch.Tensor) -> None:
        sl = self._slice(b)
        y_np, t_np = self.plan.labels[sl], self.plan.targets[sl]
        dev = self.device
        x0 = x0_cpu.to(dev, non_blocking=True)
        y = torch.as_tensor(y_np, device=dev)
        t = torch.as_tensor(t_np, device=dev)
        warm_up(self.model, x0)  # once per batch shape, untimed: compiling and autotuning are no iteration's cost
        torch.manual_seed(batch_seed(self.spec.seed, b))
        outcome = self.attack.run(self.model, x0, y, t, num_classes=self.clf.num_classes)
        stats = outcome.stats.numpy()
        ids = self.image_ids[sl]
        summary = summarise(stats, y_np, t_np)
        summary.update(final_summary(self.model, x0, outcome.x_adv, t))
        summary["image_id"] = ids.astype(np.int32)
        summary["batch_index"] = np.full(len(ids), b, dtype=np.int32)
        payload = self._artifacts(outcome.x_adv, ids, t) if self.spec.save_images else None
        record = BatchRecord(
            run_id=self.run_id,
            batch_index=b,
            trajectory=trajectory_columns(
                stats, ids, outcome.search_step.numpy() if outcome.search_step is not None else None
            ),
            samples=summary,
            attack_seconds=outcome.seconds,
            worker_id=self.worker_id,
        )
        writer.submit(record, payload)

    @torch.no_grad()
    def _artifacts(self, x_adv: torch.Tensor, ids: np.ndarray, t: torch.Tensor) -> ArtifactPayload:
        if self.spec.image_format == "png":
            q = _quantize(x_adv)
            saved_pred = prediction(self.model(q.float() / 255.0).float(), t)
            pixels = q.cpu().numpy()
        else:
            saved_pred = prediction(self.model(x_adv).float(), t)
            pixels = x_adv.float().cpu().numpy()
        sp = saved_pred.cpu().numpy()
        return ArtifactPayload(
            image_id=ids,
            pixels=pixels,
            format=self.spec.image_format,
            saved_pred=sp,
            still_adversarial=sp == t.cpu().numpy(),
        )


def work(store: Store, writer: BackgroundWriter, execution: Execution, *, device: str, options: WorkerOptions) -> int:
    """Run ``execution`` as a registered worker and settle the run's status; returns the run id."""
    run_id = execution.run_id
    worker_id = patiently(
        lambda: register_worker(
            store,
            run_id,
            device=device,
            rank=options.rank,
            lease_seconds=options.lease_seconds,
            started_at=options.started_at,
        ),
        what="registering the worker",
    )
    execution.worker_id, execution.options = worker_id, options
    try:
        with sigterm_as_interrupt(), Heartbeat(store, worker_id, options.lease_seconds, healthy=lambda: writer.alive):
            try:
                execution.run(writer)
                writer.drain()  # every batch committed before the run is marked finished
            except BaseException:
                writer.stop()  # commits what is queued, also on Ctrl-C
                raise
    except KeyboardInterrupt:
        others = _end_worker(store, execution, "interrupted")
        left = execution.remaining()
        if others:
            raise InterruptedRun(
                f"worker stopped; run {run_id} goes on in {others} other worker(s) ({left} batch(es) left)"
            ) from None
        raise InterruptedRun(
            f"run {run_id} interrupted with {left} batch(es) left; committed batches are kept: "
            f"resume with `advdb attack --resume {run_id}`"
        ) from None
    except BaseException as exc:
        # a lost writer is this process's failure, not the run's: what it committed stands, --resume goes on
        lost = not writer.alive
        _end_worker(
            store, execution, "failed", error=f"{type(exc).__name__}: {exc}", run_status="interrupted" if lost else None
        )
        if lost and isinstance(exc, StoreError):
            raise StoreError(
                f"the writer process of run {run_id} ended unexpectedly ({writer.how_it_ended()}); committed batches "
                f"are kept: resume with `advdb attack --resume {run_id}`"
            ) from None
        raise
    _end_worker(store, execution, "finished")
    return run_id


def _end_worker(
    store: Store, execution: Execution, status: str, *, error: str | None = None, run_status: str | None = None
) -> int:
    """Record how this worker ended and, if it was the last one at work, how the run stands (``run_status``,
    by default the worker's own).

    Returns how many other workers are still at work.
    """
    run_id, worker_id = execution.run_id, execution.worker_id
    assert worker_id is not None

    def settle() -> int:
        finish_worker(store, worker_id, status, error=error)
        others = live_workers(store, run_id, exclude=worker_id)
        if status == "finished" or execution.remaining() == 0:
            set_status(store, run_id, "finished", wall_seconds=busy_seconds(store, run_id))
        elif not others:
            set_status(store, run_id, run_status or status, error=error, wall_seconds=busy_seconds(store, run_id))
        return others

    try:  # briefly: a worker that fails for want of a database has waited for it already
        return patiently(settle, what="recording how the worker ended", seconds=SETTLE_RETRY_SECONDS)
    except StoreError:
        if status == "finished":
            raise
        return 0  # the database is gone: the next worker or `advdb runs list` settles it (leases run out)
