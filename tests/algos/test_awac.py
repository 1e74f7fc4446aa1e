"""AWAC: beats BC on mixed data and keeps its losses apart."""

from __future__ import annotations

import numpy as np
import pytest

from seqrl.data.schema import get_metadata
from seqrl.registry import get
from seqrl.training.setup import IncompatibleDatasetError, check_compatible

SMALL = dict(actor_hidden_sizes=[64, 64], critic_hidden_sizes=[64, 64], learning_rate=1e-3, actor_learning_rate=1e-3,
             tau=0.05)


def test_awac_beats_behaviour_cloning_on_mixed_data(bandit_dataset, train, bandit_regret, bc_bandit_regret):
    # A sharper temperature than the default 1: the bandit's advantages are small (rewards in [-2, 0]).
    algorithm = train("awac", bandit_dataset, steps=300, batch_size=128, lmbda=0.1, **SMALL)
    assert bandit_regret(algorithm.policy()) < 0.5 * bc_bandit_regret


def test_each_loss_reaches_only_its_optimizer(bandit_dataset, build, check_isolation):
    algorithm = build("awac", bandit_dataset, **SMALL)
    assert set(algorithm.optimizer_groups()) == {"actor", "critic"}
    check_isolation(algorithm, bandit_dataset)


def test_refuses_discrete_data(chain_dataset):
    with pytest.raises(IncompatibleDatasetError, match="continuous"):
        check_compatible(get("awac"), get_metadata(chain_dataset), "chain")


def test_policy_trains_through_the_loop_resumes_and_reloads(bandit_dataset, round_trip, tmp_path):
    observations = np.random.default_rng(0).uniform(-1, 1, (5, 2)).astype(np.float32)
    round_trip("awac", bandit_dataset, tmp_path, observations, **SMALL)
