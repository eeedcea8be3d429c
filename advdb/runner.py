"""One attack run: data + classifier + attack engine + store + adversarial image files.

``run_attack`` validates everything, plans the work (correctly classified images, seeded
targets), stores the plan, then attacks batch by batch; each batch's trajectory rows,
samples, image files and batch record are committed together by a writer process while
the next batch is attacked. ``resume_attack`` finishes an interrupted or failed run: it
attacks exactly the batches that were not committed.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from sqlalchemy import select

from advdb.artifacts import check_format
from advdb.attacks.registry import Attack, create_attack
from advdb.attacks.summary import summarise, trajectory_columns
from advdb.data import ImageDataset, create_dataset
from advdb.errors import ConfigError, ConflictError, DataError, InterruptedRun
from advdb.models import LoadedClassifier, create_classifier
from advdb.store.catalogue import get_classifier, register_classifier, register_dataset
from advdb.store.engine import Store
from advdb.store.ingest import BatchRecord
from advdb.store.models import Batch, Run, RunImage
from advdb.store.runs import create_run, resumable_run, set_status
from advdb.store.writer import ArtifactPayload, BackgroundWriter

TARGET_MODES = ("random", "least-likely")


class Progress(Protocol):
    """What a run reports while it works (the CLI draws a progress bar from it)."""

    def start(self, *, run_id: int, total_images: int, done_images: int, iterations: int) -> None: ...

    def advance(self, images: int) -> None: ...


@dataclass(kw_only=True)
class AttackSpec:
    """Everything that defines an attack run; stored in full as the run's configuration."""

    attack: str = "unified"
    params: dict[str, Any] = field(default_factory=lambda: {"loss": "ce-sign"})
    model: str = "digits-cnn"
    weights: str | None = None
    dataset: str | None = None
    data_dir: str | None = None
    image_size: int = 224
    image_shape: tuple[int, int, int] | None = None
    n: int = 500
    batch_size: int = 128
    device: str = "auto"
    seed: int = 0
    targets: str = "random"
    image_format: str = "png"
    save_images: bool = True
    labels: list[int] | None = None
    name: str | None = None

    def validate(self) -> Attack:
        if self.n < 1:
            raise ConfigError(f"--n must be at least 1, got {self.n}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.targets not in TARGET_MODES:
            raise ConfigError(f"unknown target selection {self.targets!r}: choose one of {', '.join(TARGET_MODES)}")
        check_format(self.image_format)
        resolve_device(self.device)
        return create_attack(self.attack, **self.params)

    def to_config(self) -> dict[str, Any]:
        d = asdict(self)
        d["image_shape"] = list(self.image_shape) if self.image_shape else None
        return d

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "AttackSpec":
        c = dict(config)
        c.pop("resolved", None)
        if c.get("image_shape"):
            c["image_shape"] = tuple(c["image_shape"])
        return cls(**c)


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU; an unavailable device is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}: use auto, cpu or cuda[:N]") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is visible: use --device auto or cpu")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device {device!r}: use auto, cpu or cuda[:N]")
    return dev


def torch_versions(dev: torch.device) -> dict[str, str]:
    """torch's own build (with its CUDA flavour) and the GPU's CUDA/cuDNN versions."""
    out = {"torch": torch.__version__}
    if dev.type == "cuda":
        out["cuda"] = str(torch.version.cuda)
        out["cudnn"] = str(torch.backends.cudnn.version())
        out["gpu"] = torch.cuda.get_device_name(dev)
    return out


def device_description(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(dev)}"[:64]
    return "cpu"


def _load_data_and_model(spec: AttackSpec, device: torch.device) -> tuple[ImageDataset, LoadedClassifier]:
    clf = create_classifier(spec.model, weights=spec.weights, seed=spec.seed)
    dataset = spec.dataset or clf.default_dataset or "digits"
    opts: dict[str, Any] = {"data_dir": spec.data_dir, "image_size": spec.image_size, "seed": spec.seed}
    if dataset == "synthetic":
        opts["image_shape"] = spec.image_shape or clf.input_shape
        opts["n_synthetic"] = spec.n
    ds = create_dataset(dataset, **opts)
    if clf.architecture in ("digits-cnn", "circles-mlp") and tuple(ds.image_shape) != tuple(clf.input_shape):
        raise ConfigError(f"model {clf.name} takes {clf.input_shape} images, dataset {ds.name} has {ds.image_shape}")
    if ds.n_classes is not None and ds.n_classes > clf.num_classes:
        raise ConfigError(f"dataset {ds.name} has {ds.n_classes} classes but model {clf.name} only {clf.num_classes}")
    clf.to(device)
    return ds, clf


