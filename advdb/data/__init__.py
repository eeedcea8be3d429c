"""Datasets behind a registry: ``create_dataset(name, ...)``, ``list_datasets()``."""

from advdb.data.base import ImageDataset
from advdb.data.datasets import create_dataset, list_datasets

__all__ = ["ImageDataset", "create_dataset", "list_datasets"]
