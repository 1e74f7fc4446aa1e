"""Cal-QL: the policy proposals' Q is floored at the Monte Carlo return, uniform proposals are not, and
the sampler gives the returns of the transitions' own episodes."""

from __future__ import annotations

import numpy as np
import torch

from .conftest import make_algorithm, transition_dataset

SMALL = dict(batch_size=64, num_sampled_actions=4, actor_hidden_sizes=[32, 32], critic_hidden_sizes=[32, 32])


def small_dataset():
    rng = np.random.default_rng(0)
    observations = rng.uniform(-1, 1, (200, 2)).astype(np.float32)
    actions = rng.uniform(-1, 1, (200, 1)).astype(np.float32)
    return transition_dataset(observations, actions, observations[:, 0], episode_index=np.arange(200) // 20,
                              terminations=np.arange(200) % 20 == 19)


def test_penalty_uses_max_of_q_and_mc_return():
    algorithm = make_algorithm("calql", small_dataset(), **SMALL)
    num = SMALL["num_sampled_actions"]
    q = torch.tensor([[[-5.0] * num + [-5.0, 2.0] * num]])  # [E=1, B=1, 3N]: uniform, pi(.|s), pi(.|s')
    bounded = algorithm.bound_proposals(q, {"mc_returns": torch.tensor([1.0])})
    np.testing.assert_allclose(bounded[0, 0, :num], -5.0)  # uniform proposals keep their Q
    np.testing.assert_allclose(bounded[0, 0, num:], [1.0, 2.0] * num)  # max(Q, G): -5 -> 1, 2 stays
    cql = make_algorithm("cql", small_dataset(), **SMALL)
    assert torch.equal(cql.bound_proposals(q, {}), q)


def test_calibration_only_raises_the_penalty_and_matches_cql_below_the_floor():
    dataset = small_dataset()
    calql, cql = make_algorithm("calql", dataset, **SMALL), make_algorithm("cql", dataset, **SMALL)
    cql.load_state_dict(calql.state_dict())
    batch = {k: torch.from_numpy(v) for k, v in calql.make_sampler(dataset, seed=0).sample(0).items()}
    assert "mc_returns" in batch

    def conservative(algorithm, mc_returns):
        torch.manual_seed(0)
        return algorithm({**batch, "mc_returns": torch.full_like(batch["rewards"], mc_returns)}, 0).metrics["conservative_loss"]

    # A floor below every Q changes nothing: Cal-QL is CQL.
    torch.testing.assert_close(conservative(calql, -1e4), conservative(cql, 0.0))
    # A floor above every Q raises the log-sum-exp of the policy proposals, so the penalty grows.
    assert conservative(calql, 50.0) > conservative(cql, 0.0) + 1.0


def test_sampler_returns_are_discounted_returns_of_the_episode():
    dataset = small_dataset()
    algorithm = make_algorithm("calql", dataset, gamma=0.9, **SMALL)
    sampler = algorithm.make_sampler(dataset, seed=0)
    batch = sampler.transitions(np.array([0, 19, 20]))
    rewards = sampler.rewards.astype(np.float64)
    expected_first = sum(0.9**k * rewards[k] for k in range(20))
    np.testing.assert_allclose(batch["mc_returns"], [expected_first, rewards[19], sum(0.9**k * rewards[20 + k] for k in range(20))],
                               rtol=1e-5)
    assert algorithm.policy().config.algo == "calql"
