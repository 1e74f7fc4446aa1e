"""Hugging Face Hub support: push policies (with a model card) and datasets, and load datasets back.

Policies load from the Hub with :func:`seqrl.registry.load_policy` (``"user/repo"``), like folders.
Command line: ``seqrl-hub push RUN_DIR REPO_ID`` and ``seqrl-hub push_dataset SOURCE REPO_ID``.
"""

from seqrl.hub.cards import dataset_card, model_card
from seqrl.hub.data import load_dataset_from_hub, push_dataset
from seqrl.hub.errors import (
    ForeignRepoError,
    HubAuthError,
    HubConnectionError,
    HubError,
)
from seqrl.hub.push import push_policy
from seqrl.hub.run_folder import read_run_folder

__all__ = [
    "ForeignRepoError",
    "HubAuthError",
    "HubConnectionError",
    "HubError",
    "dataset_card",
    "load_dataset_from_hub",
    "model_card",
    "push_dataset",
    "push_policy",
    "read_run_folder",
]
