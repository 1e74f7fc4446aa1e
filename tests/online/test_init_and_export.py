"""--init_from restarts target networks from the loaded weights (every registered algorithm), carries
critics over from a run's checkpoint, every online-capable algorithm runs an online phase, and the
episodes collected online save as a dataset that loads again."""

from __future__ import annotations

import json
import os
from unittest import mock

import numpy as np
import pytest
import torch

from seqrl import registry
from seqrl.data.schema import get_metadata
from seqrl.data.sources import load_dataset
from seqrl.training.cli import parse_train_args
from seqrl.training.loop import train
from seqrl.training.setup import initialize_from

NAMES = registry.names()


def dataset_for(entry, pendulum_dir, cartpole_dir):
    return pendulum_dir if entry.algorithm.supports_continuous else cartpole_dir


@pytest.mark.parametrize("name", [n for n in NAMES if registry.get(n).algorithm.targets])
def test_init_from_restarts_targets_from_the_loaded_weights(name, pendulum_dir, cartpole_dir, tmp_path):
    entry = registry.get(name)
    metadata = get_metadata(load_dataset(dataset_for(entry, pendulum_dir, cartpole_dir)))
    torch.manual_seed(0)
    trained = entry.algorithm(entry.config(), metadata)
    trained.policy().save_pretrained(tmp_path / "policy")
    torch.manual_seed(1)  # another init: its targets copy weights that are not the loaded ones
    fresh = entry.algorithm(entry.config(), metadata)
    initialize_from(fresh, str(tmp_path / "policy"), log=lambda message: None)
    for target, online in entry.algorithm.targets.items():
        loaded, copy = fresh.get_submodule(online).state_dict(), getattr(fresh, target).state_dict()
        assert all(torch.equal(loaded[k], copy[k]) for k in loaded), f"{name}: {target} is not a copy of {online}"
    for key, value in trained.policy().state_dict().items():
        assert torch.equal(fresh.policy().state_dict()[key], value)


def test_init_from_a_run_folder_carries_the_critics(pendulum_dir, tmp_path):
    args = ["--algo", "iql", "--data.dataset", str(pendulum_dir), "--algo.batch_size", "16",
            "--algo.actor_hidden_sizes", "[16]", "--algo.critic_hidden_sizes", "[16]", "--eval.final", "false"]
    run = train(parse_train_args([*args, "--steps", "20", "--output_dir", str(tmp_path / "run")]))
    entry = registry.get("iql")
    messages = []
    fresh = entry.algorithm(entry.config(actor_hidden_sizes=[16], critic_hidden_sizes=[16]),
                            get_metadata(load_dataset(pendulum_dir)))
    initialize_from(fresh, str(run), log=messages.append)
    assert "every trained module" in messages[0]
    from safetensors.torch import load_file

    saved = load_file(str(run / "checkpoints" / "step-00000020" / "model.safetensors"))
    assert torch.equal(fresh.value.state_dict()["net.0.weight"] if "net.0.weight" in fresh.value.state_dict() else
                       next(iter(fresh.value.state_dict().values())),
                       saved[f"value.{next(iter(fresh.value.state_dict()))}"])
    assert all(torch.equal(v, saved[f"critic.{k}"]) for k, v in fresh.critic.state_dict().items())
    assert all(torch.equal(v, saved[f"critic.{k}"]) for k, v in fresh.critic_target.state_dict().items())


@pytest.mark.parametrize("name", [n for n in NAMES if registry.get(n).algorithm.supports_online])
def test_every_online_algorithm_runs_an_online_phase(name, pendulum_dir, cartpole_dir, tmp_path):
    entry = registry.get(name)
    data = dataset_for(entry, pendulum_dir, cartpole_dir)
    run = train(parse_train_args(
        ["--algo", name, "--data.dataset", str(data), "--output_dir", str(tmp_path / "run"), "--steps", "4",
         "--algo.batch_size", "8", "--log_every", "5", "--eval.episodes", "1", "--eval.num_envs", "1",
         "--online.env_steps", "250", "--online.updates_per_step", "0.1", "--online.updates_per_round", "5"]))
    history = json.loads((run / "online_returns.json").read_text())
    assert history["summary"]["env_steps"] >= 250 and history["episodes"]
    assert registry.load_policy(run).config.algo == name


def test_collected_episodes_save_as_datasets(pendulum_dir, tmp_path):
    args = ["--algo", "iql", "--data.dataset", str(pendulum_dir), "--algo.batch_size", "8", "--steps", "2",
            "--algo.actor_hidden_sizes", "[16]", "--algo.critic_hidden_sizes", "[16]", "--eval.final", "false",
            "--online.env_steps", "500", "--online.num_envs", "2", "--online.updates_per_step", "0.05"]
    with mock.patch.dict(os.environ, {"MINARI_DATASETS_PATH": str(tmp_path / "minari")}):
        folder_run = train(parse_train_args([*args, "--output_dir", str(tmp_path / "a"),
                                             "--online.save_dataset", str(tmp_path / "online-data")]))
        train(parse_train_args([*args, "--output_dir", str(tmp_path / "b"), "--online.save_dataset",
                                "test/pendulum-online-v0"]))
        as_folder, as_minari = load_dataset(tmp_path / "online-data"), load_dataset("test/pendulum-online-v0")
    history = json.loads((folder_run / "online_returns.json").read_text())
    for dataset in (as_folder, as_minari):
        assert len(dataset) == 500  # every env step, none twice (episodes in progress end as truncated)
        assert get_metadata(dataset).env_id == "Pendulum-v1"
        rewards = np.asarray(dataset["rewards"])
        starts = np.flatnonzero(np.r_[True, np.diff(np.asarray(dataset["episode_index"])) != 0])
        finished = [r for _, r, _ in history["episodes"]]  # the logged, finished episodes come first
        np.testing.assert_allclose(np.add.reduceat(rewards, starts)[:len(finished)], finished, rtol=1e-5)
        # the two episodes in progress at the end are kept, cut as truncated
        assert len(starts) == len(finished) + 2 and np.asarray(dataset["truncations"])[-1]