@torch.no_grad()
def predict(clf: LoadedClassifier, ds: ImageDataset, indices: np.ndarray, device: torch.device, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and least-likely classes for ``indices``."""
    preds, least = [], []
    for s in range(0, len(indices), batch_size):
        z = clf.module(ds.load(indices[s : s + batch_size]).to(device))
        preds.append(z.argmax(1).cpu())
        least.append(z.argmin(1).cpu())
    if not preds:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return torch.cat(preds).numpy(), torch.cat(least).numpy()


@dataclass
class Plan:
    """The work list: dataset indices, labels and targets, in attack order."""

    indices: np.ndarray
    labels: np.ndarray
    targets: np.ndarray


def plan_targets(clf: LoadedClassifier, ds: ImageDataset, *, n: int, seed: int, targets: str, device: torch.device,
                 batch_size: int, only_labels: list[int] | None = None) -> tuple[Plan, np.ndarray]:
    """Pick ``n`` correctly classified images in a seeded order and a seeded target for each.

    ``only_labels`` restricts the images to those classes. Returns the plan and the
    dataset's labels (the classifier's predictions for synthetic data).
    """
    order = np.random.default_rng(seed).permutation(len(ds))
    labels = ds.labels
    if only_labels is not None:
        if labels is None:
            raise ConfigError("--labels needs a labelled dataset")
        order = order[np.isin(labels[order], only_labels)]
    chunk = max(batch_size, 256)
    chosen: list[np.ndarray] = []
    chosen_least: list[np.ndarray] = []
    found = 0
    all_preds = np.full(len(ds), -1, dtype=np.int64)
    for s in range(0, len(order), chunk):
        idx = order[s : s + chunk]
        pred, least = predict(clf, ds, idx, device, batch_size)
        all_preds[idx] = pred
        ok = pred == (labels[idx] if labels is not None else pred)
        chosen.append(idx[ok])
        chosen_least.append(least[ok])
        found += int(ok.sum())
        if found >= n:
            break
    if found < n:
        which = f" with labels {only_labels}" if only_labels is not None else ""
        raise DataError(
            f"only {found} of {len(order)} images{which} in {ds.name} are classified correctly by {clf.name}: use --n {found} or fewer"
        )
    idx = np.concatenate(chosen)[:n]
    y = labels[idx] if labels is not None else all_preds[idx]
    if targets == "least-likely":
        t = np.concatenate(chosen_least)[:n]
    else:
        r = np.random.default_rng([seed, 1]).integers(0, clf.num_classes - 1, size=n)
        t = r + (r >= y)
    if labels is None:
        labels = np.where(all_preds >= 0, all_preds, 0)
        # synthetic images not evaluated get their label when first predicted
        missing = np.flatnonzero(all_preds < 0)
        if len(missing):
            labels[missing], _ = predict(clf, ds, missing, device, batch_size)
    return Plan(indices=idx.astype(np.int64), labels=y.astype(np.int64), targets=t.astype(np.int64)), labels


@torch.no_grad()
def final_summary(model: torch.nn.Module, x0: torch.Tensor, x_adv: torch.Tensor, t: torch.Tensor) -> dict[str, np.ndarray]:
    """The ``final_*`` sample columns, measured on the image the attack returns.

    For the unified iteration that is the last iterate; CW and L-BFGS return their
    smallest-L2 successful image, which need not be the last one evaluated.
    """
    z = model(x_adv)
    d = (x_adv - x0).flatten(1)
    cols = torch.stack((z.argmax(1).float(), z.softmax(1).gather(1, t[:, None]).squeeze(1), z.gather(1, t[:, None]).squeeze(1),
                        d.abs().sum(1), d.norm(dim=1), d.abs().amax(1)), 1).cpu().numpy()
    return {"final_pred": cols[:, 0].astype(np.int32), "final_p_target": cols[:, 1], "final_z_target": cols[:, 2],
            "final_l1": cols[:, 3], "final_l2": cols[:, 4], "final_linf": cols[:, 5]}


def _quantize(x: torch.Tensor) -> torch.Tensor:
    return (x * 255.0).round_().clamp_(0, 255).to(torch.uint8)


class _Execution:
    """The batch loop shared by new and resumed runs."""

    def __init__(self, store: Store, run_id: int, spec: AttackSpec, attack: Attack, ds: ImageDataset, clf: LoadedClassifier,
                 device: torch.device, plan: Plan, image_ids: np.ndarray, progress: Progress | None) -> None:
        self.store, self.run_id, self.spec, self.attack = store, run_id, spec, attack
        self.ds, self.clf, self.device, self.plan = ds, clf, device, plan
        self.image_ids = image_ids  # per plan position
        self.progress = progress

    def batches(self) -> list[int]:
        n_batches = -(-len(self.plan.indices) // self.spec.batch_size)
        with self.store.session() as s:
            done = set(s.scalars(select(Batch.batch_index).where(Batch.run_id == self.run_id)))
        return [b for b in range(n_batches) if b not in done]

    def _slice(self, b: int) -> slice:
        B = self.spec.batch_size
        return slice(b * B, min((b + 1) * B, len(self.plan.indices)))

    def run(self, writer: BackgroundWriter) -> None:
        todo = self.batches()
        total = len(self.plan.indices)
        done_images = total - sum(self._slice(b).stop - self._slice(b).start for b in todo)
        if self.progress:
            self.progress.start(run_id=self.run_id, total_images=total, done_images=done_images,
                                iterations=int(self.spec.params.get("iterations", 0) or 0))
        torch.manual_seed(self.spec.seed)
        with ThreadPoolExecutor(max_workers=1) as loader:
            # numpy only in the loader thread (see ImageDataset.load_array)
            nxt = loader.submit(self.ds.load_array, self.plan.indices[self._slice(todo[0])]) if todo else None
            for k, b in enumerate(todo):
                x0 = torch.from_numpy(nxt.result())  # type: ignore[union-attr]
                if k + 1 < len(todo):
                    nxt = loader.submit(self.ds.load_array, self.plan.indices[self._slice(todo[k + 1])])
                self._attack_batch(writer, b, x0)
                if self.progress:
                    self.progress.advance(len(x0))

    def _attack_batch(self, writer: BackgroundWriter, b: int, x0_cpu: torch.Tensor) -> None:
        sl = self._slice(b)
        y_np, t_np = self.plan.labels[sl], self.plan.targets[sl]
        dev = self.device
        x0 = x0_cpu.to(dev, non_blocking=True)
        y = torch.as_tensor(y_np, device=dev)
        t = torch.as_tensor(t_np, device=dev)
        outcome = self.attack.run(self.clf.module, x0, y, t, num_classes=self.clf.num_classes)
        stats = outcome.stats.numpy()
        ids = self.image_ids[sl]
        summary = summarise(stats, y_np, t_np)
        summary.update(final_summary(self.clf.module, x0, outcome.x_adv, t))
        summary["image_id"] = ids.astype(np.int32)
        summary["batch_index"] = np.full(len(ids), b, dtype=np.int32)
        payload = None
        if self.spec.save_images:
            with torch.no_grad():
                if self.spec.image_format == "png":
                    q = _quantize(outcome.x_adv)
                    saved_pred = self.clf.module(q.float() / 255.0).argmax(1)
                    pixels = q.cpu().numpy()
                else:
                    saved_pred = self.clf.module(outcome.x_adv).argmax(1)
                    pixels = outcome.x_adv.float().cpu().numpy()
            sp = saved_pred.cpu().numpy()
            payload = ArtifactPayload(image_id=ids, pixels=pixels, format=self.spec.image_format, saved_pred=sp,
                                      still_adversarial=sp == t_np)
        record = BatchRecord(
            run_id=self.run_id, batch_index=b,
            trajectory=trajectory_columns(stats, ids, outcome.search_step.numpy() if outcome.search_step is not None else None),
            samples=summary, attack_seconds=outcome.seconds,
        )
        writer.submit(record, payload)


def _execute(store: Store, writer: BackgroundWriter, execution: _Execution, started: float, prior_seconds: float = 0.0) -> int:
    run_id = execution.run_id
    try:
        try:
            execution.run(writer)
            writer.close()
        finally:
            writer.stop()
    except KeyboardInterrupt:
        set_status(store, run_id, "interrupted", wall_seconds=prior_seconds + time.perf_counter() - started)
        left = len(execution.batches())
        raise InterruptedRun(
            f"run {run_id} interrupted with {left} batch(es) left; committed batches are kept: "
            f"resume with `advdb attack --resume {run_id}`"
        ) from None
    except BaseException as exc:
        set_status(store, run_id, "failed", error=f"{type(exc).__name__}: {exc}",
                   wall_seconds=prior_seconds + time.perf_counter() - started)
        raise
    set_status(store, run_id, "finished", wall_seconds=prior_seconds + time.perf_counter() - started)
    return run_id


def run_attack(store: Store, spec: AttackSpec, *, progress: Progress | None = None) -> int:
    """Run a new attack; returns its run id. Every option is validated before any work."""
    attack = spec.validate()
    started = time.perf_counter()
    device = resolve_device(spec.device)
    writer = BackgroundWriter(store.location)  # starts while the model loads
    try:
        return _run_new(store, spec, attack, device, writer, started, progress)
    finally:
        writer.stop()


def _run_new(store: Store, spec: AttackSpec, attack: Attack, device: torch.device, writer: BackgroundWriter,
             started: float, progress: Progress | None) -> int:
    ds, clf = _load_data_and_model(spec, device)
    plan, labels = plan_targets(clf, ds, n=spec.n, seed=spec.seed, targets=spec.targets, device=device,
                                batch_size=spec.batch_size, only_labels=spec.labels)
    dataset_id, image_ids = register_dataset(
        store, name=ds.name, kind=ds.kind, fingerprint=ds.fingerprint, labels=labels, image_shape=ds.image_shape,
        n_classes=ds.n_classes or clf.num_classes, split=ds.split, root=ds.root, paths=ds.paths(), synthetic=ds.synthetic,
    )
    classifier_id = register_classifier(
        store, name=clf.name, architecture=clf.architecture, weights_source=clf.weights_source,
        weights_sha256=clf.weights_sha256, num_classes=clf.num_classes, input_shape=list(clf.input_shape),
        normalization=clf.normalization, test_accuracy=clf.test_accuracy,
    )
    config = spec.to_config()
    config["resolved"] = {
        "attack": attack.config.to_dict(), "device": str(device), "dataset": ds.name,
        "classifier_sha256": clf.weights_sha256, "dataset_fingerprint": ds.fingerprint,
    }
    iterations = getattr(attack.config, "iterations", None)
    run = create_run(
        store, kind="attack", config=config, name=spec.name, attack=attack.name, loss=attack.loss, mode=attack.mode,
        classifier_id=classifier_id, dataset_id=dataset_id, seed=spec.seed, iterations=iterations, n_images=spec.n,
        batch_size=spec.batch_size, device=device_description(device), synthetic=ds.synthetic,
        versions=torch_versions(device),
    )
    positions = np.arange(len(plan.indices))
    try:
        writer.insert("run_images", {
            "image_id": image_ids[plan.indices].astype(np.int32), "position": positions.astype(np.int32),
            "batch_index": (positions // spec.batch_size).astype(np.int32), "label": plan.labels.astype(np.int32),
            "target": plan.targets.astype(np.int32),
        }, run_id=run.run_id)
    except BaseException as exc:
        set_status(store, run.run_id, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    execution = _Execution(store, run.run_id, spec, attack, ds, clf, device, plan, image_ids[plan.indices], progress)
    return _execute(store, writer, execution, started)


def resume_attack(store: Store, run_id: int, *, progress: Progress | None = None, device: str | None = None) -> int:
    """Finish an interrupted or failed attack run: attack exactly the batches not yet committed."""
    run: Run = resumable_run(store, run_id, "attack")
    spec = AttackSpec.from_config(run.config)
    if device is not None:
        spec.device = device
    attack = spec.validate()
    started = time.perf_counter()
    dev = resolve_device(spec.device)
    ds, clf = _load_data_and_model(spec, dev)
    stored = get_classifier(store, run.classifier_id) if run.classifier_id else None
    if stored is not None and stored.weights_sha256 != clf.weights_sha256:
        raise DataError(f"the weights of {clf.name} changed since run {run_id} started (sha256 {clf.weights_sha256[:12]}… ≠ {stored.weights_sha256[:12]}…): restore them to resume")
    if ds.fingerprint != run.config.get("resolved", {}).get("dataset_fingerprint"):
        raise DataError(f"dataset {ds.name} changed since run {run_id} started: restore it to resume")
    from advdb.store.models import Image

    with store.session() as s:
        rows = s.execute(
            select(RunImage.image_id, RunImage.label, RunImage.target, Image.idx)
            .join(Image, Image.image_id == RunImage.image_id)
            .where(RunImage.run_id == run_id).order_by(RunImage.position)
        ).all()
    if not rows:
        raise ConflictError(f"run {run_id} has no stored plan (it failed before planning): start a new run instead")
    arr = np.asarray(rows, dtype=np.int64)
    plan = Plan(indices=arr[:, 3], labels=arr[:, 1], targets=arr[:, 2])
    set_status(store, run_id, "running")
    execution = _Execution(store, run_id, spec, attack, ds, clf, dev, plan, arr[:, 0], progress)
    return _execute(store, BackgroundWriter(store.location), execution, started, prior_seconds=run.wall_seconds or 0.0)

