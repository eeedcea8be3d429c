"""One attack run: data + classifier + attack engine + store + adversarial image files.

``run_attack`` validates everything, plans the work (correctly classified images, seeded
targets) and stores the plan with the run, once; then this process works on it as a
worker (:mod:`advdb.worker`): it claims batches, attacks them and a writer process
commits each batch's trajectory rows, samples, image files and batch record together
while the next batch is attacked. Other processes — torchrun ranks, ``--join`` workers
on other machines — work on the same run through :func:`join_attack`, reading the
stored plan, never planning again. ``resume_attack`` finishes a run whose workers all
stopped: it attacks exactly the batches that were not committed.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from advdb.attacks import Attack
from advdb.data import ImageDataset
from advdb.devices import device_description, resolve_device, torch_versions
from advdb.errors import ConflictError, DataError, a
from advdb.models import LoadedClassifier
from advdb.planning import Plan, plan_targets
from advdb.plugins import versions_of
from advdb.progress import AttackProgress
from advdb.spec import AttackSpec, load_data_and_model
from advdb.store.artifact_root import ensure_artifact_root
from advdb.store.catalogue import get_classifier, register_classifier, register_dataset
from advdb.store.engine import Store
from advdb.store.lifecycle import sigterm_interrupts
from advdb.store.records import RunRecord, utcnow
from advdb.store.retry import retry_seconds
from advdb.store.runs import (
    create_keyed_run,
    create_run,
    find_run_by_key,
    get_run,
    has_plan,
    is_live,
    resumable_run,
    set_status,
    stored_plan,
)
from advdb.store.workers import ensure_claims, reap_dead_workers, reset_attempts
from advdb.store.writer import BackgroundWriter
from advdb.worker import Execution, WorkerOptions, work

__all__ = ["AttackSpec", "WorkerOptions", "join_attack", "resume_attack", "run_attack", "start_writer"]


# --- a new run ----------------------------------------------------------------------------


def start_writer(store: Store, *, save_images: bool = True) -> BackgroundWriter:
    """A writer for this store, after checking that its artifact root is reachable (when files are
    saved). One writer may serve many runs in turn (``advdb reproduce``); its starter stops it."""
    location = store.location
    if save_images:
        location = dataclasses.replace(location, artifacts_dir=ensure_artifact_root(store))
    return BackgroundWriter(location)  # starts while the model loads


@contextmanager
def _writing(store: Store, spec: AttackSpec, writer: BackgroundWriter | None) -> Iterator[BackgroundWriter]:
    """The caller's writer, or one of this run's own, stopped when the run ends."""
    if writer is not None:
        yield writer
        return
    own = start_writer(store, save_images=spec.save_images)
    try:
        yield own
    finally:
        own.stop()


def register_inputs(
    store: Store, ds: ImageDataset, labels: np.ndarray, classifier: dict[str, Any], *, num_classes: int | None = None
) -> tuple[int, np.ndarray, int]:
    """A run's dataset (``labels``: its images' classes) and classifier (its catalogue fields,
    :meth:`LoadedClassifier.catalogue_fields`) in the store's catalogue, as every attack run registers
    them: the dataset's id, its images' ids and the classifier's id. ``num_classes`` stands for the
    dataset's classes where it does not say (default: the classifier's)."""
    dataset_id, image_ids = register_dataset(
        store,
        name=ds.name,
        kind=ds.kind,
        fingerprint=ds.fingerprint,
        labels=labels,
        image_shape=ds.image_shape,
        n_classes=ds.n_classes or (num_classes if num_classes is not None else classifier["num_classes"]),
        split=ds.split,
        root=ds.root,
        paths=ds.paths(),
        synthetic=ds.synthetic,
    )
    classifier_id = register_classifier(store, **classifier)
    return dataset_id, image_ids, classifier_id


def _with_start(options: WorkerOptions | None) -> WorkerOptions:
    options = options or WorkerOptions()
    return options if options.started_at is not None else dataclasses.replace(options, started_at=utcnow())


def _keyed_run(store: Store, key: str, *, wait_s: float) -> RunRecord | None:
    """The run stored under ``key``, waiting up to ``wait_s`` seconds for another process to create it."""
    deadline = time.monotonic() + wait_s
    while (run := find_run_by_key(store, key)) is None and time.monotonic() < deadline:
        time.sleep(0.5)
    if run is None and wait_s > 0:
        raise ConflictError(
            f"no run with key {key!r} appeared within {wait_s:.0f} s: did the process that creates it fail?"
        )
    return run


@sigterm_interrupts
def run_attack(
    store: Store,
    spec: AttackSpec,
    *,
    progress: AttackProgress | None = None,
    join_key: str | None = None,
    creates_run: bool = True,
    plan_only: bool = False,
    options: WorkerOptions | None = None,
    writer: BackgroundWriter | None = None,
    notice: Callable[[str], None] | None = None,
) -> int:
    """Run a new attack; returns its run id. Every option is validated before any work.

    With ``join_key``, processes started anywhere share one run: the first to store the
    run creates it, the others join it (:func:`join_attack`); with ``creates_run=False``
    (torchrun ranks other than 0) this process waits for another to create it.
    ``plan_only`` stores the run and its plan and returns, for workers to ``--join`` later.
    ``writer`` is the caller's (:func:`start_writer`) when it serves several runs.
    ``notice`` gets one line saying how many images planning found (:meth:`Plan.describe`)
    before any is attacked; the count is the run's ``n_images`` and ``config["resolved"]["n"]``.
    """
    attack = spec.validate()
    options = _with_start(options)
    store.patience = retry_seconds()  # a worker waits out a database that goes away (advdb.store.retry)
    device = resolve_device(spec.device)
    if join_key is not None and not creates_run:  # start the writer and load while the creator plans, then join
        with _writing(store, spec, writer) as w:
            loaded = load_data_and_model(spec, device)
            existing = _keyed_run(store, join_key, wait_s=1800.0)
            assert existing is not None
            return _join_keyed(store, existing, spec, progress=progress, options=options, loaded=loaded, writer=w)
    if join_key is not None and (existing := find_run_by_key(store, join_key)) is not None:
        return _join_keyed(store, existing, spec, progress=progress, options=options, writer=writer)
    with _writing(store, spec, writer) as writer:
        ds, clf = load_data_and_model(spec, device)
        attack.check_classes(clf.num_classes)
        plan, labels = plan_targets(
            clf,
            ds,
            n=spec.n,
            seed=spec.seed,
            targets=spec.targets,
            device=device,
            batch_size=spec.batch_size,
            only_labels=spec.labels,
        )
        if notice is not None:
            notice(plan.describe(asked=spec.n, dataset=ds.name, classifier=clf.name))
        dataset_id, image_ids, classifier_id = register_inputs(store, ds, labels, clf.catalogue_fields())
        fields = _run_fields(spec, attack, ds, clf, device, plan, dataset_id=dataset_id, classifier_id=classifier_id)
        run = (
            create_run(store, **fields) if join_key is None else create_keyed_run(store, launch_key=join_key, **fields)
        )
        if run is None:  # another process stored the run first: work on it, with this process's plan as a check
            existing = find_run_by_key(store, join_key or "")
            assert existing is not None
            return _join_keyed(
                store,
                existing,
                spec,
                progress=progress,
                options=options,
                own_plan=plan,
                loaded=(ds, clf),
                writer=writer,
            )
        _store_plan(store, writer, run.run_id, plan, image_ids[plan.indices], spec.batch_size)
        if plan_only:
            set_status(store, run.run_id, "planned")
            return run.run_id
        execution = Execution(store, run.run_id, spec, attack, ds, clf, device, plan, image_ids[plan.indices], progress)
        return work(store, writer, execution, device=device_description(device), options=options)


def _run_fields(
    spec: AttackSpec,
    attack: Attack,
    ds: ImageDataset,
    clf: LoadedClassifier,
    device: torch.device,
    plan: Plan,
    *,
    dataset_id: int,
    classifier_id: int,
) -> dict[str, Any]:
    """The run row of a new attack: its full configuration (with what it resolved to, the number
    of images included: ``n`` may be ``"all"``) and the columns reports filter on."""
    config = spec.to_config()
    config["resolved"] = {
        "n": len(plan.indices),
        "attack": attack.to_dict(),
        "device": str(device),
        "dataset": ds.name,
        "classifier_sha256": clf.weights_sha256,
        "dataset_fingerprint": ds.fingerprint,
        "execution": spec.execution.resolved(device),
    }
    return dict(
        kind="attack",
        config=config,
        name=spec.name,
        attack=attack.name,
        loss=attack.loss,
        mode=attack.mode,
        classifier_id=classifier_id,
        dataset_id=dataset_id,
        seed=spec.seed,
        iterations=attack.budget(),
        n_images=len(plan.indices),
        batch_size=spec.batch_size,
        device=device_description(device),
        synthetic=ds.synthetic,
        versions={**torch_versions(device), **clf.versions, **_plugin_versions(attack, spec, ds)},
    )


def _plugin_versions(attack: Attack, spec: AttackSpec, ds: ImageDataset) -> dict[str, str]:
    """The distributions and versions of the plugins the run uses (its source, attack, model, data set)."""
    return versions_of({"loss": attack.loss, "attack": attack.name, "model": spec.model, "dataset": ds.name})


def _store_plan(
    store: Store, writer: BackgroundWriter, run_id: int, plan: Plan, image_ids: np.ndarray, batch_size: int
) -> None:
    """Store the work list (one transaction) and the claim of every batch; a failure marks the run failed."""
    positions = np.arange(len(plan.indices))
    try:
        writer.insert(
            "run_images",
            {
                "image_id": image_ids.astype(np.int32),
                "position": positions.astype(np.int32),
                "batch_index": (positions // batch_size).astype(np.int32),
                "label": plan.labels.astype(np.int32),
                "target": plan.targets.astype(np.int32),
            },
            run_id=run_id,
        )
        ensure_claims(store, run_id, -(-len(positions) // batch_size))
    except BaseException as exc:
        set_status(store, run_id, "failed", error=f"{type(exc).__name__}: {exc}")
        raise


# --- workers joining a stored run ---------------------------------------------------------

# Options that may differ between the workers of one run (each process's own choice).
PER_WORKER = ("device", "name")


def _join_keyed(
    store: Store,
    run: RunRecord,
    spec: AttackSpec,
    *,
    progress: AttackProgress | None,
    options: WorkerOptions,
    own_plan: Plan | None = None,
    loaded: tuple[ImageDataset, LoadedClassifier] | None = None,
    writer: BackgroundWriter | None = None,
) -> int:
    """Join the run found by a launch key, after checking it was started with the same options."""
    mine, theirs = spec.to_config(), AttackSpec.from_config(run.config).to_config()
    differ = [k for k in mine if k not in PER_WORKER and mine[k] != theirs.get(k)]
    if differ:
        k = differ[0]
        raise ConflictError(
            f"run {run.run_id} (key {run.launch_key!r}) was started with {k}={theirs.get(k)!r}, "
            f"this worker has {k}={mine[k]!r}: use the same options or another key"
        )
    return join_attack(
        store,
        run.run_id,
        progress=progress,
        device=spec.device,
        options=options,
        own_plan=own_plan,
        loaded=loaded,
        writer=writer,
    )


def _wait_for_plan(store: Store, run_id: int, *, timeout_s: float = 1800.0) -> RunRecord:
    """Wait until the run's creator has stored its plan (it may still be planning)."""
    deadline = time.monotonic() + timeout_s
    while True:
        run = get_run(store, run_id)
        if has_plan(store, run_id):
            return run
        if run.status == "failed":
            raise ConflictError(f"run {run_id} failed before its plan was stored ({run.error}): start a new run")
        if not is_live(store, run) or time.monotonic() > deadline:
            raise ConflictError(f"run {run_id} has no stored plan (it failed before planning): start a new run instead")
        time.sleep(0.5)


