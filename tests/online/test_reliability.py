"""Reliability of the online phase: SIGKILL then --resume reproduces an uninterrupted run (also from the
offline hand-over checkpoint), a kill while a checkpoint is replaced leaves a whole one, failing envs
(exceptions, NaN from step or reset) stop the run with a clear error and leave the last checkpoint whole,
settings that cannot work fail before training, and two processes each collect their own episodes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from safetensors.torch import load_file

from seqrl.data.schema import build_dataset
from seqrl.data.sources import save_dataset
from seqrl.online.collector import OnlineEnvError
from seqrl.online.phase import OnlineConfigError
from seqrl.registry import load_policy
from seqrl.training.checkpoint import latest_checkpoint, trainer_state
from seqrl.training.cli import parse_train_args
from seqrl.training.loop import train

from ..conftest import REPO, make_metadata

TINY_IQL = ["--algo", "iql", "--algo.actor_hidden_sizes", "[32, 32]", "--algo.critic_hidden_sizes", "[32, 32]",
            "--algo.batch_size", "32", "--log_every", "50", "--eval.final", "false", "--checkpoint_every", "0"]
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def iql_args(dataset: Path | str, output: Path, *extra: str, steps: int = 4) -> list[str]:
    return [*TINY_IQL, "--data.dataset", str(dataset), "--output_dir", str(output), "--steps", str(steps), *extra]


def online_state(checkpoint: Path, process: int = 0) -> tuple[dict[str, np.ndarray], dict]:
    """A checkpoint's online episodes (schema columns) and counters for one process."""
    with np.load(checkpoint / "online" / f"process-{process}.npz") as saved:
        columns = {name: saved[name] for name in saved.files}
    return columns, json.loads((checkpoint / "online" / f"process-{process}.json").read_text())


def assert_whole_episodes(columns: dict[str, np.ndarray]) -> None:
    """Each episode's rows follow on from each other: timesteps 0..n-1, each next observation is the
    following row's observation, and exactly the last row ends the episode. A transition lost or
    collected twice breaks one of these."""
    index = columns["episode_index"]
    assert (np.diff(index) >= 0).all(), "episodes are not contiguous"
    for episode in np.unique(index):
        rows = np.flatnonzero(index == episode)
        np.testing.assert_array_equal(columns["timestep"][rows], np.arange(len(rows)))
        np.testing.assert_array_equal(columns["next_observations"][rows[:-1]], columns["observations"][rows[1:]])
        ends = columns["terminations"][rows] | columns["truncations"][rows]
        assert ends[-1] and not ends[:-1].any(), f"episode {episode} does not end exactly at its last row"


# --------------------------------------------------------------------------------------------------
# 1. SIGKILL in the online phase, then --resume: nothing lost, nothing repeated.


