"""Shared fixtures: small real-environment datasets saved as `datasets` folders, and a clean
Accelerate state for tests that call the training loop in-process."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from unittest import mock

import gymnasium as gym
import numpy as np
import pytest
import torch
from minari.serialization import serialize_space

from seqrl.data.collect import collect, write_minari
from seqrl.data.schema import DatasetMetadata
from seqrl.data.sources import load_dataset, save_dataset

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """Under pytest-xdist, each worker gets its share of the cores (and so do the processes it starts):
    two workers that each run torch on every core oversubscribe the machine, and OpenMP's spinning
    threads then make both several times slower."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


def shared_tmp(tmp_path_factory) -> Path:
    """The folder every pytest-xdist worker of this session shares (without xdist, the session's own)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if "PYTEST_XDIST_WORKER" in os.environ else base


@contextlib.contextmanager
def exclusive(tmp_path_factory, name: str):
    """Hold the session-wide lock ``name`` (shared by the xdist workers) for the duration of the block."""
    with open(shared_tmp(tmp_path_factory) / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture
def one_launch_at_a_time(tmp_path_factory):
    """Multi-process launches (torchrun) take turns: two at once on one machine can meet on a port or starve
    each other's gloo connections, and each already uses both cores."""
    with exclusive(tmp_path_factory, "torchrun"):
        yield


def _collected_dataset(root: Path, env_id: str, dataset_id: str, episodes: int) -> Path:
    """Scripted episodes with noise (varied returns) from the built-in collector, saved to disk."""
    with mock.patch.dict(os.environ, {"MINARI_DATASETS_PATH": str(root / "minari")}):
        buffers = collect(env_id, "scripted", episodes=episodes, seed=0, noise=0.5)
        write_minari(dataset_id, buffers, env_id, ref_min_score=-1200.0 if "Pendulum" in env_id else 20.0,
                     ref_max_score=-150.0 if "Pendulum" in env_id else 500.0)
        dataset = load_dataset(dataset_id)
    folder = root / dataset_id.replace("/", "_")
    save_dataset(dataset, folder)
    return folder


def make_metadata(obs_dim=3, act_dim=2, discrete=False, action_space=None, **overrides) -> DatasetMetadata:
    """Metadata of a synthetic dataset: an unbounded Box of ``obs_dim`` observations, and ``action_space``
    (default: ``Discrete(act_dim)`` or ``Box(-1, 1, (act_dim,))``); ``overrides`` replace fields."""
    if action_space is None:
        action_space = gym.spaces.Discrete(act_dim) if discrete else gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32)
    fields = dict(
        dataset_id="test/synthetic-v0",
        env_spec=None,
        observation_space=serialize_space(gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)),
        action_space=serialize_space(action_space),
    )
    return DatasetMetadata(**{**fields, **overrides})


@pytest.fixture(scope="session")
def builtin_minari_root(tmp_path_factory) -> Path:
    """One Minari root for this worker's tests that use the built-in datasets (``seqrl/pendulum/mixed-v0``,
    ``seqrl/cartpole/mixed-v0``): each is generated there on first use and read back after."""
    return tmp_path_factory.mktemp("builtin-minari")


@pytest.fixture(scope="session")
def pendulum_dir(tmp_path_factory) -> Path:
    """12 noisy scripted Pendulum-v1 episodes (continuous actions, 2400 steps)."""
    return _collected_dataset(tmp_path_factory.mktemp("pendulum"), "Pendulum-v1", "test/pendulum-v0", 12)


@pytest.fixture(scope="session")
def cartpole_dir(tmp_path_factory) -> Path:
    """Noisy scripted CartPole-v1 episodes (discrete actions)."""
    return _collected_dataset(tmp_path_factory.mktemp("cartpole"), "CartPole-v1", "test/cartpole-v0", 12)


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Accelerate keeps process-wide singletons; reset them so every in-process run starts clean."""
    from accelerate.state import AcceleratorState, GradientState, PartialState

    yield
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    PartialState._reset_state()
