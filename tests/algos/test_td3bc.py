"""TD3+BC: beats BC on mixed data, updates the actor and targets every policy_delay steps only, and
keeps its losses apart."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqrl.data.schema import get_metadata
from seqrl.registry import get
from seqrl.training.setup import IncompatibleDatasetError, check_compatible

SMALL = dict(actor_hidden_sizes=[64, 64], critic_hidden_sizes=[64, 64], learning_rate=1e-3, actor_learning_rate=1e-3,
             tau=0.05)


def test_td3bc_beats_behaviour_cloning_on_mixed_data(bandit_dataset, train, bandit_regret, bc_bandit_regret):
    algorithm = train("td3bc", bandit_dataset, steps=500, batch_size=256, **SMALL)
    assert bandit_regret(algorithm.policy()) < 0.5 * bc_bandit_regret


def test_actor_and_targets_move_only_every_policy_delay_steps(bandit_dataset, build, check_isolation):
    algorithm = build("td3bc", bandit_dataset, policy_delay=2, **SMALL)
    batch = {k: torch.from_numpy(v) for k, v in algorithm.make_sampler(bandit_dataset, seed=0).sample(0).items()}
    assert set(algorithm(batch, 0).losses()) == {"critic", "actor"}
    check_isolation(algorithm, bandit_dataset, step=0)
    target_before = [p.clone() for p in algorithm.critic_target.parameters()]
    assert set(algorithm(batch, 1).losses()) == {"critic"}
    check_isolation(algorithm, bandit_dataset, step=1)
    algorithm.after_step(1)  # after a critic-only step the targets stay
    assert all(torch.equal(a, b) for a, b in zip(target_before, algorithm.critic_target.parameters()))


def test_refuses_discrete_data(chain_dataset):
    with pytest.raises(IncompatibleDatasetError, match="continuous"):
        check_compatible(get("td3bc"), get_metadata(chain_dataset), "chain")


def test_policy_trains_through_the_loop_resumes_and_reloads(bandit_dataset, round_trip, tmp_path):
    observations = np.random.default_rng(0).uniform(-1, 1, (5, 2)).astype(np.float32)
    round_trip("td3bc", bandit_dataset, tmp_path, observations, **SMALL)
