"""Tests for the built-in collector: controllers, episode buffers, noise, Minari writing, CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import gymnasium as gym
import minari
import numpy as np
import pytest

from seqrl.data.collect import (
    CollectError,
    DatasetExistsError,
    collect,
    dataset_exists,
    episode_returns,
    main,
    write_minari,
)
from seqrl.data.controllers import BehaviourPolicy, BehaviourPolicyError, apply_noise
from seqrl.envs import EnvError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


# --- controllers -------------------------------------------------------------------------------
def test_pendulum_scripted_controller_swings_up_and_balances():
    expert = episode_returns(collect("Pendulum-v1", "scripted", 8, seed=0, num_envs=8))
    random = episode_returns(collect("Pendulum-v1", "random", 16, seed=0, num_envs=8))
    assert expert.mean() > -300, expert
    assert random.mean() < -900, random


def test_cartpole_scripted_controller_reaches_the_time_limit():
    expert = episode_returns(collect("CartPole-v1", "scripted", 4, seed=0))
    random = episode_returns(collect("CartPole-v1", "random", 16, seed=0))
    assert expert.mean() >= 475, expert
    assert random.mean() < 60, random


# --- episode buffers ---------------------------------------------------------------------------
def test_pendulum_buffers_hold_t_plus_one_observations_and_truncate_at_the_time_limit():
    buffers = collect("Pendulum-v1", "scripted", 3, seed=1, noise=0.2, num_envs=2)
    assert [b.id for b in buffers] == [0, 1, 2]
    for b in buffers:
        assert b.observations.shape == (201, 3) and b.observations.dtype == np.float32
        assert b.actions.shape == (200, 1) and b.actions.dtype == np.float32
        assert b.rewards.shape == b.terminations.shape == b.truncations.shape == (200,)
        assert not b.terminations.any()
        assert b.truncations[-1] and not b.truncations[:-1].any()


def test_cartpole_buffers_end_on_the_real_final_observation_not_a_reset():
    buffers = collect("CartPole-v1", "random", 12, seed=3, num_envs=4)
    env = gym.make("CartPole-v1")
    for b in buffers:
        steps = len(b.rewards)
        assert b.observations.shape == (steps + 1, 4) and b.actions.shape == (steps,)
        assert b.actions.dtype == np.int64 and set(np.unique(b.actions)) <= {0, 1}
        assert b.terminations[-1] and not b.terminations[:-1].any() and not b.truncations.any()
        # The stored last observation is the one that ended the episode: pole past 12 deg or cart off track.
        x, angle = b.observations[-1, 0], b.observations[-1, 2]
        assert abs(angle) > 12 * 2 * np.pi / 360 or abs(x) > 2.4
        # Each episode starts from the reset observation of its recorded seed.
        first, _ = env.reset(seed=b.seed)
        np.testing.assert_array_equal(b.observations[0], first)
        # Replaying the actions from that seed reproduces the stored observations and rewards.
        for t, action in enumerate(b.actions):
            obs, reward, *_ = env.step(int(action))
            np.testing.assert_array_equal(b.observations[t + 1], obs)
            assert b.rewards[t] == reward


def test_behaviour_policy_sees_previous_rewards_and_episode_starts():
    class Recorder(BehaviourPolicy):
        def __init__(self):
            self.calls = []

        def reset(self, num_envs):
            self.num_envs = num_envs

        def act(self, observations, rewards, episode_starts, rngs):
            self.calls.append((rewards.copy(), episode_starts.copy()))
            return np.zeros((len(observations), 1), dtype=np.float32)

    recorder = Recorder()
    buffers = collect("Pendulum-v1", recorder, 4, seed=0, num_envs=2)
    assert recorder.num_envs == 2
    rewards, starts = zip(*recorder.calls)
    assert starts[0].all() and starts[200].all() and not np.any(starts[1:200])
    np.testing.assert_array_equal(rewards[0], 0.0)
    np.testing.assert_allclose(rewards[1], [buffers[0].rewards[0], buffers[1].rewards[0]])
    np.testing.assert_array_equal(rewards[200], 0.0)  # a new episode starts with no reward


def test_same_seed_reproduces_the_data_whatever_the_number_of_envs():
    first = collect("Pendulum-v1", "scripted", 5, seed=7, noise=0.3, num_envs=2)
    again = collect("Pendulum-v1", "scripted", 5, seed=7, noise=0.3, num_envs=5)
    other = collect("Pendulum-v1", "scripted", 5, seed=8, noise=0.3, num_envs=2)
    for a, b in zip(first, again):
        assert a.seed == b.seed
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.actions, b.actions)
    assert first[0].seed != other[0].seed
    assert not np.array_equal(first[0].actions, other[0].actions)


def test_dict_observations_are_kept_as_dicts_and_the_policy_sees_them_flat():
    import tests.custom_envs  # noqa: F401  (registers DictPendulum-v0)

    class Recorder(BehaviourPolicy):
        def reset(self, num_envs):
            self.seen = []

        def act(self, observations, rewards, episode_starts, rngs):
            self.seen.append(observations.copy())
            return np.zeros((len(observations), 1), dtype=np.float32)

    recorder = Recorder()
    buffers = collect("DictPendulum-v0", recorder, 3, seed=0, num_envs=2, env_kwargs={"max_steps": 5})
    episode = buffers[0].observations  # {"angle": [T+1, 2], "velocity": [T+1, 1]}
    assert set(episode) == {"angle", "velocity"} and episode["angle"].shape == (6, 2) and len(buffers[2].rewards) == 5
    assert recorder.seen[0].shape == (2, 3)  # flat: the two Boxes concatenated, in the Dict's key order
    np.testing.assert_array_equal(recorder.seen[0][0], np.concatenate([episode["angle"][0], episode["velocity"][0]]))
    again = collect("tests.custom_envs:DictPendulumEnv", "random", 3, seed=0, num_envs=3, env_kwargs={"max_steps": 5})
    other = collect("tests.custom_envs:DictPendulumEnv", "random", 3, seed=0, num_envs=1, env_kwargs={"max_steps": 5})
    for a, b in zip(again, other):
        np.testing.assert_array_equal(a.observations["velocity"], b.observations["velocity"])


# --- noise -------------------------------------------------------------------------------------
def test_gaussian_noise_is_scaled_to_the_action_range_and_clipped():
    space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    rngs = [np.random.default_rng(i) for i in range(4000)]
    small = apply_noise(np.zeros((4000, 1), np.float32), space, 0.1, rngs)
    assert small.dtype == np.float32
    assert abs(small.std() - 0.1 * 2.0) < 0.01  # sigma = noise * (high - low) / 2
    large = apply_noise(np.full((4000, 1), 1.9, np.float32), space, 3.0, rngs)
    assert large.min() >= -2.0 and large.max() <= 2.0 and (large == 2.0).any()
    buffers = collect("Pendulum-v1", "scripted", 2, seed=0, noise=3.0)
    actions = np.concatenate([b.actions for b in buffers])
    assert actions.min() >= -2.0 and actions.max() <= 2.0


def test_epsilon_noise_replaces_discrete_actions_at_the_given_rate():
    space = gym.spaces.Discrete(4)
    rngs = [np.random.default_rng(i) for i in range(4000)]
    unchanged = apply_noise(np.zeros(4000, np.int64), space, 0.0, rngs)
    np.testing.assert_array_equal(unchanged, 0)
    noisy = apply_noise(np.zeros(4000, np.int64), space, 0.4, rngs)
    # A replaced action is uniform over 4 ids, so it differs from 0 with probability 3/4.
    assert abs((noisy != 0).mean() - 0.4 * 0.75) < 0.03
    assert noisy.min() >= 0 and noisy.max() <= 3


def test_invalid_requests_raise_clear_errors():
    with pytest.raises(EnvError, match="Unknown gymnasium environment 'Pendulum-v9'.*Pendulum-v1"):
        collect("Pendulum-v9", "random", 1, seed=0)
    with pytest.raises(BehaviourPolicyError, match=r"No scripted controller for env 'MountainCar-v0'.*CartPole-v1"):
        collect("MountainCar-v0", "scripted", 1, seed=0)
    with pytest.raises(BehaviourPolicyError, match="epsilon"):
        collect("CartPole-v1", "random", 1, seed=0, noise=1.5)
    with pytest.raises(BehaviourPolicyError, match="Unknown policy 'no/such/folder'"):
        collect("CartPole-v1", "no/such/folder", 1, seed=0)
    with pytest.raises(CollectError, match="seed must be a non-negative integer"):
        collect("CartPole-v1", "random", 1, seed=-1)


# --- writing Minari datasets -------------------------------------------------------------------
def test_write_minari_round_trips_and_refuses_to_overwrite(minari_root):
    buffers = collect("CartPole-v1", "scripted", 3, seed=0, noise=0.5)
    dataset = write_minari("test/cartpole/noisy-v0", buffers, "CartPole-v1", ref_min_score=20.0, ref_max_score=500.0)
    assert dataset.total_episodes == 3 and dataset.total_steps == sum(len(b.rewards) for b in buffers)
    assert dataset.storage.metadata["ref_min_score"] == 20.0 and dataset.storage.metadata["ref_max_score"] == 500.0
    loaded = minari.load_dataset("test/cartpole/noisy-v0")
    for episode, buffer in zip(loaded.iterate_episodes(), buffers):
        np.testing.assert_array_equal(episode.observations, buffer.observations)
        np.testing.assert_array_equal(episode.actions, buffer.actions)
        np.testing.assert_array_equal(episode.terminations, buffer.terminations)
    assert "test/cartpole/noisy-v0" in minari.list_local_datasets()
    with pytest.raises(DatasetExistsError, match="minari delete test/cartpole/noisy-v0"):
        write_minari("test/cartpole/noisy-v0", buffers, "CartPole-v1")
    assert [p.name for p in minari_root.iterdir()] == ["test"]  # no staging folder left behind


def test_interrupted_write_leaves_no_dataset(minari_root, monkeypatch):
    def fail_midway(dataset_id, buffer, **kwargs):
        path = minari.storage.get_dataset_path(dataset_id) / "data"
        path.mkdir(parents=True)
        (path / "main_data.hdf5").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(minari, "create_dataset_from_buffers", fail_midway)
    buffers = collect("CartPole-v1", "random", 2, seed=0)
    with pytest.raises(KeyboardInterrupt):
        write_minari("test/broken-v0", buffers, "CartPole-v1")
    assert not dataset_exists("test/broken-v0")
    assert list(minari_root.iterdir()) == []
    assert os.environ["MINARI_DATASETS_PATH"] == str(minari_root)


# --- command line ------------------------------------------------------------------------------
def test_cli_writes_a_loadable_dataset_and_refuses_an_existing_id(minari_root, capsys):
    argv = ["--env_id", "Pendulum-v1", "--policy", "scripted", "--episodes", "3", "--noise", "0.1",
            "--seed", "0", "--dataset_id", "test/pendulum/cli-v0"]
    main(argv)
    assert "Wrote 'test/pendulum/cli-v0': 3 episodes, 600 steps" in capsys.readouterr().out
    assert minari.load_dataset("test/pendulum/cli-v0").total_episodes == 3
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "already exists" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--env_id", "Acrobot-v1", "--policy", "scripted", "--episodes", "1", "--dataset_id", "test/a-v0"])
    assert "Scripted controllers exist for ['CartPole-v1', 'Pendulum-v1']" in capsys.readouterr().err


def test_cli_runs_as_a_module(minari_root):
    env = {**os.environ, "PYTHONPATH": REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [sys.executable, "-m", "seqrl.data.collect", "--env_id", "CartPole-v1", "--policy", "random",
               "--episodes", "4", "--dataset_id", "test/cartpole/random-v0"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert minari.load_dataset("test/cartpole/random-v0").total_episodes == 4
