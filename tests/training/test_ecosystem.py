"""Training as users of transformers and Accelerate expect it: --report_to, --resume_from_checkpoint, Accelerate's
launcher settings, --log_level and TQDM_DISABLE, and the Python API with the command line's checks."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

import seqrl
from seqrl.parsing import ConfigError
from seqrl.training import setup
from seqrl.training.cli import parse_train_args
from seqrl.training.config import TrainConfig
from seqrl.training.loop import train
from seqrl.training.setup import describe_precision, resolve_precision

from ..conftest import REPO
from .test_train import tiny_args

HAS_WANDB = importlib.util.find_spec("wandb") is not None


@contextlib.contextmanager
def seqrl_messages():
    """The messages seqrl logs at info level while the block runs."""
    messages, logger = [], logging.getLogger("seqrl")
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_report_to_none_writes_no_logs_and_tensorboard_does(pendulum_dir, tmp_path):
    quiet = train(parse_train_args(tiny_args(pendulum_dir, tmp_path / "none", 2, "--report_to", "none")))
    assert (quiet / "model.safetensors").is_file() and not (quiet / "logs").exists()
    logged = train(parse_train_args(tiny_args(pendulum_dir, tmp_path / "tb", 2)))  # the default
    assert list((logged / "logs").rglob("events.out.tfevents.*"))


@pytest.mark.skipif(not HAS_WANDB, reason="wandb is not installed (`pip install wandb` to run --report_to wandb)")
def test_wandb_offline_run_writes_its_files(pendulum_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-root"))
    train(parse_train_args(tiny_args(pendulum_dir, tmp_path / "run", 2, "--report_to", "wandb")))
    runs = list((tmp_path / "wandb-root").rglob("offline-run-*"))
    assert runs and any(path.suffix == ".wandb" for path in runs[0].rglob("*"))


@pytest.mark.skipif(HAS_WANDB, reason="wandb is installed; this checks the error shown without it")
def test_report_to_wandb_without_wandb_says_how_to_get_it():
    with pytest.raises(ConfigError, match="pip install wandb"):
        parse_train_args(["--report_to", "wandb"])


def test_resume_from_a_named_checkpoint_continues_exactly(pendulum_dir, tmp_path):
    run = train(parse_train_args(tiny_args(pendulum_dir, tmp_path / "run", 12, "--checkpoint_every", "4",
                                           "--keep_checkpoints", "3")))
    finished = load_file(run / "model.safetensors")
    step4 = run / "checkpoints" / "step-00000004"
    assert step4.is_dir()  # not the latest (12): the flag picks an older one
    # only the folder and the checkpoint: the rest comes from the run's train_config.yaml, as with --resume
    with seqrl_messages() as messages:
        resumed = train(parse_train_args(["--output_dir", str(run), "--resume_from_checkpoint", str(step4)]))
    assert f"Resuming from {step4} at step 4." in messages
    again = load_file(resumed / "model.safetensors")
    assert all((finished[k] == again[k]).all() for k in finished)  # steps 5-12 again, the same weights
    with pytest.raises(ConfigError, match="not a complete checkpoint"):
        parse_train_args(["--output_dir", str(run), "--resume_from_checkpoint", str(tmp_path)])
    with pytest.raises(ConfigError, match="needs --output_dir"):
        parse_train_args(["--resume_from_checkpoint", str(step4)])
    saved = (resumed / "train_config.yaml").read_text()
    assert "resume_from_checkpoint: null" in saved and "push_to_hub: null" in saved  # per invocation, not saved


def test_auto_precision_defers_to_accelerate_launch_and_a_named_one_wins(monkeypatch):
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    assert resolve_precision("auto") in ("no", "bf16")  # no launcher: seqrl's own choice
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")  # what `accelerate launch --mixed_precision` sets
    assert resolve_precision("auto") is None  # Accelerator(mixed_precision=None) reads the launcher's
    assert resolve_precision("no") == "no"


@pytest.mark.parametrize(("instructions", "expected"), [("AMX-BF16", "bf16"), ("AVX512-BF16", "bf16"), (None, "no")])
def test_auto_precision_is_bf16_on_cpus_with_native_bf16_and_says_so(monkeypatch, instructions, expected):
    """Without a launcher setting or an accelerator, auto follows the CPU's bf16 instructions, and the run's
    first lines say what it chose and why."""
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: False)
    monkeypatch.setattr(setup, "cpu_bf16_instructions", lambda: instructions)
    assert resolve_precision("auto") == expected
    assert resolve_precision("no") == "no" and resolve_precision("bf16") == "bf16"  # a named precision wins

    line = describe_precision("auto", SimpleNamespace(mixed_precision=expected, device=torch.device("cpu")))
    if instructions:
        assert line == (f"Precision: bf16 autocast (float32 weights and optimizer state), chosen by --mixed_precision "
                        f"auto: this CPU has {instructions}; --mixed_precision no for float32.")
    else:
        assert line.startswith("Precision: float32, chosen by --mixed_precision auto: this CPU has no native bf16")
    named = describe_precision("no", SimpleNamespace(mixed_precision="no", device=torch.device("cpu")))
    assert named == "Precision: float32 (--mixed_precision no)."


def test_cpu_bf16_detection_agrees_with_the_cpu_flags():
    """The detection reads PyTorch's CPU capability probe; on Linux the kernel's flags say the same."""
    flags_file = Path("/proc/cpuinfo")
    if not flags_file.exists():
        pytest.skip("no /proc/cpuinfo to compare with")
    flags = set(next(line for line in flags_file.read_text().splitlines() if line.startswith("flags")).split())
    expected = "AMX-BF16" if {"amx_bf16", "amx_tile"} <= flags else "AVX512-BF16" if "avx512_bf16" in flags else None
    assert setup.cpu_bf16_instructions() == expected


@pytest.mark.slow  # two Python starts (about 25 s on 2 cores)
def test_log_level_and_tqdm_disable(pendulum_dir, tmp_path):
    """tqdm reads TQDM_DISABLE when it is imported, so each setting gets its own process."""
    def run(folder, *extra, **env):
        result = subprocess.run([sys.executable, "train.py", *tiny_args(pendulum_dir, tmp_path / folder, 2, *extra)],
                                cwd=REPO, capture_output=True, text=True, timeout=300,
                                env={**os.environ, "ACCELERATE_MIXED_PRECISION": "bf16", **env})
        assert result.returncode == 0, result.stderr[-2000:]
        return result

    chatty = run("chatty", "--log_level", "debug")
    assert "train dt" in chatty.stderr  # the progress bar
    assert "mixed precision bf16" in chatty.stdout  # debug line: the launcher's precision under "auto"
    quiet = run("quiet", "--log_level", "warning", "--mixed_precision", "no", TQDM_DISABLE="1")
    assert "train dt" not in quiet.stderr and "mixed precision" not in quiet.stdout
    assert quiet.stdout.strip() == str((tmp_path / "quiet").resolve())  # only the run folder


@pytest.mark.parametrize("bad", [{"steps": 0}, {"mixed_precision": "fp8"}, {"report_to": "mlflow"},
                                 {"algo.lr_schedule": "step"}, {"log_level": "loud"}, {"stepz": 3},
                                 {"push_every_checkpoint": True}, {"push_to_hub": "no-namespace"}])
def test_python_api_refuses_what_the_command_line_refuses(bad, tmp_path):
    (key, value), = bad.items()
    argv = ["--output_dir", str(tmp_path / "run"), f"--{key}", str(value).lower() if isinstance(value, bool) else str(value)]
    with pytest.raises(seqrl.errors.SeqRLError) as command_line:
        parse_train_args(argv)
    with pytest.raises(type(command_line.value)) as api:
        seqrl.train(output_dir=str(tmp_path / "run"), **bad)
    assert str(api.value).split(":")[0] == str(command_line.value).split(":")[0]
    if "." not in key and key != "stepz":
        with pytest.raises(type(command_line.value)):
            seqrl.train(TrainConfig(output_dir=str(tmp_path / "run")), **bad)
    assert not (tmp_path / "run").exists()


def test_python_api_trains_evaluates_and_loads(pendulum_dir, tmp_path):
    run = seqrl.train(**{"data.dataset": str(pendulum_dir), "output_dir": str(tmp_path / "run"), "steps": 2,
                         "algo.hidden_size": 16, "algo.n_layer": 1, "algo.context_len": 5, "algo.batch_size": 8,
                         "eval.final": False, "report_to": "none"})
    policy = seqrl.load_policy(run)
    report = seqrl.evaluate(run, target_returns=[-300.0], episodes=1, num_envs=1)
    assert report["seed"] == TrainConfig().eval.seed and report["results"][0]["episodes"] == 1
    again = seqrl.evaluate(policy, target_returns=[-300.0], episodes=1, num_envs=1)
    assert again["results"][0]["returns"] == report["results"][0]["returns"]
    assert seqrl.load_dataset(str(pendulum_dir)).num_rows == 2400
