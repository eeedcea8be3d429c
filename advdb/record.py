"""Record any attack: another library's attack (torchattacks, Foolbox, ART, your own loop) stored
as an advdb run, iteration by iteration, like advdb's own.

:func:`record` wraps a classifier (pixel space in, logits out). Every evaluation of the wrapped
model (:attr:`Recorder.model`) on the batch under attack records one trajectory row per image:
the prediction (:func:`advdb.attacks.stats.prediction`), softmax and logit of the initial class,
the target and the strongest other class, and L1/L2/L∞ of ``x − x₀``, computed by the same code
as advdb's own runs (:class:`advdb.attacks.stats.StatsBuffer`). :meth:`Recorder.finish` evaluates
the images the attack returns once more (the last row), writes them as files and commits the
batch — its trajectory rows, samples, artifacts and batch record in one transaction, through the
same writer process as advdb's runs (:mod:`advdb.store.writer`).

Which evaluations become rows:

* row 0 is always ``x₀``: if the library's first evaluation is of other images (a random start),
  the recorder evaluates ``x₀`` itself first;
* an evaluation of exactly the images of the previous row adds no row (a library that checks its
  result, then :meth:`Recorder.finish`, give one row, not two);
* an evaluation of another batch shape (a single image, a sub-batch) is not recorded: give the
  library the whole batch at once (ART: ``batch_size=len(x)``).

``step_l2`` is the L2 size of the step between consecutive rows (0 on the last), as advdb's own
runs store it. The library's loss and gradient are not visible from the model: until the store's
``loss`` and ``grad_l2`` columns admit NULL, they hold 0 and the run's configuration lists them
under ``not_recorded``.

The run is an ``attack`` run with attack ``external``; its configuration keeps the library, its
version, the attack's name and parameters. A torchattacks BIM recorded this way stores the rows
advdb's ``--attack ifgs`` stores for the same images, targets, ε, α and T (bit for bit on a CPU).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from advdb.artifacts import check_format
from advdb.attacks.stats import COL, StatsBuffer, per_image_norm, prediction, yt_mask
from advdb.attacks.summary import summarise, trajectory_columns
from advdb.data import ImageDataset
from advdb.errors import ConfigError, DataError
from advdb.models import LoadedClassifier
from advdb.runner import register_inputs, start_writer
from advdb.store import open_store
from advdb.store.catalogue import register_classifier, register_dataset
from advdb.store.engine import Store
from advdb.store.ingest import BatchRecord
from advdb.store.records import RunRecord
from advdb.store.runs import create_run, get_run, set_status
from advdb.store.writer import ArtifactPayload, BackgroundWriter

__all__ = ["EXTERNAL", "Recorder", "record", "state_dict_sha256"]

#: The ``attack`` column of a recorded run.
EXTERNAL = "external"
#: Trajectory measures a recorded attack cannot see (the library's loss and its gradient).
NOT_RECORDED: tuple[str, ...] = ("loss", "grad_l2")
#: What they hold until the store admits NULL there (NaN, once it does: the ingest stores NaN as NULL).
NOT_RECORDED_FILL = 0.0


class HasUrl(Protocol):
    """A store handle that names its database (:class:`advdb.api.Store`)."""

    @property
    def url(self) -> str: ...


StoreArg = str | os.PathLike[str] | HasUrl | None


def store_url(store: StoreArg) -> str | None:
    """The database URL (or SQLite path) of ``store``: a handle, a URL or path, or None (the default store)."""
    if store is None or isinstance(store, str):
        return store
    if isinstance(store, os.PathLike):
        return os.fspath(store)
    return store.url


def state_dict_sha256(model: nn.Module) -> str:
    """The sha256 of a model's state dict (names and bytes, in order), as advdb hashes weights."""
    h = hashlib.sha256()
    for name, value in model.state_dict().items():
        h.update(name.encode())
        v = value.detach().cpu().contiguous()
        h.update(v.reshape(-1).view(torch.uint8).numpy().tobytes() if v.numel() else b"")
    return h.hexdigest()