@pytest.mark.slow
def test_sigkill_then_resume_reproduces_the_uninterrupted_run(pendulum_dir, tmp_path):
    def command(run: Path) -> list[str]:
        return [sys.executable, "train.py", *iql_args(pendulum_dir, run, "--online.env_steps", "800",
                                                     "--online.checkpoint_every", "200", "--online.num_envs", "2",
                                                     steps=10)]

    straight_run, killed_run = tmp_path / "straight", tmp_path / "killed"
    # The uninterrupted run goes alongside the one to kill (they share nothing but the CPUs). Its stderr
    # (progress bars) goes to a file: a pipe nobody reads would fill up and block it.
    straight_log = tmp_path / "straight.log"
    with open(straight_log, "w") as log:
        straight = subprocess.Popen(command(straight_run), cwd=REPO, stdout=subprocess.DEVNULL, stderr=log,
                                    env=SUBPROCESS_ENV)
    victim = subprocess.Popen(command(killed_run), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=SUBPROCESS_ENV)
    try:
        deadline = time.time() + 300
        online_checkpoints = killed_run / "checkpoints"
        while time.time() < deadline and victim.poll() is None and not list(online_checkpoints.glob("step-*/online")):
            time.sleep(0.05)
        time.sleep(1.0)  # collect (and then lose) some transitions past that checkpoint
        assert victim.poll() is None, "the run ended before it could be killed in the online phase"
        assert list(killed_run.glob("checkpoints/step-*/online")), "no online checkpoint within 300 s"
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        killed_at = trainer_state(latest_checkpoint(killed_run))["online"]
        assert not killed_at["done"] and 0 < killed_at["total_env_steps"] < 800

        resumed = subprocess.run([*command(killed_run), "--resume"], cwd=REPO, capture_output=True, text=True,
                                 timeout=600, env=SUBPROCESS_ENV, check=False)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert "of the online phase" in resumed.stdout + resumed.stderr  # it did resume inside the online phase
        assert straight.wait(timeout=600) == 0, straight_log.read_text()[-3000:]
    finally:
        for process in (straight, victim):
            if process.poll() is None:
                process.kill()
                process.wait()

    a, b = latest_checkpoint(straight_run), latest_checkpoint(killed_run)
    assert a.name == b.name, "the runs ended at different gradient steps"
    assert trainer_state(a) == trainer_state(b)
    columns_a, counters_a = online_state(a)
    columns_b, counters_b = online_state(b)
    counters_a.pop("seconds", None), counters_b.pop("seconds", None)  # wall time differs, of course
    assert counters_a == counters_b
    assert columns_a.keys() == columns_b.keys()
    assert len(columns_a["rewards"]) == len(columns_b["rewards"])
    for name in columns_a:
        np.testing.assert_array_equal(columns_a[name], columns_b[name], err_msg=name)
    # Every env step the counters report is stored once, in whole episodes.
    assert len(columns_b["rewards"]) == counters_b["env_steps"] == trainer_state(b)["online"]["total_env_steps"] >= 800
    assert_whole_episodes(columns_b)
    # Same data, same RNG states, same optimizer: the same weights.
    weights_a, weights_b = load_file(straight_run / "model.safetensors"), load_file(killed_run / "model.safetensors")
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:
        assert (weights_a[key] == weights_b[key]).all(), key


def test_resume_from_the_offline_checkpoint_starts_the_online_phase_as_an_uninterrupted_run(pendulum_dir, tmp_path):
    """A run stopped at the hand-over (its last checkpoint is the offline one, with no online state) and
    resumed with the online settings collects and learns exactly what one run doing both does."""
    online = ["--online.env_steps", "120", "--online.num_envs", "2", "--online.checkpoint_every", "0"]
    straight = train(parse_train_args(iql_args(pendulum_dir, tmp_path / "straight", *online, steps=6)))
    offline = train(parse_train_args(iql_args(pendulum_dir, tmp_path / "resumed", steps=6)))
    assert "online" not in trainer_state(latest_checkpoint(offline))
    resumed = train(parse_train_args(iql_args(pendulum_dir, offline, *online, "--resume", steps=6)))
    a, b = latest_checkpoint(straight), latest_checkpoint(resumed)
    assert a.name == b.name and trainer_state(a) == trainer_state(b)
    columns_a, _ = online_state(a)
    columns_b, counters_b = online_state(b)
    for name in columns_a:
        np.testing.assert_array_equal(columns_a[name], columns_b[name], err_msg=name)
    assert len(columns_b["rewards"]) == counters_b["env_steps"] == 120
    weights_a, weights_b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    for key in weights_a:
        assert (weights_a[key] == weights_b[key]).all(), key


def test_resume_after_the_final_online_checkpoint_still_writes_the_outputs(pendulum_dir, tmp_path):
    run, data = tmp_path / "run", tmp_path / "online-data"
    args = iql_args(pendulum_dir, run, "--online.env_steps", "40", "--online.save_dataset", str(data))
    train(parse_train_args(args))
    assert (run / "online_returns.json").is_file() and data.is_dir()
    # A kill just after the final checkpoint (online done) and before the end of the phase leaves none of these.
    for path in (run / "online_returns.json", run / "model.safetensors"):
        path.unlink()
    shutil.rmtree(data)
    train(parse_train_args([*args, "--resume"]))
    assert (run / "model.safetensors").is_file()
    assert (run / "online_returns.json").is_file(), "the returns history was not written"
    assert data.is_dir(), "--online.save_dataset was not written"


