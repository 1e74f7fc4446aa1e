"""Every registered algorithm, tested by being registered: it trains in the one loop, writes a policy
folder that loads by itself and acts, keeps each named loss on its own optimizer's parameters,
and refuses data or target returns it cannot use with a clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from unittest import mock

import gymnasium as gym
import numpy as np
import pytest
import torch

from seqrl import registry
from seqrl.data.builtin import BUILTIN_RECIPES
from seqrl.data.schema import get_metadata
from seqrl.data.sources import load_dataset
from seqrl.evaluation.command import main as evaluate_main
from seqrl.models.policy import PolicyError
from seqrl.training.cli import parse_train_args
from seqrl.training.loop import train
from seqrl.training.setup import IncompatibleDatasetError

from .conftest import REPO, exclusive, shared_tmp

NAMES = registry.names()


def dataset_for(entry, pendulum_dir, cartpole_dir):
    return pendulum_dir if entry.algorithm.supports_continuous else cartpole_dir


def quick_args(name, data, output, steps=3):
    return ["--algo", name, "--data.dataset", str(data), "--output_dir", str(output), "--steps", str(steps),
            "--algo.batch_size", "8", "--log_every", "1", "--checkpoint_every", "2",
            "--eval.episodes", "1", "--eval.num_envs", "1"]


@pytest.mark.parametrize("name", NAMES)
def test_trains_saves_loads_and_evaluates(name, pendulum_dir, cartpole_dir, tmp_path):
    entry = registry.get(name)
    run = train(parse_train_args(quick_args(name, dataset_for(entry, pendulum_dir, cartpole_dir), tmp_path / "run")))
    policy = registry.load_policy(run)
    assert type(policy) is entry.policy and policy.config.algo == name
    report = json.loads((run / "eval_info.json").read_text())
    assert all(row["episodes"] == 1 and np.isfinite(row["return_mean"]) for row in report["results"])
    assert (len(report["results"]) == 3) == policy.uses_target_return  # three default targets, or one plain row

    twin = registry.load_policy(run)
    observations = np.random.default_rng(0).normal(size=(4, policy.config.state_dim)).astype(np.float32)
    target = policy.config.target_returns[-1] if policy.uses_target_return else None
    for p in (policy, twin):
        p.reset(4, target)
    first, second = policy.act(observations), twin.act(observations)
    np.testing.assert_array_equal(first, second)
    if policy.config.discrete_actions:
        assert first.dtype == np.int64 and ((0 <= first) & (first < policy.config.act_dim)).all()
    else:
        low, high = np.array(policy.config.action_low), np.array(policy.config.action_high)
        assert first.shape == (4, policy.config.act_dim) and (first >= low - 1e-6).all() and (first <= high + 1e-6).all()


@pytest.fixture(scope="session")
def two_process_runs(pendulum_dir, cartpole_dir, tmp_path_factory):
    """Every registered algorithm trained by the training command under torchrun with 2 gloo CPU processes
    (what `accelerate launch --multi_gpu --num_processes 2` starts here), for 4 steps: enough for DDP to meet
    a step where an algorithm leaves parameters out of its loss (TD3+BC's delayed actor). One torchrun
    runs all of them (tests/two_process_driver.py), once per session: pytest-xdist workers share the folder
    above their own temporary folders, and the first to take the lock trains for all."""
    root = shared_tmp(tmp_path_factory) / "two-process-runs"
    with exclusive(tmp_path_factory, "two-process-runs"), exclusive(tmp_path_factory, "torchrun"):
        if not (root / "log.txt").exists():
            root.mkdir(exist_ok=True)
            jobs = {name: quick_args(name, dataset_for(registry.get(name), pendulum_dir, cartpole_dir),
                                     root / name / "run", steps=4) for name in NAMES}
            (root / "jobs.json").write_text(json.dumps(jobs))
            torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
            command = [*torchrun, str(REPO / "tests/two_process_driver.py"), str(root / "jobs.json"), str(root)]
            try:
                done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1200,
                                      env={**os.environ, "OMP_NUM_THREADS": "1"})
                log = f"exit code {done.returncode}\n{done.stdout}\n{done.stderr}"
            except subprocess.TimeoutExpired as timeout:  # a job stuck in a collective: keep what it printed
                output = [text.decode(errors="replace") if isinstance(text, bytes) else text or ""
                          for text in (timeout.stdout, timeout.stderr)]
                log = f"timed out after {timeout.timeout} s\n{output[0]}\n{output[1]}"
            (root / "log.txt").write_text(log)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_trains_on_two_processes_then_evaluates(name, two_process_runs, tmp_path):
    """The two-process run of this algorithm finished on both ranks, printed its evaluation table and folder
    once (from the main process), and evaluate.py's command then loads the folder by itself."""
    folder, run = two_process_runs / name, two_process_runs / name / "run"
    errors = sorted(folder.glob("error-rank*.txt"))
    assert not errors, errors[0].read_text()[-3000:]
    assert len(list(folder.glob("done-rank*"))) == 2, (two_process_runs / "log.txt").read_text()[-3000:]
    main_out, other_out = ((folder / f"stdout-rank{rank}.txt").read_text() for rank in (0, 1))
    assert main_out.strip().splitlines()[-1] == str(run.resolve()), main_out
    assert main_out.count("return (mean ± std)") == 1, main_out
    assert str(run.resolve()) not in other_out and "return (mean ± std)" not in other_out, other_out
    evaluate_main(["--policy", str(run), "--episodes", "2", "--num_envs", "2", "--output", str(tmp_path / "eval.json")])
    rows = json.loads((tmp_path / "eval.json").read_text())["results"]
    assert rows and all(row["episodes"] == 2 and np.isfinite(row["return_mean"]) for row in rows)


@pytest.mark.parametrize("name", NAMES)
def test_algo_name_alone_picks_a_built_in_job_the_algorithm_can_train_on(name):
    """`python train.py --algo NAME` with no other flag: a shipped config of this algorithm, on a built-in dataset
    (generated locally, so a fresh clone needs no download) whose actions the algorithm supports; and the same
    data choice without the repository's configs (an installed package)."""
    entry = registry.get(name)
    for config_dir in (REPO / "configs", None):
        cfg = parse_train_args(["--algo", name], config_dir=config_dir)
        assert type(cfg.algo) is entry.algorithm.config_class
        env = gym.make(BUILTIN_RECIPES[cfg.data.dataset].env_id)
        discrete = isinstance(env.action_space, gym.spaces.Discrete)
        assert entry.algorithm.supports_discrete if discrete else entry.algorithm.supports_continuous, cfg.data.dataset


@pytest.mark.parametrize("name", NAMES)
def test_trains_from_the_algo_name_alone(name, builtin_minari_root, tmp_path):
    """`python train.py --algo NAME` with nothing else that chooses the job trains: the shipped job's built-in
    dataset is generated locally and the algorithm trains on it (2 steps here, and no evaluation, which the
    tests above cover), leaving a policy folder of this algorithm."""
    with mock.patch.dict(os.environ, {"MINARI_DATASETS_PATH": str(builtin_minari_root)}):
        run = train(parse_train_args(["--algo", name, "--steps", "2", "--output_dir", str(tmp_path / "run"),
                                      "--checkpoint_every", "0", "--eval.final", "false"], config_dir=REPO / "configs"))
    policy = registry.load_policy(run)
    assert type(policy) is registry.get(name).policy and policy.config.algo == name
    assert json.loads((run / "dataset_metadata.json").read_text())["seqrl_metadata"]["dataset_id"] in BUILTIN_RECIPES


@pytest.mark.parametrize("name", NAMES)
def test_target_returns_only_for_return_conditioned_policies(name, pendulum_dir, cartpole_dir, tmp_path):
    entry = registry.get(name)
    dataset = load_dataset(str(dataset_for(entry, pendulum_dir, cartpole_dir)))
    policy = entry.algorithm(entry.config(), get_metadata(dataset)).policy()
    if policy.uses_target_return:
        policy.reset(2, 100.0)
    else:
        with pytest.raises(PolicyError, match="not return-conditioned, so it cannot use a target return"):
            policy.reset(2, 100.0)


@pytest.mark.parametrize("name", NAMES)
def test_each_named_loss_reaches_only_its_optimizer(name, pendulum_dir, cartpole_dir):
    entry = registry.get(name)
    dataset = load_dataset(str(dataset_for(entry, pendulum_dir, cartpole_dir)))
    config = entry.config()
    config.batch_size = 16
    algorithm = entry.algorithm(config, get_metadata(dataset))
    batch = {k: torch.from_numpy(v) for k, v in algorithm.make_sampler(dataset, seed=0).sample(0).items()}
    losses = algorithm.compute_loss(batch, step=0).losses()
    groups = algorithm.optimizer_groups()
    assert set(losses) <= set(groups), f"losses {set(losses)} without an optimizer in {set(groups)}"
    owner = {id(p): name for name, param_groups in groups.items() for g in param_groups for p in g["params"]}
    params = [p for p in algorithm.parameters() if p.requires_grad]
    assert all(id(p) in owner for p in params), "a trainable parameter belongs to no optimizer"
    for loss_name, loss in losses.items():
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        leaked = {owner[id(p)] for p, g in zip(params, grads) if g is not None and g.abs().sum() > 0} - {loss_name}
        assert not leaked, f"loss '{loss_name}' sends gradients to the '{leaked}' optimizer's parameters"


@pytest.mark.parametrize("name", [n for n in NAMES if not registry.get(n).algorithm.supports_discrete])
def test_continuous_only_algorithms_refuse_discrete_data(name, cartpole_dir, tmp_path):
    with pytest.raises(IncompatibleDatasetError, match="has discrete actions.*Algorithms for discrete actions"):
        train(parse_train_args(quick_args(name, cartpole_dir, tmp_path / "run")))
    assert not (tmp_path / "run" / "model.safetensors").exists()


@pytest.mark.parametrize("name", [n for n in NAMES if not registry.get(n).algorithm.supports_continuous])
def test_discrete_only_algorithms_refuse_continuous_data(name, pendulum_dir, tmp_path):
    with pytest.raises(IncompatibleDatasetError, match="has continuous actions.*Algorithms for continuous actions"):
        train(parse_train_args(quick_args(name, pendulum_dir, tmp_path / "run")))
