"""BCQ: actions stay inside a narrow data support even when Q rewards leaving it, it beats BC on mixed
data, its losses stay apart, and discrete BCQ learns a chain and respects its threshold."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqrl.data.schema import get_metadata
from seqrl.models.value_based import DiscreteBCQPolicy, DiscreteBCQPolicyConfig
from seqrl.registry import get
from seqrl.training.setup import IncompatibleDatasetError, check_compatible

SMALL = dict(batch_size=128, actor_hidden_sizes=[64, 64], critic_hidden_sizes=[64, 64], vae_hidden_sizes=[64, 64],
             tau=0.05)


def test_actions_stay_within_a_narrow_data_support(transition_dataset, train):
    # Data actions are 0.3 +- 0.02 and the reward is the action itself, so Q keeps rising towards 1.
    rng = np.random.default_rng(0)
    observations = rng.uniform(-1, 1, (2000, 2)).astype(np.float32)
    actions = np.clip(0.3 + 0.02 * rng.normal(size=(2000, 1)), -1, 1).astype(np.float32)
    algorithm = train("bcq", transition_dataset(observations, actions, actions[:, 0]), steps=300, **SMALL)
    policy = algorithm.policy()
    policy.reset(512)
    acted = policy.act(rng.uniform(-1, 1, (512, 2)).astype(np.float32))
    # Within the data's range plus at most phi = 0.05 of perturbation, and at its upper (better) end.
    assert acted.min() > 0.2 and acted.max() < 0.3 + 0.1 + 0.05
    assert acted.mean() > 0.3


def test_bcq_beats_behaviour_cloning_on_mixed_data(bandit_dataset, train, bandit_regret, bc_bandit_regret):
    algorithm = train("bcq", bandit_dataset, steps=300, **SMALL)
    assert bandit_regret(algorithm.policy()) < 0.5 * bc_bandit_regret


def test_each_loss_reaches_only_its_optimizer(bandit_dataset, chain_dataset, build, check_isolation):
    algorithm = build("bcq", bandit_dataset, **SMALL)
    assert set(algorithm.optimizer_groups()) == {"vae", "critic", "actor"}
    check_isolation(algorithm, bandit_dataset)
    check_isolation(build("bcq_discrete", chain_dataset), chain_dataset)


def test_acting_picks_the_best_candidate_by_the_first_critic(bandit_dataset, build):
    algorithm = build("bcq", bandit_dataset, **SMALL)
    policy = algorithm.policy()
    # Acting draws the reference's 100 candidates; the target's 10 are a separate setting.
    assert (policy.config.num_candidates, algorithm.config.num_samples) == (100, 10)
    observations = torch.randn(6, 2)
    with torch.no_grad():
        candidates = policy.candidate_actions(observations, 100, torch.Generator().manual_seed(0))  # [B, N, A]
        q_first = policy.critic(observations.unsqueeze(1), candidates)[0]  # [B, N]
        policy.reset(6)  # acting latents restart from seed 0
        acted = policy._act(observations, None, None)
    np.testing.assert_allclose(acted.numpy(), candidates[torch.arange(6), q_first.argmax(-1)].numpy())
    assert candidates.shape == (6, 100, 1) and candidates.abs().max() <= 1.0
    policy.reset(6)
    again = policy.act(observations.numpy())
    policy.reset(6)
    np.testing.assert_array_equal(policy.act(observations.numpy()), again)  # reproducible after reset


def test_discrete_bcq_learns_the_chain_from_random_data(chain_dataset, train, chain_actions):
    algorithm = train("bcq_discrete", chain_dataset, steps=400, batch_size=128, hidden_sizes=[64, 64],
                      learning_rate=1e-3, tau=0.05, gamma=0.9)
    np.testing.assert_array_equal(chain_actions(algorithm.policy()), [1, 1, 1, 1])


def test_discrete_bcq_acts_only_among_likely_enough_actions():
    policy = DiscreteBCQPolicy(DiscreteBCQPolicyConfig(state_dim=1, act_dim=3, threshold=0.3))
    q_values = torch.tensor([[5.0, 1.0, 0.0], [5.0, 1.0, 0.0]])
    # Relative probabilities 0.2 / 1 / 0.5 (row 0) and 1 / 0.5 / 0.25 (row 1).
    logits = torch.log(torch.tensor([[0.2, 1.0, 0.5], [1.0, 0.5, 0.25]]))
    np.testing.assert_array_equal(policy.greedy_allowed(q_values, logits).numpy(), [1, 0])


def test_continuous_bcq_refuses_discrete_data_and_names_the_discrete_variant(chain_dataset, bandit_dataset):
    with pytest.raises(IncompatibleDatasetError, match="bcq_discrete"):
        check_compatible(get("bcq"), get_metadata(chain_dataset), "seqrl/cartpole/mixed-v0")
    with pytest.raises(IncompatibleDatasetError, match="bcq"):
        check_compatible(get("bcq_discrete"), get_metadata(bandit_dataset), "seqrl/pendulum/mixed-v0")


def test_policies_train_through_the_loop_resume_and_reload(bandit_dataset, chain_dataset, round_trip, tmp_path):
    observations = np.random.default_rng(0).uniform(-1, 1, (5, 2)).astype(np.float32)
    round_trip("bcq", bandit_dataset, tmp_path / "bcq", observations, **SMALL)
    round_trip("bcq_discrete", chain_dataset, tmp_path / "discrete", np.eye(5, dtype=np.float32), hidden_sizes=[16])
