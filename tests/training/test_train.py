"""The training loop: exact resume, atomic checkpoints under SIGKILL, two processes, config errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from seqrl.training.checkpoint import latest_checkpoint
from seqrl.training.cli import ConfigError, parse_train_args
from seqrl.training.loop import train

from ..conftest import REPO

TINY = ["--algo.hidden_size", "16", "--algo.n_layer", "1", "--algo.context_len", "5", "--algo.batch_size", "8",
        "--algo.warmup_steps", "2", "--log_every", "2", "--eval.final", "false"]


def tiny_args(dataset: Path, output: Path, steps: int, *extra: str) -> list[str]:
    return ["--data.dataset", str(dataset), "--output_dir", str(output), "--steps", str(steps), *TINY, *extra]


def test_resume_continues_exactly(pendulum_dir, tmp_path):
    straight = train(parse_train_args(tiny_args(pendulum_dir, tmp_path / "a", 12, "--checkpoint_every", "4")))
    train(parse_train_args(tiny_args(pendulum_dir, tmp_path / "b", 8, "--checkpoint_every", "4")))
    resumed = train(parse_train_args(tiny_args(pendulum_dir, tmp_path / "b", 12, "--checkpoint_every", "4", "--resume")))
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:  # same data, same RNG, same optimizer state: bit-identical weights
        assert (a[key] == b[key]).all(), key
    assert json.loads((latest_checkpoint(resumed) / "trainer_state.json").read_text()) == {"step": 12}


@pytest.mark.slow
def test_sigkill_leaves_only_complete_checkpoints_and_resume_continues(pendulum_dir, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "train.py", *tiny_args(pendulum_dir, run, 100_000, "--checkpoint_every", "3",
                                                  "--keep_checkpoints", "100")]
    process = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and len(list((run / "checkpoints").glob("step-*"))) < 3:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # no chance to clean up
    process.wait()
    steps = sorted((run / "checkpoints").glob("step-*"))
    assert len(steps) >= 3, "the run did not reach three checkpoints in time"
    for step in steps:  # every visible checkpoint is whole
        assert json.loads((step / "trainer_state.json").read_text())["step"] == int(step.name.split("-")[1])
        for name in ("model.safetensors", "optimizer.bin", "scheduler.bin", "policy/model.safetensors", "policy/config.json"):
            assert (step / name).is_file(), f"{step / name} missing"
    last = int(latest_checkpoint(run).name.split("-")[1])
    result = subprocess.run([sys.executable, "train.py", *tiny_args(pendulum_dir, run, last + 4, "--resume")],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"Resuming from {run / 'checkpoints' / f'step-{last:08d}'} at step {last}" in result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(run.resolve())
    assert json.loads((latest_checkpoint(run) / "trainer_state.json").read_text()) == {"step": last + 4}
    assert not list((run / "checkpoints").glob(".tmp-*")), "leftover temporary checkpoint not cleared"


DRAW_SCRIPT = """
import sys, torch
from seqrl.data.sources import load_dataset
from seqrl.data.schema import get_metadata
from seqrl.registry import get
from seqrl.training.setup import make_accelerator
from seqrl.training.config import TrainConfig
from pathlib import Path
cfg = TrainConfig()
accelerator = make_accelerator(cfg, Path(sys.argv[2]))
dataset = load_dataset(sys.argv[1])
algorithm = get("dt").algorithm(cfg.algo, get_metadata(dataset))
sampler = algorithm.make_sampler(dataset, 0, accelerator.process_index, accelerator.num_processes)
states = torch.from_numpy(sampler.sample(0)["states"])
gathered = accelerator.gather(states[None])
if accelerator.is_main_process:
    print("PROCESSES", accelerator.num_processes, "SAME", bool(torch.equal(gathered[0], gathered[1])))
"""


@pytest.mark.slow
def test_two_processes_draw_different_data_and_only_main_writes(pendulum_dir, tmp_path, one_launch_at_a_time):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    script = tmp_path / "draw.py"
    script.write_text(DRAW_SCRIPT)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517"]
    draw = subprocess.run([*torchrun, str(script), str(pendulum_dir), str(tmp_path / "x")], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env=env)
    assert "PROCESSES 2 SAME False" in draw.stdout, draw.stdout + draw.stderr[-3000:]

    run = tmp_path / "ddp"
    result = subprocess.run([*torchrun, "train.py", *tiny_args(pendulum_dir, run, 6, "--checkpoint_every", "3",
                                                              "--algo.warmup_steps", "10")],
                            cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == str(run.resolve()) and lines.count(lines[-1]) == 1  # printed once, by the main process
    assert sum(line.startswith("Precision: ") for line in lines) == 1, lines  # the main process says it, once
    events = list((run / "logs").rglob("events.out.tfevents.*"))
    assert len({e.name.split(".")[-2] for e in events}) == 1, f"TensorBoard files from several processes: {events}"
    # The warm-up counts gradient steps, whatever the number of processes: step / 10 of the rate after
    # `step` steps, as transformers' linear warm-up starts at 0 (Accelerate's default would step the
    # schedule once per process and double it).
    config = parse_train_args(tiny_args(pendulum_dir, run, 6), config_dir=REPO / "configs")
    assert logged(run, "lr/main") == pytest.approx({2: 0.2 * config.algo.learning_rate, 4: 0.4 * config.algo.learning_rate,
                                                    6: 0.6 * config.algo.learning_rate})
    step = latest_checkpoint(run)
    # Accelerate keeps one RNG file per process; everything else exists once.
    assert sorted(p.name for p in step.glob("random_states_*")) == ["random_states_0.pkl", "random_states_1.pkl"]
    assert (run / "model.safetensors").is_file() and (run / "config.json").is_file()


def logged(run: Path, tag: str) -> dict[int, float]:
    """Step -> value of a scalar the run logged to TensorBoard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values = {}
    for events in (run / "logs").rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        if tag in accumulator.Tags()["scalars"]:
            values.update({event.step: event.value for event in accumulator.Scalars(tag)})
    return values