def images_fingerprint(images: torch.Tensor, labels: torch.Tensor) -> str:
    """A fingerprint of user-given images and labels (their shape and float32 bytes)."""
    h = hashlib.sha256(str(tuple(images.shape)).encode())
    h.update(images.detach().float().cpu().contiguous().numpy().tobytes())
    h.update(labels.detach().cpu().numpy().astype(np.int64).tobytes())
    return h.hexdigest()


def _quantize(x: torch.Tensor) -> torch.Tensor:
    return (x * 255.0).round_().clamp_(0, 255).to(torch.uint8)


class RecordingModel(nn.Module):
    """The classifier as the attack library sees it: its logits unchanged, each evaluation recorded."""

    _recorder: Recorder

    def __init__(self, model: nn.Module, recorder: Recorder) -> None:
        super().__init__()
        self.model = model
        object.__setattr__(self, "_recorder", recorder)  # not a submodule: the state dict stays the model's
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z: torch.Tensor = self.model(x)
        self._recorder._observe(x, z)
        return z


@dataclass
class _Batch:
    """The batch under attack and the rows recorded so far ([B, K] each, on the device)."""

    index: int
    sl: slice
    x0: torch.Tensor
    y: torch.Tensor
    t: torch.Tensor
    mask: torch.Tensor | None = None
    rows: list[torch.Tensor] = field(default_factory=list)
    last_x: torch.Tensor | None = None
    started: float = field(default_factory=time.perf_counter)
    done: bool = False


@dataclass(frozen=True, kw_only=True)
class _Source:
    """What the recorded attack is: stored in the run's configuration."""

    library: str
    attack: str
    params: dict[str, Any]
    version: str | None
    name: str | None


def _library_version(library: str) -> str | None:
    import importlib.metadata as md

    try:
        return md.version(library)
    except (md.PackageNotFoundError, ValueError):
        return None


