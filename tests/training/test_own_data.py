"""A user's own data through train.py and evaluate.py: a D4RL-style file that names no environment, given one
with --data.env_id or trained without any, evaluated in another env, and files that cannot be read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import h5py
import numpy as np
import pytest

from seqrl.data.collect import collect
from seqrl.data.schema import get_metadata
from seqrl.online.phase import online_env
from seqrl.training.cli import parse_train_args
from seqrl.training.data import load_training_data

from ..conftest import REPO
from ..scripts import run_script

IQL_TINY = ["--algo", "iql", "--steps", "50", "--algo.batch_size", "32", "--algo.actor_hidden_sizes", "[16]",
            "--algo.critic_hidden_sizes", "[16]", "--checkpoint_every", "0", "--log_every", "25",
            "--eval.episodes", "2", "--eval.num_envs", "2"]


def d4rl_arrays(episodes: int = 4) -> dict[str, np.ndarray]:
    """Noisy scripted Pendulum episodes from the built-in collector, as the flat D4RL arrays of a robot's log."""
    buffers = collect("Pendulum-v1", "scripted", episodes=episodes, seed=0, noise=0.5)
    return {
        "observations": np.concatenate([b.observations[:-1] for b in buffers]),
        "next_observations": np.concatenate([b.observations[1:] for b in buffers]),
        "actions": np.concatenate([b.actions for b in buffers]).astype(np.float32),
        "rewards": np.concatenate([b.rewards for b in buffers]).astype(np.float32),
        "terminals": np.concatenate([b.terminations for b in buffers]),
        "timeouts": np.concatenate([b.truncations for b in buffers]),
    }


def write_hdf5(path, arrays: dict[str, np.ndarray]):
    with h5py.File(path, "w") as file:  # no env_id attribute: the file names no environment
        for key, values in arrays.items():
            file[key] = values
    return path


@pytest.fixture(scope="module")
def log_file(tmp_path_factory):
    arrays = d4rl_arrays()
    return write_hdf5(tmp_path_factory.mktemp("log") / "robot.hdf5", arrays), arrays


