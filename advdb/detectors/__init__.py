"""Detector retraining (Section V, Tables II and III).

A binary classifier — class 0 genuine, class 1 adversarial — trained on the *stored*
adversarial image files of one or more attack runs and the genuine images they came from.

* single source (Table II): each attacked image and its adversarial twin; the split is by
  image, so twins never fall on different sides;
* all sources (Table III): every source's adversarial images plus genuine images — the
  attacked ones and extra images of the same dataset — to balance the classes; again
  split by image (all versions of one image on one side), in the same proportion per class.

Every file's sha256 is checked before training; a missing or changed file is an error that
names it. Every epoch is logged to ``detector_epochs``; per-group accuracies of the best
epoch go to ``detector_results``. A checkpoint after each epoch makes the run resumable.
The run's configuration records the weights a torchvision detector started from
(``resolved.pretrained``).

* :mod:`~advdb.detectors.spec`: :class:`DetectorSpec`, what defines a run;
* :mod:`~advdb.detectors.data`: the genuine and adversarial examples (:func:`build_items`) and their :func:`split`;
* :mod:`~advdb.detectors.model`: the detector networks (:func:`build_detector`);
* :mod:`~advdb.detectors.training`: the train/evaluate loop, resume, the sweep and the best of a sweep.
"""

from advdb.detectors.data import Items, build_items, split
from advdb.detectors.model import build_detector, pretrained_weights
from advdb.detectors.spec import SMALL_ARCH, DetectorSpec
from advdb.detectors.training import (
    _Training,
    best_detector,
    group_accuracies,
    resume_detector,
    sweep_detector,
    train_detector,
)

__all__ = [
    "SMALL_ARCH",
    "DetectorSpec",
    "Items",
    "_Training",
    "best_detector",
    "build_detector",
    "build_items",
    "group_accuracies",
    "pretrained_weights",
    "resume_detector",
    "split",
    "sweep_detector",
    "train_detector",
]
