"""Evaluating stored adversarial images: what transfer and defense runs share.

An evaluation run reads the adversarial image files of finished attack runs (its *sources*),
each file's sha256 checked against the store, shows them (transformed or not) to a
classifier and stores one row per image. It works in chunks, each committed in one
transaction, so an interrupted run resumes where it stopped (``--resume``) and never stores
an image twice. The classifier runs as an attack runs it (:func:`advdb.execution.prepare`),
so a stored image shown to the classifier that made it gives the prediction recorded for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

import numpy as np
import torch

from advdb import artifacts
from advdb.data import ImageDataset, reopen_dataset
from advdb.devices import resolve_device
from advdb.errors import ConfigError, DataError, NotFoundError, a
from advdb.execution import ExecutionFields
from advdb.models.classifiers import LoadedClassifier, create_classifier
from advdb.progress import AttackProgress
from advdb.store.catalogue import get_classifier, get_dataset
from advdb.store.engine import Store
from advdb.store.evaluations import add_results, attacked_images, evaluated_images
from advdb.store.lifecycle import run_lifecycle
from advdb.store.records import AttackedImageRecord, RunRecord
from advdb.store.runs import create_run, get_run

Rows = list[dict[str, Any]]
E = TypeVar("E", bound="EvaluationFields")


@dataclass(kw_only=True)
class EvaluationFields(ExecutionFields):
    """The options every evaluation run has: its source attack runs and how it computes."""

    sources: list[int] = field(default_factory=list)
    n: int | None = None  # at most this many images per source (the first by image id); None: all
    batch_size: int = 256
    device: str = "auto"

    def check_common(self) -> None:
        if not self.sources:
            raise ConfigError("--sources needs attack run ids, such as --sources 3 or --sources 3,4,5,6")
        if len(set(self.sources)) != len(self.sources):
            raise ConfigError("--sources lists a run twice")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.n is not None and self.n < 1:
            raise ConfigError(f"-n must be at least 1, got {self.n}")
        resolve_device(self.device)
        self.execution  # noqa: B018 - validates the precision and memory format

    def to_config(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_config(cls: type[E], config: dict[str, Any]) -> E:
        """The spec a run stored (what it resolved, such as its execution, left out)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in config.items() if k in names})


def create_evaluation_run(
    store: Store,
    kind: str,
    spec: EvaluationFields,
    *,
    name: str,
    n_images: int,
    resolved: dict[str, Any] | None = None,
    **columns: Any,
) -> int:
    """Store a new transfer or defense run with its full configuration (``resolved``: what it
    settled beyond its options, such as a resize on the way in); returns its id."""
    device = resolve_device(spec.device)
    config = {**spec.to_config(), "resolved": {"execution": spec.execution.resolved(device), **(resolved or {})}}
    run = create_run(
        store, kind=kind, config=config, name=name, n_images=n_images, batch_size=spec.batch_size, device=str(device),
        **columns,
    )  # fmt: skip
    return run.run_id


def source_runs(store: Store, sources: list[int], *, what: str) -> tuple[list[RunRecord], int]:
    """The finished attack runs ``sources`` and the dataset they share; a clear error otherwise."""
    runs = []
    for rid in sources:
        try:
            run = get_run(store, rid)
        except NotFoundError:
            raise NotFoundError(f"source run {rid} does not exist: see `advdb runs list --kind attack`") from None
        if run.kind != "attack" or run.status != "finished":
            raise ConfigError(
                f"source run {rid} is {a(run.status + ' ' + run.kind)} run: {what} need finished attack runs"
            )
        runs.append(run)
    datasets = {r.dataset_id for r in runs if r.dataset_id is not None}
    if len(datasets) != 1:
        raise ConfigError("the source runs attacked different datasets: choose runs on one dataset")
    return runs, datasets.pop()


def load_dataset(store: Store, dataset_id: int) -> ImageDataset:
    """The genuine images' dataset, reloaded through the registry and checked by fingerprint."""
    row = get_dataset(store, dataset_id)
    if row is None:
        raise NotFoundError(f"dataset {dataset_id} is not in the store")
    ds = reopen_dataset(kind=row.kind, name=row.name, root=row.root, image_size=int(row.image_shape[-1]))
    if ds is None:
        raise DataError(f"genuine images of a {row.kind} dataset cannot be reloaded")
    if ds.fingerprint != row.fingerprint:
        raise DataError(f"dataset {row.name} changed since it was attacked (fingerprint differs): restore it")
    return ds


