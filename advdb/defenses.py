"""Input-transformation defenses: the stored adversarial images of attack runs, transformed and
shown again to the classifier they fooled.

Per image and strength of one transformation (:mod:`advdb.transforms`): is the transformed
adversarial image still the target (the attack survives), and is the same transformation of
the genuine image still its true class (what the defense costs). Strength 0 is the image
untouched, so each curve starts from the attack's own success. The paper expects CE's
images, which end nearer the decision boundary (S3), to break more easily than the logit
sources' (Section V); ``advdb report defenses`` and the findings measure it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from advdb.attacks.stats import prediction
from advdb.data import ImageDataset
from advdb.devices import resolve_device
from advdb.evaluation import (
    EvaluationFields,
    Rows,
    attacked_classifier,
    create_evaluation_run,
    evaluate,
    genuine_batch,
    load_dataset,
    logits_of,
    source_images,
    source_runs,
)
from advdb.execution import prepare
from advdb.models.classifiers import LoadedClassifier
from advdb.plugins import versions_of
from advdb.progress import AttackProgress
from advdb.store.catalogue import image_indices
from advdb.store.engine import Store
from advdb.store.records import AttackedImageRecord
from advdb.store.runs import resumable_run, set_status
from advdb.transforms import Transform, check_transform_params, create_transform


@dataclass(kw_only=True)
class DefenseSpec(EvaluationFields):
    """Everything that defines a defense run (stored in full as its configuration)."""

    transform: str = "jpeg"
    strengths: list[float] = field(default_factory=list)  # empty: the transformation's default sweep
    params: dict[str, Any] = field(default_factory=dict)  # the transformation's hyperparameters (a plugin's)

    def validate(self) -> Transform:
        self.check_common()
        self.params = check_transform_params(self.transform, self.params)
        t = create_transform(self.transform, **self.params)
        self.strengths = t.check(self.strengths or list(t.default_strengths))
        return t


class _Rows:
    """A chunk's rows: every strength of the transformation on its adversarial images and their
    genuine originals (each genuine image computed once per run and strength, however many
    sources attacked it)."""

    def __init__(self, model: torch.nn.Module, spec: DefenseSpec, transform: Transform, genuine: Any) -> None:
        self.model, self.spec, self.transform, self.genuine = model, spec, transform, genuine
        self.device = resolve_device(spec.device)
        self.genuine_pred: dict[tuple[int, float], int] = {}

    def _predict(self, x: torch.Tensor, strength: float, targets: torch.Tensor | None = None) -> list[int]:
        """Predictions of the transformed ``x``; with ``targets``, a tie with the target is no target
        (the attacks' rule, :func:`advdb.attacks.stats.prediction`)."""
        z = logits_of(self.model, self.transform(x, strength), self.device, self.spec.batch_size)
        return (z.argmax(1) if targets is None else prediction(z, targets)).tolist()

    def _genuine(self, chunk: list[AttackedImageRecord], strength: float) -> list[int]:
        todo = list(dict.fromkeys(i.image_id for i in chunk if (i.image_id, strength) not in self.genuine_pred))
        if todo:
            first = {i.image_id: i for i in chunk}
            preds = self._predict(self.genuine([first[image_id] for image_id in todo]), strength)
            self.genuine_pred.update({(image_id, strength): p for image_id, p in zip(todo, preds, strict=True)})
        return [self.genuine_pred[i.image_id, strength] for i in chunk]

    def __call__(self, chunk: list[AttackedImageRecord], x: torch.Tensor) -> Rows:
        rows: Rows = []
        targets = torch.tensor([img.target for img in chunk])
        for strength in self.spec.strengths:
            adv, gen = self._predict(x, strength, targets), self._genuine(chunk, strength)
            rows += [
                {
                    "source_run_id": img.run_id,
                    "image_id": img.image_id,
                    "strength": strength,
                    "adv_pred": adv[k],
                    "genuine_pred": gen[k],
                    "still_target": adv[k] == img.target,
                    "genuine_correct": gen[k] == img.label,
                }
                for k, img in enumerate(chunk)
            ]
        return rows


@dataclass
class _Loaded:
    """What a defense run works from, every part checked."""

    transform: Transform
    images: list[AttackedImageRecord]
    dataset_id: int
    classifier_id: int
    clf: LoadedClassifier
    genuine: ImageDataset


def _load(store: Store, spec: DefenseSpec) -> _Loaded:
    """The transformation, the sources' images (every file checked), the classifier they attacked and
    their genuine images' data set."""
    transform = spec.validate()
    images, dataset_id = source_images(store, spec, what="defense runs")
    runs, _ = source_runs(store, spec.sources, what="defense runs")
    clf = attacked_classifier(store, runs)
    genuine = load_dataset(store, dataset_id)
    return _Loaded(transform, images, dataset_id, int(runs[0].classifier_id or 0), clf, genuine)


def _evaluate(
    store: Store, run_id: int, spec: DefenseSpec, loaded: _Loaded, prior: float, progress: AttackProgress | None
) -> int:
    device = resolve_device(spec.device)
    loaded.clf.to(device).module.eval()
    ds, index_of = loaded.genuine, image_indices(store, loaded.dataset_id)
    model = prepare(loaded.clf.module, device, spec.execution)
    rows = _Rows(model, spec, loaded.transform, lambda chunk: genuine_batch(ds, index_of, chunk))
    return evaluate(
        store,
        run_id,
        "defense",
        loaded.images,
        rows,
        chunk_size=spec.batch_size,
        resume=f"advdb defend --resume {run_id}",
        prior_seconds=prior,
        progress=progress,
        label=f"{spec.transform} × {len(spec.strengths)}",
    )


def run_defense(store: Store, spec: DefenseSpec, *, progress: AttackProgress | None = None) -> int:
    """Transform the sources' stored images at each strength and classify them again; returns the run id.

    The sources, every file's sha256 and the attacked classifier's weights are checked before the run exists.
    """
    loaded = _load(store, spec)
    run_id = create_evaluation_run(
        store,
        "defense",
        spec,
        name=f"defense {spec.transform}",
        n_images=len(loaded.images),
        classifier_id=loaded.classifier_id,
        dataset_id=loaded.dataset_id,
        versions=versions_of({"transform": spec.transform}),  # a plugin's distribution and version
    )
    return _evaluate(store, run_id, spec, loaded, 0.0, progress)


def resume_defense(store: Store, run_id: int, *, progress: AttackProgress | None = None) -> int:
    """Continue an interrupted defense run with the images it has not stored yet."""
    run = resumable_run(store, run_id, "defense")
    spec = DefenseSpec.from_config(run.config)
    loaded = _load(store, spec)
    set_status(store, run_id, "running")
    return _evaluate(store, run_id, spec, loaded, run.wall_seconds or 0.0, progress)
