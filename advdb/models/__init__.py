"""Classifiers behind a registry: ``create_classifier(name, ...)``, ``list_classifiers()``."""

from advdb.models.classifiers import LoadedClassifier, create_classifier, default_dataset, list_classifiers

__all__ = ["LoadedClassifier", "create_classifier", "default_dataset", "list_classifiers"]
