"""The built-in Pendulum dataset, generated once per session into a temporary Minari root."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import pytest

from seqrl.data.sources import load_dataset, save_dataset


@pytest.fixture(scope="session")
def pendulum_builtin(builtin_minari_root, tmp_path_factory) -> Path:
    """``seqrl/pendulum/mixed-v0`` (random, medium and expert episodes), saved as a datasets folder."""
    with mock.patch.dict(os.environ, {"MINARI_DATASETS_PATH": str(builtin_minari_root)}):
        dataset = load_dataset("seqrl/pendulum/mixed-v0")
    folder = tmp_path_factory.mktemp("builtin") / "pendulum-mixed"
    save_dataset(dataset, folder)
    return folder
