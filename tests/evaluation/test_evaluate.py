"""evaluate.py and evaluate_policy: episode quotas, seeds, the report files, and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from seqrl.envs import EnvError
from seqrl.evaluation.rollout import evaluate_policy
from seqrl.models.decision_transformer import DecisionTransformer, DecisionTransformerConfig
from seqrl.registry import PolicyLoadError, load_policy

from ..conftest import REPO


@pytest.fixture
def pendulum_policy(tmp_path):
    cfg = DecisionTransformerConfig(
        algo="dt", state_dim=3, act_dim=1, hidden_size=16, n_layer=1, context_len=5, max_ep_len=200,
        env_id="Pendulum-v1", action_low=[-2.0], action_high=[2.0], target_returns=[-1000.0, -200.0],
        ref_min_score=-1200.0, ref_max_score=-150.0,
    )
    folder = tmp_path / "policy"
    DecisionTransformer(cfg).save_pretrained(folder)
    return folder


def test_every_target_gets_its_episodes_and_seeds_repeat(pendulum_policy):
    policy = load_policy(pendulum_policy)
    report = evaluate_policy(policy, [-1000.0, -200.0], episodes=5, num_envs=2, seed=3, progress=False)
    again = evaluate_policy(policy, [-1000.0, -200.0], episodes=5, num_envs=2, seed=3, progress=False)
    assert report == again
    assert report["env_id"] == "Pendulum-v1"
    for row in report["results"]:
        assert row["episodes"] == 5 and len(row["returns"]) == 5
        assert row["episode_length_mean"] == 200.0  # Pendulum always truncates at 200
        expected = 100 * (np.mean(row["returns"]) + 1200.0) / 1050.0
        assert row["normalized_score_mean"] == pytest.approx(expected)
        assert row["return_std"] == pytest.approx(np.std(row["returns"], ddof=1))  # the sample std, everywhere
    other_seed = evaluate_policy(policy, [-1000.0], episodes=5, num_envs=2, seed=4, progress=False)
    assert other_seed["results"][0]["returns"] != report["results"][0]["returns"]


def test_evaluate_cli_writes_json_and_plot(pendulum_policy, tmp_path):
    output = tmp_path / "out" / "eval.json"
    result = subprocess.run(
        [sys.executable, "evaluate.py", "--policy", str(pendulum_policy), "--target_returns", "-1000", "-500", "-200",
         "--episodes", "2", "--num_envs", "2", "--seed", "0", "--output", str(output)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(output.read_text())
    assert set(report) == {"policy", "env_id", "seed", "episodes", "num_envs", "results"}
    assert (report["seed"], report["episodes"], report["num_envs"]) == (0, 2, 2)  # what reproduces it
    assert [r["target_return"] for r in report["results"]] == [-1000.0, -500.0, -200.0]
    for row in report["results"]:
        assert {"target_return", "episodes", "return_mean", "return_std", "normalized_score_mean",
                "episode_length_mean"} <= set(row)
    assert output.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "-500.0" in result.stdout


def test_missing_weights_are_a_clear_error(pendulum_policy):
    (pendulum_policy / "model.safetensors").unlink()
    with pytest.raises(PolicyLoadError, match="no model.safetensors: the weights are missing"):
        load_policy(pendulum_policy)


def test_corrupt_weights_are_a_clear_error_from_the_cli(pendulum_policy):
    (pendulum_policy / "model.safetensors").write_bytes(b"\x00" * 100)
    result = subprocess.run([sys.executable, "evaluate.py", "--policy", str(pendulum_policy), "--episodes", "1"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "error: Could not load the weights" in result.stderr and "corrupt" in result.stderr
    assert "Traceback" not in result.stderr


def test_not_a_policy_folder(tmp_path):
    with pytest.raises(PolicyLoadError, match="no config.json"):
        load_policy(tmp_path)


def test_another_env_whose_spaces_match_and_one_whose_do_not(pendulum_policy):
    policy = load_policy(pendulum_policy)
    # A Dict-observation Pendulum of the user's own: flattened for the policy, the same 3 values.
    report = evaluate_policy(policy, [-200.0], episodes=2, num_envs=2, env_id="tests.custom_envs:DictPendulumEnv",
                             env_kwargs={"max_steps": 30}, progress=False)
    assert report["env_id"] == "tests.custom_envs:DictPendulumEnv"
    assert report["results"][0]["episode_length_mean"] == 30.0
    with pytest.raises(EnvError) as error:
        evaluate_policy(policy, [-200.0], episodes=1, env_id="CartPole-v1", progress=False)
    message = str(error.value)
    assert "environment 'CartPole-v1' does not fit the policy" in message
    assert "(4 values flattened) and 2 discrete actions; the policy has observations of 3 values" in message


def test_acting_mode_is_chosen_on_the_command_line(pendulum_policy, tmp_path):
    from seqrl.evaluation.command import evaluate, parse_evaluate_args
    from seqrl.parsing import ConfigError

    def run(*flags):
        args = ["--policy", str(pendulum_policy), "--target_returns", "-200", "--episodes", "2", "--num_envs", "2",
                "--output", str(tmp_path / f"eval{len(flags)}.json"), *flags]
        return evaluate(parse_evaluate_args(args))[0]["results"]

    # One layer: a cached token's keys come from its own embedding alone, so both modes see exactly the last
    # K steps and must agree; a wrong mode is refused before any rollout.
    window, cached = run("--acting", "window"), run("--acting", "cached")
    assert len(window) == len(cached) == 1
    np.testing.assert_allclose(window[0]["returns"], cached[0]["returns"], rtol=1e-6)  # the same up to float rounding
    with pytest.raises(ConfigError, match="--acting full: choose one of window, cached"):
        run("--acting", "full")
