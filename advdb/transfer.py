"""Transferability: the stored adversarial images of attack runs, shown to another classifier.

Per image, the other model's prediction, its softmax of the attack's target and of the true
class, whether it predicts the target (*targeted* transfer) and whether it no longer
predicts the true class (*untargeted* transfer). The paper expects CE's images, which stop
being pushed once confidently the target (S3), to transfer less than the logit sources'
(Section V); ``advdb report transfer`` and the findings measure it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from advdb.attacks.stats import prediction
from advdb.devices import resolve_device
from advdb.errors import ConfigError
from advdb.evaluation import EvaluationFields, Rows, create_evaluation_run, evaluate, logits_of, source_images
from advdb.execution import prepare
from advdb.models.classifiers import LoadedClassifier, create_classifier
from advdb.models.resize import ResizedInput
from advdb.progress import AttackProgress
from advdb.spec import BUILT_IN_ARCHITECTURES
from advdb.store.catalogue import get_dataset, register_classifier
from advdb.store.engine import Store
from advdb.store.records import AttackedImageRecord
from advdb.store.runs import resumable_run, set_status


@dataclass(kw_only=True)
class TransferSpec(EvaluationFields):
    """Everything that defines a transfer run (stored in full as its configuration)."""

    model: str = "digits-cnn-seed1"
    weights: str | None = None
    seed: int = 0  # of a torchvision model's random weights (``--weights random``)

    def validate(self) -> None:
        self.check_common()


def _rows_of(model: torch.nn.Module, device: torch.device, batch_size: int):  # noqa: ANN202
    def rows(chunk: list[AttackedImageRecord], x: torch.Tensor) -> Rows:
        logits = logits_of(model, x, device, batch_size)
        p, k = torch.softmax(logits, dim=1), torch.arange(len(chunk))
        targets = torch.tensor([img.target for img in chunk])
        pred = prediction(logits, targets).tolist()  # as the attack decided its stored prediction (a tie: no target)
        p_target = p[k, targets].tolist()
        p_label = p[k, torch.tensor([img.label for img in chunk])].tolist()
        return [
            {
                "source_run_id": img.run_id,
                "image_id": img.image_id,
                "pred": pred[i],
                "p_target": p_target[i],
                "p_label": p_label[i],
                "targeted": pred[i] == img.target,
                "untargeted": pred[i] != img.label,
            }
            for i, img in enumerate(chunk)
        ]

    return rows


def _evaluate(
    store: Store,
    run_id: int,
    spec: TransferSpec,
    loaded: tuple[list[AttackedImageRecord], LoadedClassifier, list[int] | None],
    prior: float,
    progress: AttackProgress | None,
) -> int:
    images, clf, resize = loaded
    device = resolve_device(spec.device)
    clf.to(device).module.eval()
    model = prepare(clf.module, device, spec.execution)
    if resize:
        model = ResizedInput(model, (resize[1], resize[1]))
    return evaluate(
        store,
        run_id,
        "transfer",
        images,
        _rows_of(model, device, spec.batch_size),
        chunk_size=spec.batch_size,
        resume=f"advdb transfer --resume {run_id}",
        prior_seconds=prior,
        progress=progress,
        label=f"onto {spec.model}",
    )


def _load(
    store: Store, spec: TransferSpec
) -> tuple[list[AttackedImageRecord], LoadedClassifier, int, list[int] | None]:
    """The sources' images (every file checked) and the model, checked to take them; and, for a
    model trained at another size, the resize on the way in ([from, to] pixels, else None)."""
    images, dataset_id = source_images(store, spec, what="transfer runs")
    clf = create_classifier(spec.model, weights=spec.weights, seed=spec.seed)
    ds = get_dataset(store, dataset_id)
    assert ds is not None
    if clf.architecture in BUILT_IN_ARCHITECTURES and tuple(ds.image_shape) != tuple(clf.input_shape):
        raise ConfigError(f"model {clf.name} takes {clf.input_shape} images, the sources' are {tuple(ds.image_shape)}")
    if int(ds.image_shape[0]) != clf.input_shape[0] or ds.n_classes > clf.num_classes:
        raise ConfigError(
            f"model {clf.name} ({clf.input_shape[0]} channels, {clf.num_classes} classes) cannot classify dataset "
            f"{ds.name} ({ds.image_shape[0]} channels, {ds.n_classes} classes)"
        )
    size, native = int(ds.image_shape[-1]), clf.input_shape[-1]
    resize = [size, native] if clf.resize_input and size != native else None
    return images, clf, dataset_id, resize


def run_transfer(store: Store, spec: TransferSpec, *, progress: AttackProgress | None = None) -> int:
    """Show the sources' stored images to ``spec.model``; returns the transfer run's id.

    Everything is checked (the sources, every file's sha256, the model) before the run exists.
    """
    spec.validate()
    images, clf, dataset_id, resize = _load(store, spec)
    run_id = create_evaluation_run(
        store,
        "transfer",
        spec,
        name=f"transfer onto {spec.model}",
        n_images=len(images),
        resolved={"resize": resize} if resize else {},
        versions=clf.versions,
        classifier_id=register_classifier(store, **clf.catalogue_fields()),
        dataset_id=dataset_id,
        seed=spec.seed,
    )
    return _evaluate(store, run_id, spec, (images, clf, resize), 0.0, progress)


def resume_transfer(store: Store, run_id: int, *, progress: AttackProgress | None = None) -> int:
    """Continue an interrupted transfer run with the images it has not stored yet."""
    run = resumable_run(store, run_id, "transfer")
    spec = TransferSpec.from_config(run.config)
    spec.validate()
    images, clf, _, resize = _load(store, spec)
    set_status(store, run_id, "running")
    return _evaluate(store, run_id, spec, (images, clf, resize), run.wall_seconds or 0.0, progress)
