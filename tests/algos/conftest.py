"""Fixtures for the value-based algorithm tests: small problems with known answers, a training
loop that does what seqrl.training.loop does per step (without Accelerate), and a check that each
named loss reaches only its own optimizer's parameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from seqrl.data.schema import build_dataset, get_metadata
from seqrl.registry import get
from seqrl.training.setup import build_optimizer

from ..conftest import make_metadata

BOX = spaces.Box(-1.0, 1.0, (1,), np.float32)


def transition_dataset(observations, actions, rewards, next_observations=None, terminations=None,
                       episode_index=None, action_space=BOX, dataset_id="test/problem-v0"):
    """A seqrl dataset from transition arrays; by default every transition is a terminal one-step episode."""
    observations = np.asarray(observations, np.float32).reshape(len(rewards), -1)
    num_steps, obs_dim = observations.shape
    if episode_index is None:
        episode_index = np.arange(num_steps)
    episode_index = np.asarray(episode_index)
    starts = np.r_[True, episode_index[1:] != episode_index[:-1]]
    timestep = np.arange(num_steps) - np.maximum.accumulate(np.where(starts, np.arange(num_steps), 0))
    last = np.r_[episode_index[1:] != episode_index[:-1], True]
    terminations = last.copy() if terminations is None else np.asarray(terminations, bool)
    columns = {
        "episode_index": episode_index, "timestep": timestep, "observations": observations,
        "actions": np.asarray(actions), "rewards": np.asarray(rewards, np.float32), "terminations": terminations,
        "truncations": last & ~terminations,
        "next_observations": observations if next_observations is None else np.asarray(next_observations, np.float32),
    }
    return build_dataset(columns, make_metadata(obs_dim, action_space=action_space, dataset_id=dataset_id))


def best_bandit_action(observations: np.ndarray) -> np.ndarray:
    """a*(s) = 0.5 + 0.3 s_0, in [0.2, 0.8]: far from the mean (0) of the random half of the data."""
    return 0.5 + 0.3 * observations[..., :1]


@pytest.fixture(scope="session")
def bandit_dataset():
    """One-step continuous bandit, reward -(a - a*(s))^2: half the actions are near-optimal, half uniform."""
    rng = np.random.default_rng(0)
    num = 4000
    observations = rng.uniform(-1, 1, (num, 2)).astype(np.float32)
    best = best_bandit_action(observations)
    good = np.clip(best + 0.05 * rng.normal(size=best.shape), -1, 1)
    actions = np.where(rng.random((num, 1)) < 0.5, good, rng.uniform(-1, 1, (num, 1))).astype(np.float32)
    rewards = -((actions - best) ** 2).sum(-1)
    return transition_dataset(observations, actions, rewards)


@pytest.fixture(scope="session")
def bandit_regret():
    """Mean regret E[(pi(s) - a*(s))^2] of a policy on fresh states."""

    def regret(policy) -> float:
        observations = np.random.default_rng(123).uniform(-1, 1, (512, 2)).astype(np.float32)
        policy.reset(len(observations))
        actions = policy.act(observations)
        return float(((actions - best_bandit_action(observations)) ** 2).sum(-1).mean())

    return regret


@pytest.fixture(scope="session")
def bc_bandit_regret(bandit_dataset, bandit_regret):
    """Regret of behaviour cloning on the whole bandit data: the bar the offline RL methods must beat."""
    algorithm = run_training("bc", bandit_dataset, steps=800, batch_size=256, hidden_sizes=[64, 64], learning_rate=1e-3)
    return bandit_regret(algorithm.policy())


@pytest.fixture(scope="session")
def chain_dataset():
    """Five-state chain (one-hot states), action 1 moves right and 0 left; reaching state 4 pays 1 and
    terminates; episodes of a uniformly random policy from state 0, truncated after 12 steps."""
    rng = np.random.default_rng(0)
    rows = []
    for episode in range(400):
        state = 0
        for _ in range(12):
            action = int(rng.integers(2))
            next_state = min(state + 1, 4) if action else max(state - 1, 0)
            rows.append((episode, state, action, float(next_state == 4), next_state, next_state == 4))
            state = next_state
            if state == 4:
                break
    episode_index, states, actions, rewards, next_states, terminations = map(np.array, zip(*rows))
    eye = np.eye(5, dtype=np.float32)
    return transition_dataset(eye[states], actions, rewards, eye[next_states], terminations, episode_index,
                              action_space=spaces.Discrete(2))


def chain_policy_actions(policy) -> np.ndarray:
    """Greedy actions of ``policy`` in the non-terminal chain states 0..3."""
    policy.reset(4)
    return policy.act(np.eye(5, dtype=np.float32)[:4])


def make_algorithm(name: str, dataset, **config):
    entry = get(name)
    return entry.algorithm(entry.config(**config), get_metadata(dataset))


def run_training(name: str, dataset, steps: int, seed: int = 0, **config):
    """Train like seqrl.training.loop does per step: one backward of the summed named losses, one
    optimizer step over every named group, then after_step. Returns the trained algorithm.

    Runs on one thread: the networks are tiny, and several threads on a shared machine are slower."""
    torch.manual_seed(seed)
    algorithm = make_algorithm(name, dataset, **config)
    sampler = algorithm.make_sampler(dataset, seed=seed)
    optimizer, _ = build_optimizer(algorithm, algorithm.config)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for step in range(steps):
            batch = {k: torch.from_numpy(v) for k, v in sampler.sample(step).items()}
            output = algorithm(batch, step)
            sum(output.losses().values()).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            algorithm.after_step(step)
    finally:
        torch.set_num_threads(threads)
    return algorithm


def assert_losses_isolated(algorithm, dataset, step: int = 0) -> None:
    """Backpropagate each named loss alone: it must leave gradients on its own optimizer's parameters
    and on no other parameter (targets included)."""
    owner = {id(p): name for name, groups in algorithm.optimizer_groups().items() for g in groups for p in g["params"]}
    batch = {k: torch.from_numpy(v) for k, v in algorithm.make_sampler(dataset, seed=0).sample(step).items()}
    losses = algorithm(batch, step).losses()
    assert set(losses) <= {name for name in owner.values()}, f"losses without an optimizer: {set(losses)}"
    for loss_name, loss in losses.items():
        algorithm.zero_grad(set_to_none=True)
        loss.backward(retain_graph=True)
        reached = {param_name for param_name, p in algorithm.named_parameters()
                   if p.grad is not None and p.grad.abs().sum() > 0}
        assert reached, f"loss '{loss_name}' reaches no parameter"
        for param_name, p in algorithm.named_parameters():
            if param_name in reached:
                assert owner.get(id(p)) == loss_name, f"loss '{loss_name}' leaks into {param_name} ({owner.get(id(p))})"
    algorithm.zero_grad(set_to_none=True)


def run_loop(name: str, dataset, run_dir, steps: int, resume: bool = False, **config):
    """Train with the real loop (seqrl.training.loop.train) from a dataset saved under ``run_dir``, with
    batches of 32 on one thread (the loop's plumbing is under test here, not learning)."""
    from seqrl.training.config import DataConfig, EvalConfig, TrainConfig
    from seqrl.training.loop import train

    data_dir = run_dir / "data"
    if not data_dir.exists():
        dataset.save_to_disk(str(data_dir))
    cfg = TrainConfig(algo=get(name).config(**{**config, "batch_size": 32}),
                      data=DataConfig(dataset=str(data_dir), validate=False), steps=steps, log_every=2,
                      checkpoint_every=2, eval=EvalConfig(final=False), output_dir=str(run_dir / "run"), resume=resume)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(cfg)
    finally:
        torch.set_num_threads(threads)


def loop_round_trip(name: str, dataset, run_dir, observations: np.ndarray, **config) -> None:
    """Train 4 steps through the loop, resume to 6, then load the saved policy by its folder alone: it
    is the algorithm's registered policy class and acts like the last checkpoint's copy."""
    from seqrl.registry import load_policy

    run_loop(name, dataset, run_dir, steps=4, **config)
    run = run_loop(name, dataset, run_dir, steps=6, resume=True, **config)
    policy = load_policy(run)
    assert type(policy) is get(name).policy and policy.config.algo == name
    checkpoint = load_policy(run / "checkpoints" / "step-00000006" / "policy")
    actions = []
    for loaded in (policy, checkpoint):
        loaded.reset(len(observations))  # also restarts BCQ's seeded candidate sampling
        actions.append(loaded.act(observations))
    np.testing.assert_array_equal(actions[0], actions[1])


@pytest.fixture(scope="session")
def train():
    return run_training


@pytest.fixture(scope="session")
def round_trip():
    return loop_round_trip


@pytest.fixture(scope="session")
def train_loop():
    return run_loop


@pytest.fixture(scope="session")
def build():
    return make_algorithm


@pytest.fixture(scope="session")
def check_isolation():
    return assert_losses_isolated


@pytest.fixture(scope="session")
def chain_actions():
    return chain_policy_actions


@pytest.fixture(scope="session", name="transition_dataset")
def _transition_dataset_fixture():
    return transition_dataset