class Recorder:
    """Records one attack on ``images`` as a run (see :func:`record`); use it as a context manager.

    ``model`` is the classifier to hand to the attack library; :meth:`batches` walks the batches
    (one, unless ``batch_size`` was given) and :meth:`finish` commits the current one. ``run``
    is the stored run once the block ends.
    """

    def __init__(
        self,
        model: nn.Module | LoadedClassifier,
        images: torch.Tensor,
        labels: torch.Tensor | Sequence[int],
        targets: torch.Tensor | Sequence[int],
        *,
        source: _Source,
        store: StoreArg = None,
        dataset: str | None = None,
        indices: Sequence[int] | np.ndarray | None = None,
        batch_size: int | None = None,
        image_format: str = "png",
        save_images: bool = True,
    ) -> None:
        self.clf = model if isinstance(model, LoadedClassifier) else None
        inner = model.module if isinstance(model, LoadedClassifier) else model
        if not isinstance(inner, nn.Module):
            raise ConfigError(f"record() needs a torch.nn.Module (pixel space in, logits out), got {type(inner)}")
        self.images, self.labels, self.targets = _check_inputs(images, labels, targets)
        self.source, self.dataset, self.image_format, self.save_images = source, dataset, image_format, save_images
        self.indices = None if indices is None else np.asarray(indices, dtype=np.int64)
        self.batch_size = batch_size or len(self.images)
        _check_options(self, dataset)
        self.inner = inner
        self.model = RecordingModel(inner, self)
        self.url = store_url(store)
        self.run: RunRecord | None = None
        self.ignored_evaluations = 0
        self.num_classes: int | None = None
        self._store: Store | None = None
        self._writer: BackgroundWriter | None = None
        self._batch: _Batch | None = None
        self._done = 0  # batches finished (handed to the writer)
        self._image_ids: np.ndarray | None = None
        self._started = time.perf_counter()

    # --- the block -----------------------------------------------------------------------------

    @property
    def n_batches(self) -> int:
        return -(-len(self.images) // self.batch_size)

    def __enter__(self) -> Recorder:
        self._store = open_store(self.url)
        try:
            self._writer = start_writer(self._store, save_images=self.save_images)
        except BaseException:
            self._store.close()
            raise
        self._started = time.perf_counter()
        self._begin(0)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        assert self._store is not None and self._writer is not None
        try:
            if exc is None:
                try:
                    self._writer.drain()  # every batch committed before the run is marked finished
                except BaseException as failure:
                    self._settle(failure)
                    raise
            else:
                self._writer.stop()  # commits what is queued
            self._settle(exc)
        finally:
            self._writer.stop()
            self._store.close()

    def _settle(self, exc: BaseException | None) -> None:
        """Mark the run finished (every batch finished, no error) or failed/interrupted."""
        assert self._store is not None
        if self.run is None:
            if exc is None:
                raise ConfigError("record(): no batch was finished: call rec.finish(x_adv) with the attack's images")
            return
        run_id, wall, done = self.run.run_id, time.perf_counter() - self._started, self._done
        if exc is None and done == self.n_batches:
            set_status(self._store, run_id, "finished", wall_seconds=wall)
        else:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            why = f"{type(exc).__name__}: {exc}" if exc is not None else f"{done} of {self.n_batches} batches finished"
            set_status(self._store, run_id, status, error=why, wall_seconds=wall)
        self.run = get_run(self._store, run_id)
        if exc is None and done < self.n_batches:
            raise ConfigError(
                f"record(): {done} of {self.n_batches} batches were finished (run {run_id} is marked failed): "
                "call rec.finish(x_adv) for each batch of rec.batches()"
            )

    # --- batches -------------------------------------------------------------------------------

    def _begin(self, b: int) -> None:
        sl = slice(b * self.batch_size, min((b + 1) * self.batch_size, len(self.images)))
        self._batch = _Batch(b, sl, self.images[sl], self.labels[sl], self.targets[sl])

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches to attack in turn, as ``(images, targets)``; call :meth:`finish` for each."""
        for b in range(self._done, self.n_batches):
            if self._batch is None or self._batch.index != b:
                self._begin(b)
            assert self._batch is not None
            yield self._batch.x0, self._batch.t
            if self._done <= b:
                raise ConfigError(f"record(): batch {b} was not finished: call rec.finish(x_adv) before the next")

    def _observe(self, x: torch.Tensor, z: torch.Tensor) -> None:
        """Record one evaluation of the model (called by :class:`RecordingModel`)."""
        batch = self._batch
        if batch is None or batch.done or x.shape != batch.x0.shape:
            self.ignored_evaluations += 1
            return
        xd = x.detach()
        if batch.last_x is not None and torch.equal(xd, batch.last_x):
            return  # the images of the previous row: nothing new
        if not batch.rows and not torch.equal(xd, batch.x0):
            with torch.no_grad():
                self._row(batch, batch.x0, self.inner(batch.x0))  # row 0 is x₀
        self._row(batch, xd, z.detach())

    def _row(self, batch: _Batch, x: torch.Tensor, z: torch.Tensor) -> None:
        z = z.float()
        if batch.mask is None:
            self.num_classes = int(z.shape[1])
            batch.mask = yt_mask(self.num_classes, batch.y, batch.t)
        if batch.last_x is not None:  # the step from the previous row's images to these
            batch.rows[-1][:, COL["step_l2"]] = per_image_norm(x - batch.last_x, 2.0)
        buf = StatsBuffer(1, len(x), x.device)
        buf.record(0, z, batch.y, batch.t, torch.zeros_like(z[:, 0]), None, x - batch.x0, yt_mask=batch.mask)
        row = buf.data[0]
        for name in NOT_RECORDED:
            row[:, COL[name]] = NOT_RECORDED_FILL
        batch.rows.append(row)
        batch.last_x = x.clone()

    def finish(self, x_adv: torch.Tensor) -> RunRecord:
        """The attack's result for the current batch: evaluated once more (the last row), its
        images written as files and the batch committed; returns the run (status *running*
        until the block ends)."""
        batch = self._batch
        if batch is None or batch.done:
            raise ConfigError("record(): every batch is finished already")
        if not isinstance(x_adv, torch.Tensor) or x_adv.shape != batch.x0.shape:
            shape = tuple(x_adv.shape) if isinstance(x_adv, torch.Tensor) else type(x_adv).__name__
            raise ConfigError(f"record(): finish() needs images of shape {tuple(batch.x0.shape)}, got {shape}")
        x_adv = x_adv.detach().to(batch.x0.device, batch.x0.dtype)
        with torch.no_grad():
            self.model(x_adv)
        seconds = time.perf_counter() - batch.started
        batch.done = True
        run = self.run or self._create_run(len(batch.rows) - 1)
        self._commit(run.run_id, batch, x_adv, seconds)
        self._done = batch.index + 1
        if self._done < self.n_batches:
            self._begin(self._done)
        return run

    # --- the store -----------------------------------------------------------------------------

    def _commit(self, run_id: int, batch: _Batch, x_adv: torch.Tensor, seconds: float) -> None:
        assert self._writer is not None and self._image_ids is not None
        stats = torch.stack(batch.rows).cpu().numpy()
        y, t = batch.y.cpu().numpy(), batch.t.cpu().numpy()
        ids = self._image_ids[batch.sl]
        summary = summarise(stats, y, t)
        with torch.no_grad():
            summary.update(_final_summary(self.inner, batch.x0, x_adv, batch.t))
        summary["image_id"] = ids.astype(np.int32)
        summary["batch_index"] = np.full(len(ids), batch.index, dtype=np.int32)
        payload = self._artifacts(x_adv, ids, batch.t) if self.save_images else None
        record = BatchRecord(
            run_id=run_id,
            batch_index=batch.index,
            trajectory=trajectory_columns(stats, ids),
            samples=summary,
            attack_seconds=seconds,
        )
        self._writer.submit(record, payload)
        batch.rows.clear()

    @torch.no_grad()
    def _artifacts(self, x_adv: torch.Tensor, ids: np.ndarray, t: torch.Tensor) -> ArtifactPayload:
        """The files, as advdb's runs write them: the saved image's prediction beside it."""
        if self.image_format == "png":
            q = _quantize(x_adv)
            saved_pred, pixels = prediction(self.inner(q.float() / 255.0).float(), t), q.cpu().numpy()
        else:
            saved_pred, pixels = prediction(self.inner(x_adv).float(), t), x_adv.float().cpu().numpy()
        sp = saved_pred.cpu().numpy()
        return ArtifactPayload(
            image_id=ids,
            pixels=pixels,
            format=self.image_format,
            saved_pred=sp,
            still_adversarial=sp == t.cpu().numpy(),
        )

    def _create_run(self, iterations: int) -> RunRecord:
        """The run row, its classifier and dataset in the catalogue, and its plan (``run_images``)."""
        assert self._store is not None and self._writer is not None and self.num_classes is not None
        store = self._store
        classifier = self._classifier_fields()
        dataset_id, image_ids, classifier_id, dataset_name = self._register(classifier)
        self._image_ids = image_ids
        run = create_run(
            store,
            kind="attack",
            config=self._config(classifier, dataset_name),
            name=self.source.name or f"{self.source.library} {self.source.attack}",
            attack=EXTERNAL,
            classifier_id=classifier_id,
            dataset_id=dataset_id,
            iterations=iterations,
            n_images=len(self.images),
            batch_size=self.batch_size,
            device=str(self.images.device),
            versions={self.source.library: self.source.version} if self.source.version else None,
        )
        positions = np.arange(len(self.images))
        self._writer.insert(
            "run_images",
            {
                "image_id": image_ids.astype(np.int32),
                "position": positions.astype(np.int32),
                "batch_index": (positions // self.batch_size).astype(np.int32),
                "label": self.labels.cpu().numpy().astype(np.int32),
                "target": self.targets.cpu().numpy().astype(np.int32),
            },
            run_id=run.run_id,
        )
        self.run = run
        return run

    def _register(self, classifier: dict[str, Any]) -> tuple[int, np.ndarray, int, str]:
        """The dataset's id, the attacked images' ids, the classifier's id and the dataset's name: an
        advdb dataset (``dataset``, ``indices``), checked to hold these images and registered as a run
        registers it, or the tensors themselves (kind ``tensors``)."""
        assert self._store is not None and self.num_classes is not None
        if self.dataset is not None:
            assert self.indices is not None
            ds = _named_dataset(self.dataset, self.indices, self.images)
            labels = ds.labels if ds.labels is not None else np.zeros(len(ds), dtype=np.int64)
            dataset_id, ids, classifier_id = register_inputs(
                self._store, ds, labels, classifier, num_classes=self.num_classes
            )
            return dataset_id, ids[self.indices], classifier_id, ds.name
        fingerprint = images_fingerprint(self.images, self.labels)
        dataset_id, ids = register_dataset(
            self._store,
            name=f"tensors-{fingerprint[:12]}",
            kind="tensors",
            fingerprint=fingerprint,
            labels=self.labels.cpu().numpy(),
            image_shape=tuple(self.images.shape[1:]),
            n_classes=self.num_classes,
        )
        return dataset_id, ids, register_classifier(self._store, **classifier), f"tensors-{fingerprint[:12]}"

    def _classifier_fields(self) -> dict[str, Any]:
        if self.clf is not None:
            return self.clf.catalogue_fields()
        assert self.num_classes is not None
        name = type(self.inner).__name__
        return {
            "name": name,
            "architecture": name,
            "weights_source": "external",
            "weights_sha256": state_dict_sha256(self.inner),
            "num_classes": self.num_classes,
            "input_shape": list(self.images.shape[1:]),
            "normalization": {"mean": [], "std": []},
            "test_accuracy": None,
        }

    def _config(self, classifier: dict[str, Any], dataset_name: str) -> dict[str, Any]:
        s = self.source
        return {
            "attack": EXTERNAL,
            "library": s.library,
            "library_version": s.version,
            "external_attack": s.attack,
            "params": s.params,
            # an advdb classifier is rebuilt by name (advdb defend); a model of your own cannot be
            "model": self.clf.name if self.clf is not None else f"external:{classifier['name']}",
            "weights": None,
            "dataset": dataset_name,
            "n": len(self.images),
            "batch_size": self.batch_size,
            "image_format": self.image_format,
            "save_images": self.save_images,
            "name": s.name,
            "not_recorded": list(NOT_RECORDED),
            "resolved": {
                "n": len(self.images),
                "classifier_sha256": classifier["weights_sha256"],
                "dataset": dataset_name,
            },
        }


def _final_summary(model: nn.Module, x0: torch.Tensor, x_adv: torch.Tensor, t: torch.Tensor) -> dict[str, np.ndarray]:
    from advdb.worker import final_summary

    return final_summary(model, x0, x_adv, t)


def _named_dataset(name: str, indices: np.ndarray, images: torch.Tensor) -> ImageDataset:
    """Advdb dataset ``name``, checked to hold ``images`` as its images ``indices``."""
    from advdb.data import create_dataset

    ds = create_dataset(name)
    if indices.min(initial=0) < 0 or indices.max(initial=0) >= len(ds):
        raise ConfigError(f"record(): indices must lie in 0 … {len(ds) - 1} (dataset {name} has {len(ds)} images)")
    genuine = torch.from_numpy(np.ascontiguousarray(ds.load_array(indices), dtype=np.float32))
    if genuine.shape != images.shape or not torch.equal(genuine, images.detach().float().cpu()):
        raise DataError(f"record(): the images are not images {indices.tolist()[:8]}… of dataset {name}")
    return ds


def _as_long(values: torch.Tensor | Sequence[int], what: str, n: int, device: torch.device) -> torch.Tensor:
    v = torch.as_tensor(values, device=device)
    if v.dim() != 1 or len(v) != n or v.dtype.is_floating_point:
        raise ConfigError(f"record(): {what} must be {n} class indices (one per image), got shape {tuple(v.shape)}")
    return v.long()


def _check_inputs(
    images: torch.Tensor, labels: torch.Tensor | Sequence[int], targets: torch.Tensor | Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point() or not len(images):
        raise ConfigError("record(): images must be a float tensor [N, C, H, W] in [0, 1] with at least one image")
    if bool(images.min() < 0) or bool(images.max() > 1):
        raise ConfigError("record(): images must lie in [0, 1] (pixel space; the model normalises them itself)")
    y = _as_long(labels, "labels", len(images), images.device)
    t = _as_long(targets, "targets", len(images), images.device)
    if bool((y == t).any()):
        raise ConfigError("record(): a target equals its image's label: a targeted attack needs another class")
    return images.detach(), y, t


def _check_options(rec: Recorder, dataset: str | None) -> None:
    check_format(rec.image_format)
    if rec.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {rec.batch_size}")
    if (dataset is None) != (rec.indices is None):
        raise ConfigError("record(): give dataset and indices together (the images' dataset and their indices in it)")
    if rec.indices is not None and rec.indices.shape != (len(rec.images),):
        raise ConfigError(f"record(): indices must name one dataset image per image ({len(rec.images)})")
    if not rec.source.library or not rec.source.attack:
        raise ConfigError("record(): name the library and the attack (library='torchattacks', attack='BIM')")
    try:
        json.dumps(rec.source.params, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"record(): params are stored as JSON: {exc}") from None


def record(
    model: nn.Module | LoadedClassifier,
    images: torch.Tensor,
    labels: torch.Tensor | Sequence[int],
    targets: torch.Tensor | Sequence[int],
    *,
    library: str,
    attack: str,
    params: Mapping[str, Any] | None = None,
    version: str | None = None,
    store: StoreArg = None,
    name: str | None = None,
    dataset: str | None = None,
    indices: Sequence[int] | np.ndarray | None = None,
    batch_size: int | None = None,
    image_format: str = "png",
    save_images: bool = True,
) -> Recorder:
    """Record another library's targeted attack on ``images`` as an advdb run (use it in ``with``).

    ``model`` is a classifier (pixel space in, logits out; a ``torch.nn.Module`` or an advdb
    classifier from :func:`advdb.classifier`); hand :attr:`Recorder.model` to the library.
    ``labels`` are the images' true classes, ``targets`` the attack's targets. ``library``,
    ``attack`` and ``params`` describe the attack (``version`` defaults to the library's
    installed version). ``dataset`` and ``indices`` say which images of an advdb dataset these
    are (so ``advdb defend`` and ``advdb retrain`` can reload the genuine images); without them
    the images are registered by their own fingerprint (kind ``tensors``). ``batch_size``
    splits the images into batches (:meth:`Recorder.batches`), each committed on its own.

    Example::

        with advdb.record(model, x, y, t, library="torchattacks", attack="BIM", params=p) as rec:
            atk = torchattacks.BIM(rec.model, eps=0.3, alpha=1 / 255, steps=10)
            atk.set_mode_targeted_by_label(quiet=True)
            rec.finish(atk(x, t))
        rec.run  # the stored run (advdb.store.records.RunRecord)
    """
    source = _Source(
        library=library,
        attack=attack,
        params=dict(params or {}),
        version=version or _library_version(library),
        name=name,
    )
    return Recorder(
        model,
        images,
        labels,
        targets,
        source=source,
        store=store,
        dataset=dataset,
        indices=indices,
        batch_size=batch_size,
        image_format=image_format,
        save_images=save_images,
    )