class Killed(BaseException):
    """Stands for a SIGKILL at a chosen line (nothing after it runs)."""


def test_kill_while_replacing_a_checkpoint_of_the_same_step_leaves_a_whole_one(pendulum_dir, tmp_path, monkeypatch):
    """With no update between them (updates_per_step 0), the online checkpoints all land on the step of the
    offline one and replace it. A kill while the replaced checkpoint is being deleted must not leave a
    visible checkpoint with files missing (trainer_state.json still there marks it complete)."""
    import seqrl.training.checkpoint as checkpoint_module

    run = tmp_path / "run"
    args = iql_args(pendulum_dir, run, "--online.env_steps", "60", "--online.checkpoint_every", "20",
                    "--online.updates_per_step", "0")
    real_rmtree, killed = shutil.rmtree, []

    def rmtree_then_killed(path, *rest, **options):
        path = Path(path)
        if not killed and (path / "trainer_state.json").is_file():  # deleting a whole checkpoint: die midway
            killed.append(path)
            (path / "model.safetensors").unlink()
            raise Killed
        real_rmtree(path, *rest, **options)

    monkeypatch.setattr(checkpoint_module.shutil, "rmtree", rmtree_then_killed)
    with pytest.raises(Killed):
        train(parse_train_args(args))
    monkeypatch.undo()
    assert killed, "no checkpoint was replaced"
    latest = latest_checkpoint(run)
    for name in ("model.safetensors", "optimizer.bin", "policy/model.safetensors", "trainer_state.json"):
        assert (latest / name).is_file(), f"the checkpoint a resume would use, {latest.name}, lacks {name}"

    train(parse_train_args([*args, "--resume"]))
    final = latest_checkpoint(run)
    assert trainer_state(final) == {"online": {"total_env_steps": 60, "done": True}, "step": 4}
    assert len(online_state(final)[0]["rewards"]) == 60
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [final.name], "leftover folders"


# --------------------------------------------------------------------------------------------------
# 2. An env that fails: a clear error, the last complete checkpoint intact, no final policy.

FAIL_AFTER = 130  # env steps (one env) before the env fails; checkpoints every 50 leave the one at 100
FAILING_RESETS = 3  # "nan_reset": the third reset (after the checkpoint at 100 ends the episode) returns NaN


class FailingPendulum(gym.Wrapper):
    """Pendulum-v1 that, after ``FAIL_AFTER`` steps of this instance, raises or returns NaN ("raise",
    "nan_observation", "nan_reward"), or whose ``FAILING_RESETS``-th reset returns a NaN observation
    ("nan_reset"; its steps then read NaN actions as 0, as envs that sanitise actions do, so the NaN
    does not reach a later step's observation)."""

    def __init__(self, mode: str):
        super().__init__(gym.make("Pendulum-v1"))
        self.mode, self.steps, self.resets = mode, 0, 0

    def reset(self, **kwargs):
        observation, info = self.env.reset(**kwargs)
        self.resets += 1
        if self.mode == "nan_reset" and self.resets >= FAILING_RESETS:
            observation = np.full_like(observation, np.nan)
        return observation, info

    def step(self, action):
        if self.mode == "nan_reset":
            observation, reward, terminated, truncated, info = self.env.step(np.nan_to_num(action))
            return observation, reward, terminated, truncated, info
        observation, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if self.steps > FAIL_AFTER:
            if self.mode == "raise":
                raise RuntimeError("simulator lost its connection")
            if self.mode == "nan_observation":
                observation = np.full_like(observation, np.nan)
            else:
                reward = float("nan")
        return observation, reward, terminated, truncated, info