@sigterm_interrupts
def join_attack(
    store: Store,
    run_id: int,
    *,
    progress: AttackProgress | None = None,
    device: str | None = None,
    options: WorkerOptions | None = None,
    own_plan: Plan | None = None,
    resume: bool = False,
    loaded: tuple[ImageDataset, LoadedClassifier] | None = None,
    writer: BackgroundWriter | None = None,
) -> int:
    """Work on stored attack run ``run_id`` beside its other workers (or alone); returns the run id.

    The plan is read from the store. A finished run returns at once (nothing to do).
    ``resume`` refuses a run that still has live workers; ``loaded`` (the run's dataset and
    classifier) and ``writer`` are the caller's when it started them already.
    """
    run = resumable_run(store, run_id, "attack") if resume else get_run(store, run_id)
    if run.kind != "attack":
        raise ConflictError(f"run {run_id} is {a(run.kind)} run, not an attack run")
    if run.attack == "external":
        raise ConflictError(
            f"run {run_id} recorded another library's attack (advdb.record): advdb cannot run it again; record it anew"
        )
    if run.status == "finished":
        return run_id
    options = _with_start(options)
    store.patience = retry_seconds()  # a worker waits out a database that goes away (advdb.store.retry)
    spec = AttackSpec.from_config(run.config)
    if device is not None:
        spec.device = device
    attack = spec.validate()
    dev = resolve_device(spec.device)
    with _writing(store, spec, writer) as writer:
        ds, clf = loaded or load_data_and_model(spec, dev)
        _check_same_inputs(store, run, ds, clf)
        run = _wait_for_plan(store, run_id)
        arr = np.asarray(stored_plan(store, run_id), dtype=np.int64)
        plan = Plan(indices=arr[:, 3], labels=arr[:, 1], targets=arr[:, 2])
        if own_plan is not None and not _same_plan(plan, own_plan):
            raise DataError(
                f"this worker plans run {run_id} differently (other images or targets): "
                "its model, data or software differ from the run's; fix them before joining"
            )
        reap_dead_workers(store, run_id)
        ensure_claims(store, run_id, -(-len(plan.indices) // spec.batch_size))
        if resume:  # whatever made a batch fail its attempts has been seen to: give it its attempts back
            reset_attempts(store, run_id)
        if run.status != "running":
            set_status(store, run_id, "running")
        execution = Execution(store, run_id, spec, attack, ds, clf, dev, plan, arr[:, 0], progress)
        return work(store, writer, execution, device=device_description(dev), options=options)


def _same_plan(mine: Plan, theirs: Plan) -> bool:
    pairs = ((mine.indices, theirs.indices), (mine.labels, theirs.labels), (mine.targets, theirs.targets))
    return all(np.array_equal(x, y) for x, y in pairs)


def _check_same_inputs(store: Store, run: RunRecord, ds: ImageDataset, clf: LoadedClassifier) -> None:
    stored = get_classifier(store, run.classifier_id) if run.classifier_id else None
    if stored is not None and stored.weights_sha256 != clf.weights_sha256:
        raise DataError(
            f"the weights of {clf.name} differ from run {run.run_id}'s (sha256 {clf.weights_sha256[:12]}… ≠ "
            f"{stored.weights_sha256[:12]}…): restore them to work on it"
        )
    if ds.fingerprint != run.config.get("resolved", {}).get("dataset_fingerprint"):
        raise DataError(f"dataset {ds.name} differs from the one run {run.run_id} started on: restore it to work on it")


def resume_attack(
    store: Store,
    run_id: int,
    *,
    progress: AttackProgress | None = None,
    device: str | None = None,
    options: WorkerOptions | None = None,
    writer: BackgroundWriter | None = None,
) -> int:
    """Finish an interrupted or failed attack run: attack exactly the batches not yet committed."""
    return join_attack(store, run_id, progress=progress, device=device, options=options, resume=True, writer=writer)
