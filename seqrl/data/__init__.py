"""Offline RL data: one ``datasets.Dataset`` row per environment step, with metadata, from any source."""

from seqrl.data.schema import DatasetMetadata, DatasetValidationError, get_metadata
from seqrl.data.sources import load_dataset
from seqrl.data.validation import validate

__all__ = ["DatasetMetadata", "DatasetValidationError", "get_metadata", "load_dataset", "validate"]
