"""Giving a dataset its environment or action bounds (seqrl.data.binding, --data.env_id, --data.action_low/high),
with the errors of bad input: an env whose spaces do not fit the data, bounds of the wrong length, a named env
that cannot be made."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec
from minari.serialization import deserialize_space

from seqrl.data.binding import ActionBoundsError
from seqrl.data.schema import build_dataset, get_metadata
from seqrl.data.sources import load_dataset, save_dataset
from seqrl.envs import EnvError
from seqrl.training.cli import parse_train_args
from seqrl.training.data import load_training_data

from ..conftest import make_metadata
from .conftest import make_columns
from .test_d4rl import _d4rl_arrays


@pytest.fixture
def log_npz(tmp_path):
    """A D4RL-style file of 3-value observations and 1-D actions in [-2, 2] that names no environment."""
    path = tmp_path / "log.npz"
    np.savez(path, **_d4rl_arrays(with_next=True))
    return path


def test_env_given_for_the_data_sets_its_spaces_and_kwargs(log_npz, pendulum_dir):
    metadata = get_metadata(load_dataset(log_npz, env_id="Pendulum-v1", env_kwargs={"g": 5.0}))
    assert metadata.env_id == "Pendulum-v1" and metadata.action_space_obj == gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    assert '"g": 5.0' in metadata.env_spec
    # A dataset that names Pendulum-v1 trained for an env with other dynamics: the env replaces the named one.
    replaced = get_metadata(load_dataset(pendulum_dir, env_id="tests.custom_envs:DictPendulumEnv"))
    assert replaced.env_id == "tests.custom_envs:DictPendulumEnv" and replaced.obs_dim == 3
    original = deserialize_space(replaced.original_observation_space)
    assert isinstance(original, gym.spaces.Dict)  # kept beside the flat Box the model sees


def test_an_env_whose_spaces_do_not_fit_the_data_fails_showing_both(log_npz, pendulum_dir):
    with pytest.raises(EnvError) as error:
        load_dataset(log_npz, env_id="CartPole-v1")
    message = str(error.value)
    assert "environment 'CartPole-v1' does not fit the D4RL data 'log'" in message
    assert "(4 values flattened) and 2 discrete actions" in message
    assert "has observations of 3 values and 1-dimensional continuous actions" in message
    with pytest.raises(EnvError, match=r"'MountainCarContinuous-v0' does not fit the dataset 'test/pendulum-v0'.*"
                                       r"\(2 values flattened\).*observations of 3 values"):
        load_dataset(pendulum_dir, env_id="MountainCarContinuous-v0")


def test_action_bounds_of_the_wrong_length(log_npz):
    cfg = parse_train_args(["--data.dataset", str(log_npz), "--data.action_low", "[-1.0, -1.0]",
                            "--data.action_high", "[1.0, 1.0]"])
    with pytest.raises(ActionBoundsError, match=r"--data.action_low has 2 value\(s\) but the dataset 'log' has "
                                                r"1-dimensional actions"):
        load_training_data(cfg, print)


def test_bounds_come_from_the_flags_or_else_from_the_data(log_npz):
    lines = []
    given = load_training_data(parse_train_args(["--data.dataset", str(log_npz), "--data.action_low", "[-3.0]",
                                                 "--data.action_high", "[3.0]"]), lines.append)
    assert get_metadata(given).action_space_obj == gym.spaces.Box(-3.0, 3.0, (1,), np.float32) and lines == []
    from_data = get_metadata(load_training_data(parse_train_args(["--data.dataset", str(log_npz)]), lines.append))
    assert from_data.action_space_obj == gym.spaces.Box(-2.0, 2.0, (1,), np.float32)  # linspace(-2, 2) in the log
    assert len(lines) == 1 and "names no environment: they are bounded by the data's own range" in lines[0]


def test_a_named_env_that_cannot_be_made_fails_before_training(tmp_path):
    spec = EnvSpec("RobotArm-v3", entry_point="robots.envs:Arm")
    metadata = make_metadata(obs_dim=3, act_dim=2, env_spec=spec.to_json(), env_import=["robots.envs"])
    save_dataset(build_dataset(make_columns(), metadata), tmp_path / "arm")
    with pytest.raises(EnvError, match=r"the dataset 'test/synthetic-v0' names the environment 'RobotArm-v3' for "
                                       r"evaluation, which cannot be made here: Unknown gymnasium environment.*"
                                       r"Its metadata names the module\(s\) \['robots.envs'\]"):
        load_training_data(parse_train_args(["--data.dataset", str(tmp_path / "arm")]), print)
    dataset = load_training_data(parse_train_args(["--data.dataset", str(tmp_path / "arm"), "--eval.final", "false"]),
                                 print)
    assert get_metadata(dataset).env_id == "RobotArm-v3"  # without evaluation no env is needed
