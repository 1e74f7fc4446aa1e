"""CQL: out-of-distribution actions get lower Q than the data's, it beats BC on mixed data, its losses
stay apart, and discrete CQL learns a chain from random data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from seqrl.data.schema import get_metadata
from seqrl.registry import get
from seqrl.training.setup import IncompatibleDatasetError, check_compatible

SMALL = dict(batch_size=128, num_sampled_actions=4, actor_hidden_sizes=[32, 32], critic_hidden_sizes=[64, 64],
             learning_rate=1e-3, actor_learning_rate=1e-3, alpha_learning_rate=1e-3, tau=0.05)


def test_out_of_distribution_actions_get_lower_q_than_data_actions(transition_dataset, train):
    # Actions near 0 only; the reward depends on the state alone, so plain regression has no reason
    # to tell actions apart, while CQL must push Q down away from the data.
    rng = np.random.default_rng(0)
    observations = rng.uniform(-1, 1, (2000, 2)).astype(np.float32)
    actions = np.clip(0.1 * rng.normal(size=(2000, 1)), -1, 1).astype(np.float32)
    dataset = transition_dataset(observations, actions, observations[:, 0])

    def q_gap(min_q_weight: float) -> torch.Tensor:
        algorithm = train("cql", dataset, steps=200, min_q_weight=min_q_weight, **SMALL)
        states = algorithm.model.normalize_observations(torch.from_numpy(observations[:256]))
        with torch.no_grad():
            q_data = algorithm.critic(states, torch.from_numpy(actions[:256])).min(0).values  # [B]
            q_far = torch.stack([algorithm.critic(states, torch.full((256, 1), a)).min(0).values for a in (-0.9, 0.9)])
        return q_data - q_far.max(0).values  # [B]

    conservative, plain = q_gap(5.0), q_gap(0.0)
    assert conservative.min() > 1.0, f"some state has OOD Q within {conservative.min():.3f} of its data Q"
    assert conservative.mean() > plain.abs().mean() + 1.0


def test_cql_beats_behaviour_cloning_on_mixed_data(bandit_dataset, train, bandit_regret, bc_bandit_regret):
    algorithm = train("cql", bandit_dataset, steps=300, **SMALL)
    assert bandit_regret(algorithm.policy()) < 0.5 * bc_bandit_regret


@pytest.mark.parametrize("lagrange", [False, True])
def test_each_loss_reaches_only_its_optimizer(bandit_dataset, build, check_isolation, lagrange):
    algorithm = build("cql", bandit_dataset, lagrange=lagrange, **SMALL)
    expected = {"actor", "critic", "alpha"} | ({"alpha_prime"} if lagrange else set())
    assert set(algorithm.optimizer_groups()) == expected
    check_isolation(algorithm, bandit_dataset)
    check_isolation(build("cql", bandit_dataset, bc_steps=10, **SMALL), bandit_dataset, step=0)  # BC warm start


def test_lagrange_multiplier_grows_while_the_gap_exceeds_its_target(bandit_dataset, train):
    algorithm = train("cql", bandit_dataset, steps=30, lagrange=True, target_action_gap=-5.0,
                      alpha_prime_learning_rate=0.05, **SMALL)
    assert algorithm.log_alpha_prime.item() > 0.5  # gap > -5 always, so alpha' rises from 1


def test_lagrange_threshold_bounds_the_weighted_gap(bandit_dataset, build):
    # The paper's code: L_alpha' = -alpha' (alpha_cql * gap - tau), with alpha' = 1 at the start.
    algorithm = build("cql", bandit_dataset, lagrange=True, target_action_gap=3.0, min_q_weight=5.0, **SMALL)
    batch = {k: torch.from_numpy(v) for k, v in algorithm.make_sampler(bandit_dataset, seed=0).sample(0).items()}
    metrics = algorithm.compute_loss(batch, 0).metrics
    torch.testing.assert_close(metrics["alpha_prime_loss"], -(5.0 * metrics["cql_gap"] - 3.0), rtol=1e-5, atol=1e-5)


def test_discrete_cql_learns_the_chain_from_random_data(chain_dataset, train, chain_actions, check_isolation, build):
    algorithm = train("cql_discrete", chain_dataset, steps=400, hidden_sizes=[64, 64], learning_rate=1e-3, tau=0.05,
                      gamma=0.9)
    np.testing.assert_array_equal(chain_actions(algorithm.policy()), [1, 1, 1, 1])
    check_isolation(build("cql_discrete", chain_dataset, num_critics=2), chain_dataset)


def test_each_form_refuses_the_other_action_space_and_names_its_variant(bandit_dataset, chain_dataset):
    with pytest.raises(IncompatibleDatasetError, match="cql_discrete"):
        check_compatible(get("cql"), get_metadata(chain_dataset), "chain")
    with pytest.raises(IncompatibleDatasetError, match="cql"):
        check_compatible(get("cql_discrete"), get_metadata(bandit_dataset), "bandit")


def test_policies_train_through_the_loop_resume_and_reload(bandit_dataset, chain_dataset, round_trip, tmp_path):
    observations = np.random.default_rng(0).uniform(-1, 1, (5, 2)).astype(np.float32)
    round_trip("cql", bandit_dataset, tmp_path / "cql", observations, **SMALL)
    round_trip("cql_discrete", chain_dataset, tmp_path / "discrete", np.eye(5, dtype=np.float32), hidden_sizes=[16])


def test_unbounded_actions_are_refused(transition_dataset, build):
    unbounded = spaces.Box(-np.inf, np.inf, (1,), np.float32)
    dataset = transition_dataset(np.zeros((4, 2)), np.zeros((4, 1)), np.zeros(4), action_space=unbounded)
    with pytest.raises(ValueError, match="bounded Box action space"):
        build("cql", dataset)