@pytest.fixture(scope="module")
def envless_run(log_file, tmp_path_factory):
    """train.py on the file with no environment at all, as its own process (its exit status is the point)."""
    run = tmp_path_factory.mktemp("envless") / "run"
    result = subprocess.run([sys.executable, "train.py", "--data.dataset", str(log_file[0]), *IQL_TINY,
                             "--output_dir", str(run)], cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    return run, result


def test_file_without_env_trains_iql_with_data_env_id_and_evaluates(log_file, tmp_path, train_script, capfd):
    run = tmp_path / "run"
    code, out, err = run_script(train_script.main, ["--data.dataset", str(log_file[0]), "--data.env_id", "Pendulum-v1",
                                                    *IQL_TINY, "--output_dir", str(run)], capfd)
    assert code == 0, err[-3000:]
    config = json.loads((run / "config.json").read_text())
    assert config["env_id"] == "Pendulum-v1"
    assert (config["action_low"], config["action_high"]) == ([-2.0], [2.0])  # the env's bounds, not the data's
    report = json.loads((run / "eval_info.json").read_text())
    assert report["env_id"] == "Pendulum-v1"
    assert report["results"][0]["episodes"] == 2 and report["results"][0]["episode_length_mean"] == 200.0
    assert "Evaluation skipped" not in out


def test_online_fine_tuning_defaults_to_the_env_given_for_the_data(log_file):
    cfg = parse_train_args(["--algo", "iql", "--data.dataset", str(log_file[0]), "--data.env_id", "Pendulum-v1",
                            "--data.env_kwargs", '{"g": 5.0}', "--online.env_steps", "10"])
    metadata = get_metadata(load_training_data(cfg, print))
    assert online_env(cfg.online, metadata) == ("Pendulum-v1", {"g": 5.0})


def test_file_without_any_env_trains_with_the_data_bounds_and_skips_evaluation(envless_run, log_file):
    run, result = envless_run
    assert result.returncode == 0, result.stderr[-3000:]
    actions = log_file[1]["actions"]
    config = json.loads((run / "config.json").read_text())
    assert config["env_id"] is None
    assert config["action_low"] == pytest.approx([float(actions.min())])
    assert config["action_high"] == pytest.approx([float(actions.max())])
    assert "they are bounded by the data's own range" in result.stdout
    skipped = [line for line in result.stdout.splitlines() if line.startswith("Evaluation skipped")]
    assert skipped == [f"Evaluation skipped: the dataset names no environment. Evaluate the policy in one with "
                       f"`python evaluate.py --policy {run} --env_id ENV_ID`."]
    assert result.stdout.strip().splitlines()[-1] == str(run.resolve())
    assert (run / "model.safetensors").is_file() and not (run / "eval_info.json").exists()


def test_evaluate_env_id_runs_the_policy_in_pendulum_with_another_g(envless_run, tmp_path, evaluate_script, capfd):
    run, result = envless_run
    assert result.returncode == 0, result.stderr[-3000:]
    code, _, err = run_script(evaluate_script.main, ["--policy", str(run), "--episodes", "1"], capfd)
    last = err.strip().splitlines()[-1]  # after transformers' weight-loading bar
    assert code == 2 and last.startswith("error: The policy's config names no environment") and "--env_id" in last
    reports = {}
    for name, kwargs in (("g10", []), ("g5", ["--env_kwargs", '{"g": 5.0}'])):
        output = tmp_path / f"{name}.json"
        code, _, err = run_script(evaluate_script.main, ["--policy", str(run), "--env_id", "Pendulum-v1", *kwargs,
                                                         "--episodes", "2", "--num_envs", "2", "--seed", "3",
                                                         "--device", "cpu", "--output", str(output)], capfd)
        assert code == 0, err[-3000:]
        reports[name] = json.loads(output.read_text())
    assert reports["g5"]["env_id"] == "Pendulum-v1" and reports["g5"]["results"][0]["episodes"] == 2
    # The same seeds and the same policy: only the gravity differs, so the returns do.
    assert reports["g5"]["results"][0]["returns"] != reports["g10"]["results"][0]["returns"]


def _truncated(path, arrays):
    data = write_hdf5(path, arrays).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path, "the file is truncated"


def _not_hdf5(path, arrays):
    path.write_text("episode,step,reward\n0,0,1.0\n")
    return path, "it is not an HDF5 file"


def _wrong_keys(path, arrays):
    renamed = {("obs" if key == "observations" else key): value for key, value in arrays.items()}
    return write_hdf5(path, renamed), "lacks the arrays ['observations'] (it holds ['actions', 'next_observations', "


def _not_npz(path, arrays):
    path = path.with_suffix(".npz")
    np.savez(path, **arrays)
    path.write_bytes(path.read_bytes()[:300])
    return path, "it is not a complete .npz archive"


@pytest.mark.parametrize("damage", [_truncated, _not_hdf5, _wrong_keys, _not_npz])
def test_unreadable_files_give_one_error_line(damage, log_file, tmp_path, train_script, capfd):
    path, problem = damage(tmp_path / "log.hdf5", log_file[1])
    code, out, err = run_script(train_script.main, ["--data.dataset", str(path), "--steps", "1",
                                                    "--output_dir", str(tmp_path / "run")], capfd)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: "), err  # one line: no traceback, no HDF5 diagnostics
    assert f"D4RL-style file {path}" in err and problem in err


def test_infinite_observation_is_refused_before_any_statistics_warning(log_file, tmp_path, train_script, capfd):
    arrays = {**log_file[1], "observations": log_file[1]["observations"].copy()}
    arrays["observations"][250, 1] = np.inf  # episode 1, step 50
    path = write_hdf5(tmp_path / "inf.hdf5", arrays)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, err = run_script(train_script.main, ["--data.dataset", str(path), "--steps", "1",
                                                      "--output_dir", str(tmp_path / "run")], capfd)
    assert code == 2
    assert err.startswith("error: column 'observations': NaN or inf values in episode 1 at timestep 50"), err
    assert err.count("\n") == 1
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]
