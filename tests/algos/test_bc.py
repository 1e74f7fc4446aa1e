"""Behaviour cloning: recovers the behaviour policy (continuous MSE / NLL, discrete cross-entropy)."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

SMALL = dict(hidden_sizes=[64, 64], learning_rate=1e-3)


@pytest.mark.parametrize("loss", ["mse", "nll"])
def test_bc_recovers_a_noisy_linear_behaviour_policy(transition_dataset, train, loss):
    # Behaviour a = 0.6 s_0 + noise in env units [-2, 2]: the policy must undo the scaling to [-1, 1].
    rng = np.random.default_rng(0)
    observations = rng.uniform(-1, 1, (3000, 2)).astype(np.float32)
    actions = np.clip(1.2 * observations[:, :1] + 0.1 * rng.normal(size=(3000, 1)), -2, 2).astype(np.float32)
    dataset = transition_dataset(observations, actions, np.zeros(3000), action_space=spaces.Box(-2.0, 2.0, (1,), np.float32))
    algorithm = train("bc", dataset, steps=500, batch_size=256, loss=loss, **SMALL)
    assert algorithm.policy().config.actor_type == ("deterministic" if loss == "mse" else "gaussian")
    policy = algorithm.policy()
    test = rng.uniform(-1, 1, (256, 2)).astype(np.float32)
    policy.reset(256)
    np.testing.assert_allclose(policy.act(test), 1.2 * test[:, :1], atol=0.1)


def test_discrete_bc_imitates_the_most_frequent_action(transition_dataset, train):
    # States 0..2 one-hot; the behaviour takes action (state + 1) % 3 with probability 0.7, else uniform.
    rng = np.random.default_rng(0)
    states = rng.integers(0, 3, 3000)
    actions = np.where(rng.random(3000) < 0.7, (states + 1) % 3, rng.integers(0, 3, 3000))
    eye = np.eye(3, dtype=np.float32)
    dataset = transition_dataset(eye[states], actions, np.zeros(3000), action_space=spaces.Discrete(3))
    algorithm = train("bc", dataset, steps=300, batch_size=256, **SMALL)
    policy = algorithm.policy()
    policy.reset(3)
    np.testing.assert_array_equal(policy.act(eye), [1, 2, 0])


def test_unknown_loss_is_refused(bandit_dataset, build):
    with pytest.raises(ValueError, match="'mse' or 'nll'"):
        build("bc", bandit_dataset, loss="l1")


def test_the_only_loss_reaches_the_actor(bandit_dataset, chain_dataset, build, check_isolation):
    check_isolation(build("bc", bandit_dataset, **SMALL), bandit_dataset)
    check_isolation(build("bc", chain_dataset, **SMALL), chain_dataset)


def test_policies_train_through_the_loop_resume_and_reload(bandit_dataset, chain_dataset, round_trip, tmp_path):
    observations = np.random.default_rng(0).uniform(-1, 1, (5, 2)).astype(np.float32)
    round_trip("bc", bandit_dataset, tmp_path / "bc", observations, **SMALL)
    round_trip("bc", chain_dataset, tmp_path / "discrete", np.eye(5, dtype=np.float32), **SMALL)
