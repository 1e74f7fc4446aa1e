"""IQL: V reaches the expectile of Q over the data's actions, it beats BC on mixed data, its losses stay
apart, and the categorical form learns a chain from random data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

SMALL = dict(actor_hidden_sizes=[64, 64], critic_hidden_sizes=[64, 64], learning_rate=1e-3, actor_learning_rate=1e-3,
             tau=0.05)


def uniform_expectile(tau: float) -> float:
    """The tau-expectile m of U(-1, 1): tau E[(X - m)+] = (1 - tau) E[(m - X)+], i.e.
    tau (1 - m)^2 = (1 - tau) (1 + m)^2."""
    return (math.sqrt(tau) - math.sqrt(1 - tau)) / (math.sqrt(tau) + math.sqrt(1 - tau))


@pytest.mark.parametrize("expectile", [0.7, 0.9])
def test_value_reaches_the_upper_expectile_of_q(transition_dataset, train, expectile):
    # One state, a ~ U(-1, 1), reward a, terminal: Q(s, a) = a, so V(s) must be the expectile of U(-1, 1)
    # (0.209 for 0.7 and exactly 0.5 for 0.9), well above the mean 0.
    actions = np.random.default_rng(0).uniform(-1, 1, (4000, 1)).astype(np.float32)
    dataset = transition_dataset(np.zeros((4000, 1)), actions, actions[:, 0])
    algorithm = train("iql", dataset, steps=400, batch_size=256, expectile=expectile, actor_hidden_sizes=[16],
                      critic_hidden_sizes=[64, 64], learning_rate=3e-3, tau=0.1)
    with torch.no_grad():
        value = algorithm.value(torch.zeros(1, 1)).item()
    assert value == pytest.approx(uniform_expectile(expectile), abs=0.05)


def test_iql_beats_behaviour_cloning_on_mixed_data(bandit_dataset, train, bandit_regret, bc_bandit_regret):
    algorithm = train("iql", bandit_dataset, steps=300, batch_size=128, **SMALL)
    assert bandit_regret(algorithm.policy()) < 0.5 * bc_bandit_regret


def test_each_loss_reaches_only_its_optimizer(bandit_dataset, chain_dataset, build, check_isolation):
    algorithm = build("iql", bandit_dataset, **SMALL)
    assert set(algorithm.optimizer_groups()) == {"actor", "critic", "value"}
    check_isolation(algorithm, bandit_dataset)
    check_isolation(build("iql", chain_dataset, **SMALL), chain_dataset)


def test_categorical_iql_learns_the_chain_from_random_data(chain_dataset, train, chain_actions):
    algorithm = train("iql", chain_dataset, steps=400, gamma=0.9, **SMALL)
    assert algorithm.policy().config.actor_type == "categorical"
    np.testing.assert_array_equal(chain_actions(algorithm.policy()), [1, 1, 1, 1])


def test_normalize_reward_scales_by_the_return_spread(chain_dataset, build):
    algorithm = build("iql", chain_dataset, normalize_reward=True, reward_scale=2.0)
    stats = algorithm.metadata.stats
    expected = 2.0 * 1000.0 / (stats["return_max"] - stats["return_min"])
    assert algorithm.sampler_options()["reward_scale"] == pytest.approx(expected)


def test_policies_train_through_the_loop_resume_and_reload(bandit_dataset, chain_dataset, round_trip, tmp_path):
    observations = np.random.default_rng(0).uniform(-1, 1, (5, 2)).astype(np.float32)
    round_trip("iql", bandit_dataset, tmp_path / "iql", observations, **SMALL)
    round_trip("iql", chain_dataset, tmp_path / "discrete", np.eye(5, dtype=np.float32), **SMALL)
