"""Datasets behind a registry: ``create_dataset(name, ...)``, ``list_datasets()``."""

from advdb.data.base import ImageDataset
from advdb.data.datasets import create_dataset, list_datasets, reopen_dataset

__all__ = ["ImageDataset", "create_dataset", "list_datasets", "reopen_dataset"]