def test_unknown_config_key_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("algo:\n  type: dt\n  hiden_size: 64\nsteps: 10\n")
    with pytest.raises(ConfigError, match=r"hiden_size.*not valid.*python train.py --help"):
        parse_train_args(["--config", str(bad)])
    with pytest.raises(ConfigError, match="unrecognized arguments: --stepz"):
        parse_train_args(["--stepz", "3"])
    with pytest.raises(ConfigError, match="no such file"):
        parse_train_args(["--config", str(tmp_path / "missing.yaml")])
    with pytest.raises(ConfigError, match="--resume needs --output_dir"):
        parse_train_args(["--resume"])


def test_env_and_data_flags_parse():
    cfg = parse_train_args(["--env_import", "my_package.envs", "other", "--data.env_id", "my_package.envs:MyEnv",
                            "--data.env_kwargs", '{"g": 5.0}', "--data.action_low", "[-2.0]", "--data.action_high",
                            "[2.0]", "--data.drop_invalid_episodes", "true"])
    assert cfg.env_import == ["my_package.envs", "other"] and cfg.data.env_id == "my_package.envs:MyEnv"
    assert cfg.data.env_kwargs == {"g": 5.0} and (cfg.data.action_low, cfg.data.action_high) == ([-2.0], [2.0])
    assert cfg.data.drop_invalid_episodes
    assert parse_train_args(["--env_import", "[a.b, c]"]).env_import == ["a.b", "c"]  # draccus' list syntax too
    assert parse_train_args([]).env_import == [] and not parse_train_args([]).data.drop_invalid_episodes


@pytest.mark.parametrize("value", ["auto", "no", "bf16", "fp16"])
def test_every_mixed_precision_choice_parses(value, tmp_path):
    assert parse_train_args(["--mixed_precision", value]).mixed_precision == value
    config = tmp_path / "run.yaml"
    config.write_text(f"mixed_precision: {value}\n")  # YAML reads a bare `no` as false
    assert parse_train_args(["--config", str(config)]).mixed_precision == value


def test_unknown_mixed_precision_is_a_clear_error():
    with pytest.raises(ConfigError, match="--mixed_precision fp8: choose one of auto, no, bf16, fp16"):
        parse_train_args(["--mixed_precision", "fp8"])


def test_cli_prints_one_error_line_and_keeps_existing_run(pendulum_dir, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.safetensors").write_bytes(b"precious")
    result = subprocess.run([sys.executable, "train.py", "--output_dir", str(run), "--algo.hiden_size", "3"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("error: Invalid configuration") and "Traceback" not in result.stderr
    assert (run / "model.safetensors").read_bytes() == b"precious"


def test_defaults_come_from_the_pendulum_config():
    cfg = parse_train_args([], config_dir=REPO / "configs")
    assert cfg.data.dataset == "seqrl/pendulum/mixed-v0" and cfg.algo_name == "dt"
    assert cfg.algo.context_len == 10 and cfg.algo.hidden_size == 64 and cfg.algo.n_layer == 3


def test_init_from_starts_from_a_trained_policy(pendulum_dir, tmp_path):
    first = train(parse_train_args(tiny_args(pendulum_dir, tmp_path / "a", 4)))
    # learning rate 0: the second run's weights stay exactly the ones it started from
    second = train(parse_train_args(tiny_args(pendulum_dir, tmp_path / "b", 1, "--init_from", str(first),
                                              "--algo.learning_rate", "0")))
    a, b = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert all((a[k] == b[k]).all() for k in a)
    with pytest.raises(Exception, match="weight shapes differ"):
        train(parse_train_args(tiny_args(pendulum_dir, tmp_path / "c", 1, "--init_from", str(first),
                                         "--algo.hidden_size", "8")))


@pytest.mark.slow
def test_compiled_training_matches_eager(pendulum_dir, tmp_path):
    """--compile true (torch.compile of the algorithm, the ensemble critics' custom last layer included)
    trains to the same weights as eager mode, up to float rounding. IQL draws no noise inside its loss,
    so both runs see the same numbers."""
    args = ["--algo", "iql", "--data.dataset", str(pendulum_dir), "--steps", "3", "--algo.batch_size", "8",
            "--algo.actor_hidden_sizes", "[16]", "--algo.critic_hidden_sizes", "[16]", "--checkpoint_every", "0",
            "--eval.final", "false"]
    eager = train(parse_train_args([*args, "--output_dir", str(tmp_path / "eager")]))
    compiled = train(parse_train_args([*args, "--output_dir", str(tmp_path / "compiled"), "--compile", "true"]))
    a, b = load_file(eager / "model.safetensors"), load_file(compiled / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key