@pytest.fixture
def failing_env_id(request):
    """A registered id whose env fails as ``request.param`` says (removed from the registry afterwards)."""
    env_id = f"SeqrlTestFailing{request.param.title().replace('_', '')}-v0"
    gym.register(env_id, entry_point=lambda: FailingPendulum(request.param), max_episode_steps=200)
    yield env_id
    del gym.registry[env_id]


@pytest.mark.parametrize("failing_env_id", ["raise", "nan_observation", "nan_reward", "nan_reset"], indirect=True)
def test_failing_env_stops_with_a_clear_error_and_keeps_the_last_checkpoint(failing_env_id, pendulum_dir, tmp_path):
    run = tmp_path / "run"
    args = iql_args(pendulum_dir, run, "--online.env_steps", "300", "--online.checkpoint_every", "50",
                    "--online.updates_per_step", "0.5", "--keep_checkpoints", "2")
    with pytest.raises(OnlineEnvError) as failure:
        train(parse_train_args([*args, "--online.env_id", failing_env_id]))
    message = str(failure.value)
    assert failing_env_id in message and "--resume" in message
    assert f"env step {100 if 'Reset' in failing_env_id else FAIL_AFTER}" in message  # where it failed
    assert ("RuntimeError" in message) if "Raise" in failing_env_id else ("non-finite" in message)

    checkpoint = latest_checkpoint(run)
    state = trainer_state(checkpoint)
    assert state["online"] == {"total_env_steps": 100, "done": False}
    columns, counters = online_state(checkpoint)
    assert len(columns["rewards"]) == counters["env_steps"] == 100 and np.isfinite(columns["observations"]).all()
    policy = load_policy(checkpoint / "policy")
    policy.reset(2)
    assert policy.act(columns["observations"][:2]).shape == (2, 1)
    assert not list((run / "checkpoints").glob(".tmp-*")), "a half checkpoint was left behind"
    assert not (run / "model.safetensors").exists(), "the failed run wrote a final policy"

    if "Raise" in failing_env_id:  # what the message says to do works: fix the env, --resume
        train(parse_train_args([*args, "--resume", "--online.env_id", "Pendulum-v1"]))
        final = latest_checkpoint(run)
        assert trainer_state(final)["online"] == {"total_env_steps": 300, "done": True}
        resumed_columns, _ = online_state(final)
        assert len(resumed_columns["rewards"]) == 300
        for name in columns:  # the 100 transitions of the checkpoint, then the new ones
            np.testing.assert_array_equal(resumed_columns[name][:100], columns[name], err_msg=name)
        assert (run / "model.safetensors").is_file()


# --------------------------------------------------------------------------------------------------
# 3. A dataset that names no env.


def pendulum_shaped_dataset_without_env(folder: Path) -> Path:
    """Random Pendulum-shaped episodes (3-dim observations, actions in [-2, 2]) whose metadata names no env."""
    rng = np.random.default_rng(0)
    episodes, length = 6, 25
    num = episodes * length
    last = np.tile(np.arange(length) == length - 1, episodes)
    observations = rng.uniform(-1, 1, (num, 3)).astype(np.float32)
    columns = {
        "episode_index": np.repeat(np.arange(episodes), length), "timestep": np.tile(np.arange(length), episodes),
        "observations": observations, "actions": rng.uniform(-2, 2, (num, 1)).astype(np.float32),
        "rewards": -rng.uniform(0, 10, num).astype(np.float32), "terminations": np.zeros(num, bool),
        "truncations": last, "next_observations": np.roll(observations, -1, axis=0),
    }
    metadata = make_metadata(obs_dim=3, action_space=gym.spaces.Box(-2.0, 2.0, (1,), np.float32),
                             dataset_id="test/no-env-v0")
    assert metadata.env_id is None
    save_dataset(build_dataset(columns, metadata), folder)
    return folder


