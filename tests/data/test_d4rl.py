"""Loading D4RL-style logs (hdf5/npz files and dicts of arrays) as seqrl datasets (all data made here)."""

from __future__ import annotations

import gymnasium as gym
import h5py
import numpy as np
import pytest

from seqrl.data.d4rl import from_d4rl
from seqrl.data.schema import dataset_to_numpy, get_metadata
from seqrl.data.sources import DatasetSourceError, load_dataset


def _d4rl_arrays(with_next: bool) -> dict[str, np.ndarray]:
    """9 steps: episode A rows 0-2 terminates, B rows 3-5 times out, C rows 6-8 is cut by the end of the log.
    Row 2 has both flags (a termination). Observations count up, so the expected values are easy to write."""
    observations = np.arange(27, dtype=np.float32).reshape(9, 3)
    arrays = {
        "observations": observations,
        "actions": np.linspace(-2, 2, 9, dtype=np.float32).reshape(9, 1),
        "rewards": np.arange(9, dtype=np.float32),
        "terminals": np.array([0, 0, 1, 0, 0, 0, 0, 0, 0], bool),
        "timeouts": np.array([0, 0, 1, 0, 0, 1, 0, 0, 0], bool),
    }
    if with_next:
        arrays["next_observations"] = observations + 100
    return arrays


def test_d4rl_hdf5_round_trip_keeps_termination_and_truncation_apart(tmp_path):
    arrays = _d4rl_arrays(with_next=True)
    path = tmp_path / "pendulum.hdf5"
    with h5py.File(path, "w") as file:
        for key, values in arrays.items():
            file[key] = values
        file.attrs.update({"env_id": "Pendulum-v1", "ref_min_score": -1200.0, "ref_max_score": -150.0})
    ds = load_dataset(str(path))
    columns = dataset_to_numpy(ds)
    np.testing.assert_array_equal(columns["episode_index"], [0, 0, 0, 1, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(columns["timestep"], [0, 1, 2, 0, 1, 2, 0, 1, 2])
    np.testing.assert_array_equal(columns["terminations"], [0, 0, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(columns["truncations"], [0, 0, 0, 0, 0, 1, 0, 0, 1])
    for name in ("observations", "next_observations", "actions", "rewards"):
        np.testing.assert_array_equal(columns[name], arrays[name].reshape(columns[name].shape), err_msg=name)
    metadata = get_metadata(ds)
    assert (metadata.env_id, metadata.ref_min_score, metadata.ref_max_score) == ("Pendulum-v1", -1200.0, -150.0)
    assert metadata.dataset_id == "pendulum" and metadata.action_space_obj == gym.make("Pendulum-v1").action_space
    overridden = load_dataset(str(path), ref_max_score=0.0)
    assert get_metadata(overridden).ref_max_score == 0.0


def test_d4rl_npz_without_next_observations(tmp_path):
    path = tmp_path / "log.npz"
    np.savez(path, **_d4rl_arrays(with_next=False))
    ds = load_dataset(str(path))
    columns = dataset_to_numpy(ds)
    # A keeps its 3 steps (terminal: s' of the last step repeats s); B and C drop their last step, whose s'
    # is unknown, and end one step earlier with a truncation.
    np.testing.assert_array_equal(columns["episode_index"], [0, 0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(columns["timestep"], [0, 1, 2, 0, 1, 0, 1])
    np.testing.assert_array_equal(columns["rewards"], [0, 1, 2, 3, 4, 6, 7])
    np.testing.assert_array_equal(columns["terminations"], [0, 0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(columns["truncations"], [0, 0, 0, 0, 1, 0, 1])
    observations = np.arange(27, dtype=np.float32).reshape(9, 3)
    np.testing.assert_array_equal(columns["observations"], observations[[0, 1, 2, 3, 4, 6, 7]])
    np.testing.assert_array_equal(columns["next_observations"], observations[[1, 2, 2, 4, 5, 7, 8]])
    metadata = get_metadata(ds)
    assert metadata.env_spec is None and metadata.dataset_id == "log" and metadata.action_dim == 1


def test_d4rl_missing_keys_and_integer_actions():
    with pytest.raises(DatasetSourceError, match=r"lacks the arrays \['timeouts'\]"):
        from_d4rl({key: value for key, value in _d4rl_arrays(True).items() if key != "timeouts"})
    arrays = {**_d4rl_arrays(True), "actions": np.array([0, 1, 2, 0, 1, 2, 0, 1, 2])}
    metadata = get_metadata(from_d4rl(arrays))
    assert metadata.is_discrete and metadata.action_dim == 3


def test_env_kwargs_need_an_env_and_reach_the_one_the_file_names(tmp_path):
    path = tmp_path / "log.hdf5"
    with h5py.File(path, "w") as file:
        for key, values in _d4rl_arrays(True).items():
            file[key] = values
    with pytest.raises(DatasetSourceError, match=r"env kwargs \{'g': 5.0\} were given, but the dataset 'log' names no "
                                                 "environment for them; name one with --data.env_id ID"):
        load_dataset(path, env_kwargs={"g": 5.0})
    with h5py.File(path, "a") as file:
        file.attrs["env_id"] = "Pendulum-v1"
    metadata = get_metadata(load_dataset(path, env_kwargs={"g": 5.0}))
    assert metadata.env_id == "Pendulum-v1" and '"g": 5.0' in metadata.env_spec
