"""The discrete value-based algorithms learn CartPole from the built-in mixed dataset (random, medium
and expert episodes, mean return about 205), trained and evaluated end to end by the training loop."""

from __future__ import annotations

import json
import os
from unittest import mock

import pytest
import torch

from seqrl import registry
from seqrl.training.cli import parse_train_args
from seqrl.training.loop import train

from ..conftest import REPO

DISCRETE_VALUE_BASED = [name for name in registry.names()
                        if registry.get(name).algorithm.supports_discrete
                        and registry.get(name).algorithm.data_shape == "transition"]


@pytest.fixture
def one_thread():
    """The networks are small: one thread is faster than two, and far faster on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.parametrize("name", DISCRETE_VALUE_BASED)
def test_discrete_algorithm_learns_cartpole_from_mixed_data(name, builtin_minari_root, tmp_path, one_thread):
    # A discrete-only form needs nothing but `--algo NAME` to find its shipped CartPole job
    # (configs/<family>/cartpole-mixed.yaml); the others default to Pendulum, so they are given the file.
    config = [] if not registry.get(name).algorithm.supports_continuous else [
        "--config", str(REPO / "configs" / name / "cartpole-mixed.yaml")]
    with mock.patch.dict(os.environ, {"MINARI_DATASETS_PATH": str(builtin_minari_root)}):
        cfg = parse_train_args([*config, "--algo", name, "--output_dir", str(tmp_path / "run"), "--steps", "3000",
                                "--checkpoint_every", "0", "--eval.episodes", "10", "--eval.num_envs", "10"],
                               config_dir=REPO / "configs")
        assert cfg.data.dataset == "seqrl/cartpole/mixed-v0"
        run = train(cfg)
    result = json.loads((run / "eval_info.json").read_text())["results"][0]
    # Random play lasts about 22 steps and the data's episodes 205 on average; 500 is the cap.
    assert result["return_mean"] >= 400, result
