"""Online fine-tuning improves weak offline starts on Pendulum-v1 (the behaviour the feature exists for).

Each test pretrains briefly offline on the noisy scripted Pendulum data, evaluates (10 episodes), then
fine-tunes online from that run folder with ``--init_from RUN --steps 0 --online.env_steps N`` (critics
and all come from the run's checkpoint) and evaluates the same episodes again. The thresholds are
normalised-score gains far above the evaluation noise (Pendulum returns vary by start angle)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqrl.training.cli import parse_train_args
from seqrl.training.loop import train

from ..conftest import REPO

EVAL = ["--eval.episodes", "10", "--eval.num_envs", "10", "--log_every", "500", "--checkpoint_every", "0"]


def score(run: Path) -> float:
    return json.loads((run / "eval_info.json").read_text())["results"][-1]["normalized_score_mean"]


def pretrain_then_finetune(tmp_path: Path, dataset: Path, algo_args: list[str], offline_steps: int,
                           online_args: list[str]) -> tuple[float, float, Path]:
    offline = train(parse_train_args([*algo_args, "--data.dataset", str(dataset), "--steps", str(offline_steps),
                                      "--output_dir", str(tmp_path / "offline"), *EVAL], config_dir=REPO / "configs"))
    online = train(parse_train_args([*algo_args, "--data.dataset", str(dataset), "--steps", "0", "--init_from",
                                     str(offline), "--output_dir", str(tmp_path / "online"), *EVAL, *online_args],
                                    config_dir=REPO / "configs"))
    return score(offline), score(online), online


VALUE_HEAD = ["--algo.batch_size", "64", "--algo.actor_hidden_sizes", "[64,64]", "--algo.critic_hidden_sizes", "[64,64]"]


@pytest.mark.slow
def test_iql_improves_online_from_a_weak_start(pendulum_dir, tmp_path):
    before, after, run = pretrain_then_finetune(tmp_path, pendulum_dir, ["--algo", "iql", *VALUE_HEAD], 300,
                                                ["--online.env_steps", "3000"])
    print(f"IQL normalised score: {before:.1f} before, {after:.1f} after 3000 env steps")
    assert after > before + 15, (before, after)
    history = json.loads((run / "online_returns.json").read_text())
    assert len(history["episodes"]) == 15 and history["summary"]["updates"] == 3000  # 200-step episodes, 1 update/step
    assert (run / "online_returns.png").is_file()


@pytest.mark.slow
def test_calql_improves_online_from_a_weak_start(pendulum_dir, tmp_path):
    before, after, run = pretrain_then_finetune(
        tmp_path, pendulum_dir, ["--algo", "calql", *VALUE_HEAD, "--algo.num_sampled_actions", "4"], 300,
        ["--online.env_steps", "3000"])
    print(f"Cal-QL normalised score: {before:.1f} before, {after:.1f} after 3000 env steps")
    assert after > before + 15, (before, after)


@pytest.mark.slow
def test_odt_improves_a_briefly_trained_dt_online(pendulum_builtin, tmp_path):
    """A dt policy (the DT config's sizes) trained briefly on the built-in mixed data, fine-tuned online as
    an ODT: rounds of one episode sampled at the exploration target (0 here: Pendulum's returns are
    negative), then 150 updates (the reference makes 300) on windows whose returns-to-go are the ones obtained."""
    target = ["--eval.target_returns", "[-150]"]
    offline = train(parse_train_args(["--algo", "dt", "--data.dataset", str(pendulum_builtin), "--steps", "500",
                                      "--output_dir", str(tmp_path / "dt"), *EVAL, *target], config_dir=REPO / "configs"))
    online = train(parse_train_args(
        ["--algo", "odt", "--data.dataset", str(pendulum_builtin), "--steps", "0", "--init_from", str(offline),
         "--output_dir", str(tmp_path / "odt"), *EVAL, *target, "--online.env_steps", "1000",
         "--online.updates_per_round", "150"], config_dir=REPO / "configs"))
    before, after = score(offline), score(online)
    print(f"DT -> ODT normalised score at target -150: {before:.1f} before, {after:.1f} after 1000 env steps")
    assert after > before + 30, (before, after)
    history = json.loads((online / "online_returns.json").read_text())
    assert len(history["episodes"]) == 5 and history["summary"]["updates"] == 750  # 5 rounds: 1 episode, 150 updates
