"""Discrete Batch-Constrained deep Q-learning (Fujimoto et al. 2019, "Benchmarking Batch Deep
Reinforcement Learning Algorithms", https://arxiv.org/abs/1910.01708).

An imitation network ``G`` estimates the behaviour policy; Q-learning only considers actions that
``G`` finds likely enough relative to the most likely one:

    A(s) = { a : G(a|s) / max_a' G(a'|s) >= tau }
    a*   = argmax_{a in A(s')} Q(s', a)
    y    = r_n + gamma^n (1 - d) Q'(s', a*)
    L    = E[ huber(Q(s, a) - y) ] - E[ log G(a|s) ] + 0.01 E[ f(s)^2 ]

where ``f`` are G's logits (the reference's logit penalty). Acting: ``argmax_{a in A(s)} Q(s, a)``.
Defaults are the paper's for low-dimensional tasks: tau = 0.3, Adam lr 3e-4, gamma 0.99, Polyak
target updates with rate 5e-3, batch 64; 2x256 MLPs for Q and G (the reference uses 2x256 too).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from seqrl.algos.base import Algorithm, Output, TDConfig, policy_fields
from seqrl.data.schema import DatasetMetadata
from seqrl.models.networks import frozen_copy, polyak_update
from seqrl.models.value_based import DiscreteBCQPolicy, DiscreteBCQPolicyConfig
from seqrl.registry import register


@dataclass
class DiscreteBCQConfig(TDConfig):
    """Discrete BCQ hyperparameters (Fujimoto et al. 2019b, non-Atari settings)."""

    batch_size: int = 64
    learning_rate: float = 3e-4
    """Learning rate of the Q and imitation networks."""
    threshold: float = 0.3
    """tau of the paper: an action is allowed when G(a|s) / max G(.|s) >= threshold (0: DQN, 1: imitation)."""
    logit_penalty: float = 1e-2
    """Weight of the squared-logit penalty on the imitation network."""
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    """Hidden widths of the Q and imitation networks."""


@register("bcq_discrete", policy=DiscreteBCQPolicy,
          paper="Fujimoto et al. 2019, Benchmarking Batch Deep Reinforcement Learning Algorithms")
class DiscreteBCQ(Algorithm):
    """Discrete BCQ: Q-learning restricted to actions the imitation network finds likely."""

    config_class = DiscreteBCQConfig
    targets = {"q_target": "model.q"}
    data_shape = "transition"
    supports_discrete = True
    supports_continuous = False

    def __init__(self, config: DiscreteBCQConfig, metadata: DatasetMetadata):
        super().__init__(config, metadata)
        self.model = DiscreteBCQPolicy(DiscreteBCQPolicyConfig(hidden_sizes=config.hidden_sizes, threshold=config.threshold,
                                                               **policy_fields(metadata, "bcq_discrete")))
        self.q_target = frozen_copy(self.model.q)

    def compute_loss(self, batch: dict[str, torch.Tensor], step: int) -> Output:
        cfg, model = self.config, self.model
        observations, next_observations, actions = batch["observations"], batch["next_observations"], batch["actions"]
        with torch.no_grad():
            next_actions = model.greedy_allowed(model.q(next_observations)[0].float(), model.imitation(next_observations))
            target_q = self.q_target(next_observations)[0].float().gather(-1, next_actions[:, None]).squeeze(-1)  # [B]
            targets = batch["rewards"] + batch["discounts"] * (1.0 - batch["terminals"]) * target_q  # [B]

        q_data = model.q(observations)[0].float().gather(-1, actions[:, None]).squeeze(-1)  # [B]
        q_loss = F.smooth_l1_loss(q_data, targets)
        logits = model.imitation(observations).float()  # [B, n]
        imitation_loss = F.cross_entropy(logits, actions) + cfg.logit_penalty * logits.square().mean()
        metrics = {"critic_loss": q_loss.detach(), "imitation_loss": imitation_loss.detach(),
                   "q_data": q_data.detach().mean(), "target_q": target_q.mean()}
        return Output(loss={"critic": q_loss, "imitation": imitation_loss}, metrics=metrics)

    def optimizer_groups(self) -> dict[str, list[dict]]:
        lr = self.config.learning_rate
        return {"critic": [{"params": list(self.model.q.parameters()), "lr": lr}],
                "imitation": [{"params": list(self.model.imitation.parameters()), "lr": lr}]}

    def after_step(self, step: int) -> None:
        polyak_update(self.q_target, self.model.q, self.config.tau)

    def policy(self) -> DiscreteBCQPolicy:
        return self.model
