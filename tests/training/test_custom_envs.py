"""A user's own environment (tests.custom_envs) with Dict and Tuple observations, end to end: collected with the
built-in collector, trained, saved and evaluated, reached through --env_import or an entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import gymnasium as gym
import minari
import numpy as np
import pytest

from seqrl.data import collect as collector
from seqrl.data.schema import dataset_to_numpy, get_metadata
from seqrl.data.sources import load_dataset

from ..conftest import REPO
from ..scripts import run_script

DT_TINY = ["--algo", "dt", "--steps", "30", "--algo.hidden_size", "16", "--algo.n_layer", "1",
           "--algo.context_len", "5", "--algo.batch_size", "8", "--log_every", "10", "--checkpoint_every", "0",
           "--eval.episodes", "2", "--eval.num_envs", "2", "--eval.target_returns", "[-300.0]"]
BC_TINY = ["--algo", "bc", "--steps", "30", "--algo.hidden_sizes", "[16]", "--algo.batch_size", "16",
           "--log_every", "10", "--checkpoint_every", "0", "--eval.episodes", "2", "--eval.num_envs", "2"]


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


def test_dict_env_is_collected_trained_and_evaluated_through_env_import(minari_root, tmp_path, train_script, capfd):
    code, _, err = run_script(collector.main, [
        "--env_import", "tests.custom_envs", "--env_id", "DictPendulum-v0", "--policy", "random", "--episodes", "6",
        "--num_envs", "3", "--dataset_id", "test/dictpendulum/random-v0"], capfd)
    assert code == 0, err[-3000:]
    recorded = minari.load_dataset("test/dictpendulum/random-v0")
    space = recorded.observation_space
    assert isinstance(space, gym.spaces.Dict) and set(space.spaces) == {"angle", "velocity"}
    episode = next(recorded.iterate_episodes())
    assert set(episode.observations) == {"angle", "velocity"} and episode.observations["angle"].shape == (51, 2)
    ds = load_dataset("test/dictpendulum/random-v0")
    metadata = get_metadata(ds)
    assert metadata.env_id == "DictPendulum-v0" and metadata.obs_dim == 3
    flat = np.stack([gym.spaces.flatten(space, {k: v[t] for k, v in episode.observations.items()}) for t in range(50)])
    np.testing.assert_array_equal(dataset_to_numpy(ds)["observations"][:50], flat)  # the model sees flat vectors

    run = tmp_path / "dt"
    code, out, err = run_script(train_script.main, ["--env_import", "tests.custom_envs", "--data.dataset",
                                                    "test/dictpendulum/random-v0", *DT_TINY, "--output_dir", str(run)],
                                capfd)
    assert code == 0, err[-3000:]
    config = json.loads((run / "config.json").read_text())
    assert (config["env_id"], config["env_import"]) == ("DictPendulum-v0", ["tests.custom_envs"])
    assert config["state_dim"] == 3  # the flattened Dict
    assert json.loads((run / "eval_info.json").read_text())["results"][0]["episode_length_mean"] == 50.0

    # A new process knows nothing of tests.custom_envs: the policy folder alone names the env again.
    output = tmp_path / "eval.json"
    result = subprocess.run([sys.executable, "evaluate.py", "--policy", str(run), "--target_returns", "-300",
                             "--episodes", "2", "--num_envs", "2", "--output", str(output)],
                            cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    assert report["env_id"] == "DictPendulum-v0"
    rows = [(r["target_return"], r["episodes"], r["episode_length_mean"]) for r in report["results"]]
    assert rows == [(-300.0, 2, 50.0)]


def test_tuple_env_through_an_entry_point_in_the_collector_train_and_evaluate(minari_root, tmp_path, train_script,
                                                                             evaluate_script, capfd):
    entry_point, kwargs = "tests.custom_envs:DictPendulumEnv", {"as_tuple": True, "max_steps": 30}
    code, _, err = run_script(collector.main, [
        "--env_id", entry_point, "--env_kwargs", json.dumps(kwargs), "--policy", "random", "--episodes", "4",
        "--num_envs", "2", "--dataset_id", "test/tuplependulum/random-v0"], capfd)
    assert code == 0, err[-3000:]
    assert isinstance(minari.load_dataset("test/tuplependulum/random-v0").observation_space, gym.spaces.Tuple)

    run = tmp_path / "bc"
    code, _, err = run_script(train_script.main, ["--data.dataset", "test/tuplependulum/random-v0", *BC_TINY,
                                                  "--output_dir", str(run)], capfd)
    assert code == 0, err[-3000:]
    config = json.loads((run / "config.json").read_text())
    assert (config["env_id"], config["env_kwargs"]) == (entry_point, kwargs)
    assert json.loads((run / "eval_info.json").read_text())["results"][0]["episode_length_mean"] == 30.0
    output = tmp_path / "eval.json"
    code, _, err = run_script(evaluate_script.main, ["--policy", str(run), "--env_kwargs", '{"max_steps": 20}',
                                                     "--episodes", "2", "--num_envs", "2", "--output", str(output)],
                              capfd)
    assert code == 0, err[-3000:]
    # --env_kwargs go on top of the saved ones: as_tuple stays, max_steps changes
    assert json.loads(output.read_text())["results"][0]["episode_length_mean"] == 20.0
