"""Conservative Q-Learning for discrete actions (Kumar et al. 2020, https://arxiv.org/abs/2006.04779,
section 4 "CQL(H)" on a DQN backbone, as in d3rlpy's DiscreteCQL).

With discrete actions the log-sum-exp over actions is exact, so no action sampling is needed:

    a*  = argmax_a mean_e Q_e(s', a)                                   (double DQN)
    y   = r_n + gamma^n (1 - d) min_e Q'_e(s', a*)
    L_Q = sum_e E[ huber(Q_e(s, a) - y) ] + alpha_cql sum_e E[ log sum_a' exp Q_e(s, a') - Q_e(s, a) ]

The policy acts greedily: ``argmax_a mean_e Q_e(s, a)``. Defaults: alpha_cql = 1 (d3rlpy; the paper
uses 1 to 4 on Atari), one 2x256 MLP Q network, lr 3e-4, gamma 0.99, batch 256, Huber loss.

Departure: the target network follows Polyak averaging (tau = 5e-3), as the continuous methods do,
instead of d3rlpy's/DQN's hard copy every 8000 steps, which is tuned for Atari's long runs;
on small low-dimensional tasks Polyak averaging is the usual, smoother choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from seqrl.algos.base import Algorithm, Output, TDConfig, policy_fields
from seqrl.data.schema import DatasetMetadata
from seqrl.errors import SeqRLError
from seqrl.models.networks import frozen_copy, polyak_update
from seqrl.models.value_based import DiscreteQPolicy, DiscreteQPolicyConfig
from seqrl.registry import register


@dataclass
class DiscreteCQLConfig(TDConfig):
    """Discrete CQL hyperparameters."""

    learning_rate: float = 3e-4
    """Learning rate of the Q networks."""
    min_q_weight: float = 1.0
    """alpha_cql: weight of the conservative regulariser."""
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    """Hidden widths of each Q network."""
    num_critics: int = 1
    """Q networks in the ensemble (targets use their minimum, acting their mean)."""


@register("cql_discrete", policy=DiscreteQPolicy,
          paper="Kumar et al. 2020, Conservative Q-Learning for Offline Reinforcement Learning")
class DiscreteCQL(Algorithm):
    """CQL(H) on a double DQN with a batched Q ensemble."""

    config_class = DiscreteCQLConfig
    targets = {"q_target": "model.q"}
    data_shape = "transition"
    supports_discrete = True
    supports_continuous = False

    def __init__(self, config: DiscreteCQLConfig, metadata: DatasetMetadata):
        super().__init__(config, metadata)
        if config.num_critics < 1:
            raise SeqRLError(f"cql_discrete: num_critics must be >= 1, got {config.num_critics}.")
        self.model = DiscreteQPolicy(DiscreteQPolicyConfig(hidden_sizes=config.hidden_sizes, num_critics=config.num_critics,
                                                           **policy_fields(metadata, "cql_discrete")))
        self.q_target = frozen_copy(self.model.q)

    def compute_loss(self, batch: dict[str, torch.Tensor], step: int) -> Output:
        cfg, q_net = self.config, self.model.q
        observations, next_observations, actions = batch["observations"], batch["next_observations"], batch["actions"]
        with torch.no_grad():
            next_actions = q_net(next_observations).float().mean(0).argmax(-1)  # [B], chosen by the online Q
            q_next = self.q_target(next_observations).float()  # [E, B, n]
            target_q = q_next.gather(-1, next_actions.view(1, -1, 1).expand(q_next.shape[0], -1, 1)).squeeze(-1)
            target_q = target_q.min(0).values  # [B], valued by the target Q
            targets = batch["rewards"] + batch["discounts"] * (1.0 - batch["terminals"]) * target_q  # [B]

        q_all = q_net(observations).float()  # [E, B, n]
        q_data = q_all.gather(-1, actions.view(1, -1, 1).expand(q_all.shape[0], -1, 1)).squeeze(-1)  # [E, B]
        td_loss = F.smooth_l1_loss(q_data, targets.expand_as(q_data), reduction="none").mean(-1).sum()
        gap = (torch.logsumexp(q_all, dim=-1) - q_data).mean(-1)  # [E]
        conservative = cfg.min_q_weight * gap.sum()
        loss = td_loss + conservative
        metrics = {"critic_loss": loss.detach(), "td_loss": td_loss.detach(), "conservative_loss": conservative.detach(),
                   "cql_gap": gap.detach().mean(), "q_data": q_data.detach().mean(), "target_q": target_q.mean()}
        return Output(loss={"critic": loss}, metrics=metrics)

    def optimizer_groups(self) -> dict[str, list[dict]]:
        return {"critic": [{"params": list(self.model.parameters()), "lr": self.config.learning_rate}]}

    def after_step(self, step: int) -> None:
        polyak_update(self.q_target, self.model.q, self.config.tau)

    def policy(self) -> DiscreteQPolicy:
        return self.model