def check_files(store: Store, images: list[AttackedImageRecord], sources: list[int]) -> None:
    """Every file is there and unchanged (sha256), and every source stored some."""
    root = store.location.artifacts_dir
    counts = dict.fromkeys(sources, 0)
    for img in images:
        f = root / img.path
        if not f.exists():
            raise DataError(f"adversarial image {f} of run {img.run_id} is missing: restore it or re-run the attack")
        if artifacts.sha256_of(f) != img.sha256:
            raise DataError(
                f"adversarial image {f} of run {img.run_id} has changed since it was stored (sha256 mismatch)"
            )
        counts[img.run_id] += 1
    empty = [r for r, c in counts.items() if c == 0]
    if empty:
        raise DataError(
            f"source run(s) {empty} stored no adversarial image files: re-run them without --no-save-images"
        )


def source_images(store: Store, spec: EvaluationFields, *, what: str) -> tuple[list[AttackedImageRecord], int]:
    """The sources' stored images (the first ``spec.n`` of each), all checked, and their dataset id."""
    _, dataset_id = source_runs(store, spec.sources, what=what)
    images = attacked_images(store, spec.sources)
    if spec.n is not None:
        images = [i for run_id in spec.sources for i in [i for i in images if i.run_id == run_id][: spec.n]]
    check_files(store, images, spec.sources)
    return images, dataset_id


def attacked_classifier(store: Store, runs: list[RunRecord]) -> LoadedClassifier:
    """The classifier the source runs attacked, rebuilt from their configuration and checked by sha256."""
    ids = {r.classifier_id for r in runs}
    if len(ids) != 1 or None in ids:
        raise ConfigError("the source runs attacked different classifiers: choose runs on one classifier")
    record = get_classifier(store, ids.pop())  # type: ignore[arg-type]
    assert record is not None
    cfg = runs[0].config
    if str(cfg.get("model", "")).startswith("external:"):
        raise ConfigError(
            f"the source runs attacked your own model {record.name!r}, which advdb cannot rebuild: record it with "
            "advdb.classifier(…) to defend it, or transfer its images onto another model"
        )
    clf = create_classifier(cfg["model"], weights=cfg.get("weights"), seed=cfg.get("seed", 0))
    if clf.weights_sha256 != record.weights_sha256:
        raise DataError(
            f"classifier {record.name}'s weights changed since runs {[r.run_id for r in runs]} attacked it "
            f"(sha256 {clf.weights_sha256[:12]}… ≠ {record.weights_sha256[:12]}…): restore {record.weights_source}"
        )
    return clf


def _chunks(images: list[AttackedImageRecord], size: int) -> Iterator[list[AttackedImageRecord]]:
    for i in range(0, len(images), size):
        yield images[i : i + size]


def load_checked(store: Store, chunk: list[AttackedImageRecord]) -> torch.Tensor:
    """A chunk's adversarial images as one float32 batch, each file's sha256 checked as it is read."""
    root = store.location.artifacts_dir
    return torch.from_numpy(np.stack([artifacts.load(root / i.path, expected_sha256=i.sha256) for i in chunk]))


@torch.no_grad()
def logits_of(model: torch.nn.Module, x: torch.Tensor, device: torch.device, batch_size: int) -> torch.Tensor:
    """``model``'s float32 logits of ``x`` (on the CPU), ``batch_size`` images at a time on ``device``."""
    out = [model(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0)


def evaluate(
    store: Store,
    run_id: int,
    kind: str,
    images: list[AttackedImageRecord],
    rows_of: Callable[[list[AttackedImageRecord], torch.Tensor], Rows],
    *,
    chunk_size: int,
    resume: str,
    prior_seconds: float = 0.0,
    progress: AttackProgress | None = None,
    label: str = "",
) -> int:
    """Evaluate the images run ``run_id`` has not stored yet, a chunk per transaction, under the
    run lifecycle (finished, or interrupted/failed with its committed chunks kept)."""
    done = evaluated_images(store, kind, run_id)
    pending = [i for i in images if (i.run_id, i.image_id) not in done]
    with run_lifecycle(store, run_id, what=f"{kind} run", resume=resume, prior_seconds=prior_seconds):
        if progress:
            progress.start(
                run_id=run_id,
                label=label,
                total_images=len(images),
                done_images=len(images) - len(pending),
                iterations=1,
            )
        for chunk in _chunks(pending, chunk_size):
            add_results(store, kind, run_id, rows_of(chunk, load_checked(store, chunk)))
            if progress:
                progress.advance(len(chunk))
    return run_id


def genuine_batch(ds: ImageDataset, index_of: Mapping[int, int], chunk: list[AttackedImageRecord]) -> torch.Tensor:
    """The genuine originals of a chunk's adversarial images, as one float32 batch."""
    return torch.from_numpy(
        np.ascontiguousarray(ds.load_array([index_of[i.image_id] for i in chunk]), dtype=np.float32)
    )
