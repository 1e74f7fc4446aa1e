"""Trajectory Transformer training: the token sampler's values and windows, the schedule, errors at start,
and SIGKILL then --resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from seqrl.algos.tt import TrajectoryDataError, TTConfig
from seqrl.data.d4rl import from_d4rl
from seqrl.data.samplers import TokenSampler
from seqrl.data.sources import save_dataset
from seqrl.models.trajectory_transformer.planner import PlannerConfigError
from seqrl.parsing import ConfigError
from seqrl.training.checkpoint import latest_checkpoint
from seqrl.training.cli import parse_train_args
from seqrl.training.loop import train
from seqrl.training.setup import build_schedule

from ..conftest import REPO

TINY_TT = ["--algo", "tt", "--algo.hidden_size", "16", "--algo.n_layer", "1", "--algo.n_head", "2", "--algo.window", "3",
           "--algo.n_bins", "16", "--algo.batch_size", "8", "--algo.warmup_steps", "2", "--log_every", "2",
           "--eval.final", "false"]


def episodes(lengths, terminal_last=(True,), obs_dim=3, seed=0):
    """D4RL-style arrays of episodes of the given lengths; episode i terminates if terminal_last[i % len]."""
    rng = np.random.default_rng(seed)
    steps = sum(lengths)
    terminals, timeouts = np.zeros(steps, bool), np.zeros(steps, bool)
    for i, end in enumerate(np.cumsum(lengths) - 1):
        (terminals if terminal_last[i % len(terminal_last)] else timeouts)[end] = True
    return {"observations": rng.normal(size=(steps, obs_dim)).astype(np.float32),
            "actions": rng.uniform(-1, 1, (steps, 1)).astype(np.float32),
            "rewards": rng.uniform(0, 1, steps).astype(np.float32), "terminals": terminals, "timeouts": timeouts}


def test_values_are_discounted_rewards_from_the_next_step_with_the_termination_penalty():
    dataset = from_d4rl(episodes([5, 7, 3], terminal_last=(True, False)), "Pendulum-v1")
    sampler = TokenSampler(dataset, window=2, batch_size=4, gamma=0.9, termination_penalty=-100.0)
    columns = sampler.transition_columns()  # [N, obs + act + 2]
    all_rewards, terminated = np.asarray(dataset["rewards"], np.float64), np.asarray(dataset["terminations"])
    assert terminated.sum() == 2 and len(sampler.episode_starts) == 3  # one episode ends by a time limit
    for start, length in zip(sampler.episode_starts, sampler.episode_lengths):
        rewards = all_rewards[start:start + length].copy()
        rewards[terminated[start:start + length]] = -100.0  # the reference replaces the terminal reward
        expected = [sum(0.9 ** k * r for k, r in enumerate(rewards[t + 1:])) for t in range(length)]
        np.testing.assert_allclose(columns[start:start + length, -2], rewards, rtol=1e-6)
        np.testing.assert_allclose(columns[start:start + length, -1], expected, rtol=1e-5, atol=1e-4)


def test_windows_run_past_the_episode_end_into_stop_tokens():
    arrays = episodes([5, 7])
    sampler = TokenSampler(from_d4rl(arrays, "Pendulum-v1"), window=4, batch_size=2)
    columns = sampler.transition_columns()
    sampler.tokenize(lambda block: np.clip(np.floor(block * 3 + 5), 0, 9), 10, "test", columns)
    batch = sampler.windows(np.array([3, 5]))  # row 3: two steps left in episode 0; row 5: episode 1's start
    dims = columns.shape[1]
    assert batch["valid"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert batch["timesteps"].tolist() == [[3, 4, 5, 6], [0, 1, 2, 3]]
    tokens = batch["tokens"].reshape(2, 4, dims)
    assert (tokens[0, 2:] == 10).all() and (tokens[0, :2] < 10).all()  # the stop token after the end
    np.testing.assert_array_equal(tokens[1], sampler.tokens[5:9])


def _factors(schedule: str, warmup: int = 10, total: int | None = 110) -> list[float]:
    """The learning-rate multiplier of each step under ``build_schedule`` (transformers' get_scheduler)."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = build_schedule(optimizer, TTConfig(warmup_steps=warmup, lr_schedule=schedule, min_lr_ratio=0.1), total)
    factors = []
    for _ in range(total or 500):
        factors.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return factors


def test_cosine_schedule_warms_up_then_decays_to_the_floor():
    factors = _factors("cosine")
    assert factors[0] == 0.0 and factors[5] == pytest.approx(0.5) and factors[10] == pytest.approx(1.0)
    assert factors[60] == pytest.approx(0.55, abs=0.01) and factors[-1] == pytest.approx(0.1, abs=0.01)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert _factors("constant")[-1] == 1.0 and _factors("cosine", total=None)[-1] == 1.0  # nothing to decay towards
    linear = _factors("linear")
    assert linear[60] == pytest.approx(0.5) and linear[-1] == pytest.approx(0.01)


def test_training_prints_the_discretisers_round_trip_error(pendulum_dir, tmp_path, capsys):
    train(parse_train_args([*TINY_TT, "--data.dataset", str(pendulum_dir), "--output_dir", str(tmp_path / "run"),
                            "--steps", "2", "--checkpoint_every", "0"]))
    out = capsys.readouterr().out
    assert "Discretiser: quantile, 16 bins per dimension" in out
    for name in ("observation[2]", "action[0]", "reward[0]", "value[0]"):
        assert name in out


def test_a_dataset_shorter_than_one_window_fails_at_start(tmp_path):
    save_dataset(from_d4rl(episodes([3, 2]), "Pendulum-v1"), tmp_path / "short")
    with pytest.raises(TrajectoryDataError, match="fewer than one window of 10 transitions; collect more data or lower --algo.window"):
        train(parse_train_args(["--algo", "tt", "--data.dataset", str(tmp_path / "short"), "--output_dir",
                                str(tmp_path / "run"), "--steps", "2"]))


def test_nan_in_the_data_fails_at_start_even_without_validation(tmp_path):
    arrays = episodes([20, 20])
    arrays["rewards"][25] = np.nan
    save_dataset(from_d4rl(arrays, "Pendulum-v1"), tmp_path / "nan")
    with pytest.raises(TrajectoryDataError, match=r"NaN or infinite values in reward\[0\], value\[0\]"):
        train(parse_train_args([*TINY_TT, "--data.dataset", str(tmp_path / "nan"), "--data.validate", "false",
                                "--output_dir", str(tmp_path / "run"), "--steps", "2"]))


@pytest.mark.parametrize("flag, value, message", [
    ("--algo.planner.beam_width", "0", "planner.beam_width must be at least 1"),
    ("--algo.planner.context", "9", "planner.context 9 is longer than the model's training window of 3"),
])
def test_a_planner_setting_that_cannot_work_fails_before_training(pendulum_dir, tmp_path, flag, value, message):
    with pytest.raises(PlannerConfigError, match=message):
        train(parse_train_args([*TINY_TT, "--data.dataset", str(pendulum_dir), "--output_dir", str(tmp_path / "run"),
                                "--steps", "2", flag, value]))
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow
def test_sigkill_then_resume_continues_a_tt_run(pendulum_dir, tmp_path):
    run = tmp_path / "run"
    args = [*TINY_TT, "--data.dataset", str(pendulum_dir), "--output_dir", str(run), "--checkpoint_every", "3",
            "--keep_checkpoints", "100"]
    process = subprocess.Popen([sys.executable, "train.py", *args, "--steps", "100000"], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and len(list((run / "checkpoints").glob("step-*"))) < 2:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    last = int(latest_checkpoint(run).name.split("-")[1])
    result = subprocess.run([sys.executable, "train.py", *args, "--steps", str(last + 3), "--resume"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"at step {last}" in result.stdout + result.stderr
    assert json.loads((latest_checkpoint(run) / "trainer_state.json").read_text()) == {"step": last + 3}
    assert (run / "model.safetensors").is_file() and not list((run / "checkpoints").glob(".tmp-*"))


def _evaluate_main():
    import importlib.util

    spec = importlib.util.spec_from_file_location("evaluate_script", REPO / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_evaluate_overrides_the_saved_planner_settings_and_plans_in_bf16(pendulum_dir, tmp_path, capsys):
    run = train(parse_train_args([*TINY_TT, "--data.dataset", str(pendulum_dir), "--output_dir", str(tmp_path / "run"),
                                  "--steps", "2", "--checkpoint_every", "0"]))
    evaluate = _evaluate_main()
    output = tmp_path / "eval.json"
    evaluate(["--policy", str(run), "--episodes", "1", "--num_envs", "1", "--planner", "beam_width=2", "horizon=1",
              "--mixed_precision", "bf16", "--output", str(output)])
    assert json.loads(output.read_text())["results"][0]["episodes"] == 1
    with pytest.raises(PlannerConfigError, match="planner.beam_width must be at least 1"):
        evaluate(["--policy", str(run), "--planner", "beam_width=0"])
    with pytest.raises(ConfigError, match="write KEY=VALUE"):
        evaluate(["--policy", str(run), "--planner", "beam_width"])