def test_dataset_without_env_needs_online_env_id(tmp_path):
    data = pendulum_shaped_dataset_without_env(tmp_path / "no-env")
    run = tmp_path / "run"
    args = iql_args(data, run, "--online.env_steps", "100")
    with pytest.raises(OnlineConfigError, match=r"names none; pass --online\.env_id"):
        train(parse_train_args(args))
    assert not (run / "checkpoints").exists(), "it trained before failing"

    # With the env given it runs, and (the default final evaluation included) needs nothing else.
    train(parse_train_args([*args, "--online.env_id", "Pendulum-v1", "--eval.final", "true", "--eval.episodes", "1",
                            "--eval.num_envs", "1"]))
    final = latest_checkpoint(run)
    assert trainer_state(final)["online"] == {"total_env_steps": 100, "done": True}
    columns, _ = online_state(final)
    assert len(columns["rewards"]) == 100
    assert json.loads((run / "eval_info.json").read_text())["env_id"] == "Pendulum-v1"
    assert load_policy(run).config.env_id == "Pendulum-v1"  # the policy folder names the env it was tuned in


# --------------------------------------------------------------------------------------------------
# 4. Two processes.


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_process_online_run_collects_on_both(pendulum_dir, tmp_path, one_launch_at_a_time):
    run = tmp_path / "ddp"
    logs = tmp_path / "logs"  # each rank's stderr in its own file, so a failure shows every rank's traceback
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_port", str(free_port()), "--log-dir", str(logs), "--redirects", "2"]
    result = subprocess.run([*torchrun, "train.py", *iql_args(pendulum_dir, run, "--online.env_steps", "200",
                                                              "--online.checkpoint_every", "100")],
                            cwd=REPO, capture_output=True, text=True, timeout=600, env=SUBPROCESS_ENV, check=False)
    ranks = "".join(f"\n--- {path.relative_to(logs)} ---\n{path.read_text()[-2500:]}"
                    for path in sorted(logs.rglob("stderr.log")))
    assert result.returncode == 0, result.stderr[-1500:] + ranks
    assert result.stdout.strip().splitlines()[-1] == str(run.resolve())
    final = latest_checkpoint(run)
    state = trainer_state(final)
    assert state["online"]["done"]
    assert sorted(p.name for p in (final / "online").iterdir()) == [
        "process-0.json", "process-0.npz", "process-1.json", "process-1.npz"]
    per_process = [online_state(final, process) for process in (0, 1)]
    lengths = [len(columns["rewards"]) for columns, _ in per_process]
    assert all(length > 0 for length in lengths)
    assert [counters["env_steps"] for _, counters in per_process] == lengths
    assert sum(lengths) == state["online"]["total_env_steps"] >= 200
    for columns, _ in per_process:
        assert_whole_episodes(columns)
    # Env seeds derive from the process index: the two processes did not collect the same episodes.
    assert not np.array_equal(per_process[0][0]["observations"][0], per_process[1][0]["observations"][0])
    assert (run / "model.safetensors").is_file()

    # One process cannot continue two processes' envs and shards: resuming so fails and says how to resume.
    with pytest.raises(OnlineConfigError, match=r"online state of 2 processes, and this run has 1.*--num_processes 2"):
        train(parse_train_args([*iql_args(pendulum_dir, run, "--online.env_steps", "200",
                                          "--online.checkpoint_every", "100"), "--resume"]))


# --------------------------------------------------------------------------------------------------
# 5. Algorithms that cannot fine-tune online.


@pytest.mark.parametrize("algo", ["bc", "dt"])
def test_algorithm_without_online_support_fails_before_training(algo, pendulum_dir, tmp_path):
    run = tmp_path / "run"
    args = ["--algo", algo, "--data.dataset", str(pendulum_dir), "--output_dir", str(run), "--steps", "2",
            "--online.env_steps", "10", "--eval.final", "false"]
    with pytest.raises(OnlineConfigError, match=rf"--algo {algo} cannot be fine-tuned online") as failure:
        train(parse_train_args(args))
    able = str(failure.value).split("Algorithms that can:")[1]
    named = {name.strip(" .") for name in able.split(",")}
    assert "iql" in named and algo not in named
    if algo == "dt":
        assert "--algo odt --init_from" in str(failure.value)
    assert not (run / "checkpoints").exists(), "it trained before failing"
