"""The online phase's environment: any env seqrl.envs names (a user's own, Dict observations included), and
settings that name an env that cannot work fail before the offline steps, not after them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seqrl.data import collect as collector
from seqrl.envs import EnvError
from seqrl.training.checkpoint import latest_checkpoint
from seqrl.training.cli import parse_train_args
from seqrl.training.loop import train

from ..scripts import load_script, run_script
from .test_reliability import TINY_IQL, iql_args, online_state


@pytest.mark.parametrize("env_id, message", [
    ("NoSuchEnv-v0", "Unknown gymnasium environment 'NoSuchEnv-v0'"),
    ("CartPole-v1", "environment 'CartPole-v1' does not fit the dataset"),
])
def test_an_online_env_that_cannot_work_fails_before_any_training(env_id, message, pendulum_dir, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(EnvError, match=message):
        train(parse_train_args(iql_args(pendulum_dir, run, "--online.env_steps", "100", "--online.env_id", env_id,
                                        steps=50)))
    assert latest_checkpoint(run) is None  # nothing trained: the check ran at start


def test_a_custom_dict_env_is_fine_tuned_online_with_flat_observations(tmp_path, monkeypatch, capfd):
    """Data collected in the user's Dict-observation env (registered by --env_import), then IQL fine-tuned online
    in the same env: the online episodes hold the flattened observations the offline columns hold."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    code, _, err = run_script(collector.main, [
        "--env_import", "tests.custom_envs", "--env_id", "DictPendulum-v0", "--policy", "random", "--episodes", "4",
        "--num_envs", "2", "--dataset_id", "test/dictpendulum/random-v0"], capfd)
    assert code == 0, err[-3000:]

    run = tmp_path / "run"
    code, _, err = run_script(load_script("train").main, [
        "--env_import", "tests.custom_envs", *TINY_IQL, "--data.dataset", "test/dictpendulum/random-v0",
        "--steps", "20", "--output_dir", str(run), "--online.env_steps", "100", "--online.checkpoint_every", "0"], capfd)
    assert code == 0, err[-3000:]
    columns, counters = online_state(latest_checkpoint(run))
    assert counters["env_steps"] == 100 and columns["observations"].shape == (100, 3)  # 2 episodes of 50 steps
    angle = columns["observations"][:, :2]  # the Dict's "angle" part: cos and sin of the angle
    np.testing.assert_allclose((angle ** 2).sum(1), 1.0, rtol=1e-5)


def test_the_policy_records_the_env_it_was_fine_tuned_in(pendulum_dir, tmp_path):
    """Data from Pendulum-v1, fine-tuned in Pendulum-v1 with another gravity: the saved policy (and so its final
    evaluation and evaluate.py) names the fine-tuning env, not the data's."""
    run = train(parse_train_args(iql_args(pendulum_dir, tmp_path / "run", "--online.env_steps", "50",
                                          "--online.env_id", "Pendulum-v1", "--online.env_kwargs", '{"g": 5.0}')))
    config = json.loads((run / "config.json").read_text())
    assert (config["env_id"], config["env_kwargs"]) == ("Pendulum-v1", {"g": 5.0})
