"""Fixtures for the training tests: train.py and evaluate.py loaded as modules, to run their command lines
in the test process (see tests/scripts.py)."""

from __future__ import annotations

from types import ModuleType

import pytest

from ..scripts import load_script


@pytest.fixture(scope="session")
def train_script() -> ModuleType:
    return load_script("train")


@pytest.fixture(scope="session")
def evaluate_script() -> ModuleType:
    return load_script("evaluate")
