"""Fixtures for the data tests: synthetic episodes, small Minari datasets in a temporary Minari root."""

from __future__ import annotations

import warnings

import minari
import numpy as np
import pytest
from minari.data_collector import EpisodeBuffer

from seqrl.data.schema import build_dataset

from ..conftest import make_metadata


def make_columns(lengths=(4, 3, 5), obs_dim=3, act_dim=2, discrete=False, seed=0) -> dict[str, np.ndarray]:
    """Valid schema columns: episodes of the given lengths; even episodes terminate, odd ones are truncated."""
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths)
    num_steps = int(lengths.sum())
    episode_index = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.cumsum(lengths) - lengths
    ends = starts + lengths - 1
    terminations = np.zeros(num_steps, bool)
    truncations = np.zeros(num_steps, bool)
    terminations[ends[0::2]] = True
    truncations[ends[1::2]] = True
    if discrete:
        actions = rng.integers(0, act_dim, num_steps)
    else:
        actions = rng.uniform(-1, 1, (num_steps, act_dim)).astype(np.float32)
    return {
        "episode_index": episode_index,
        "timestep": np.arange(num_steps) - np.repeat(starts, lengths),
        "observations": rng.normal(size=(num_steps, obs_dim)).astype(np.float32),
        "actions": actions,
        "rewards": rng.normal(size=num_steps).astype(np.float32),
        "terminations": terminations,
        "truncations": truncations,
        "next_observations": rng.normal(size=(num_steps, obs_dim)).astype(np.float32),
    }


def make_dataset(lengths=(4, 3, 5), obs_dim=3, act_dim=2, discrete=False, **column_edits):
    """A built dataset whose columns are replaced by ``column_edits`` (e.g. to break one value)."""
    columns = {**make_columns(lengths, obs_dim, act_dim, discrete), **column_edits}
    return build_dataset(columns, make_metadata(obs_dim, act_dim, discrete)), columns


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    """An empty Minari datasets folder, used by minari.load_dataset through MINARI_DATASETS_PATH."""
    root = tmp_path / "minari"
    root.mkdir()
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def write_minari(dataset_id, episodes, observation_space, action_space, **kwargs) -> minari.MinariDataset:
    """Write episodes (dicts with observations [T+1, ...], actions, rewards, terminations, truncations)."""
    buffers = [
        EpisodeBuffer(
            id=index,
            observations=episode["observations"],
            actions=episode["actions"],
            rewards=list(episode["rewards"]),
            terminations=list(episode["terminations"]),
            truncations=list(episode["truncations"]),
        )
        for index, episode in enumerate(episodes)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # minari warns about every unset descriptive field
        return minari.create_dataset_from_buffers(
            dataset_id, buffers, observation_space=observation_space, action_space=action_space,
            algorithm_name="test", author="seqrl tests", author_email="tests@example.com",
            code_permalink="https://example.com", description="test data", **kwargs,
        )


def box_episodes(lengths=(4, 6), obs_dim=3, act_dim=2, seed=0) -> list[dict]:
    """Episodes for Box spaces; the first terminates, the others are truncated."""
    rng = np.random.default_rng(seed)
    episodes = []
    for number, length in enumerate(lengths):
        terminations = np.zeros(length, bool)
        truncations = np.zeros(length, bool)
        (terminations if number == 0 else truncations)[-1] = True
        episodes.append({
            "observations": rng.normal(size=(length + 1, obs_dim)).astype(np.float32),
            "actions": rng.uniform(-1, 1, (length, act_dim)).astype(np.float32),
            "rewards": rng.normal(size=length).astype(np.float32),
            "terminations": terminations,
            "truncations": truncations,
        })
    return episodes


# The helpers as fixtures, so that test modules need not import this conftest by name.
@pytest.fixture(name="make_columns")
def _make_columns_fixture():
    return make_columns


@pytest.fixture(name="make_metadata")
def _make_metadata_fixture():
    return make_metadata


@pytest.fixture(name="make_dataset")
def _make_dataset_fixture():
    return make_dataset


@pytest.fixture(name="write_minari")
def _write_minari_fixture():
    return write_minari


@pytest.fixture(name="box_episodes")
def _box_episodes_fixture():
    return box_episodes
