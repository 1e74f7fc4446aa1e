"""Calibrated Q-Learning (Nakamoto et al. 2023, https://arxiv.org/abs/2303.05479).

CQL (:mod:`seqrl.algos.cql`) whose regulariser pushes the Q of the policy's actions down only to the
Monte Carlo return of the data, not below it. In the log-sum-exp over proposals, the Q of the policy's
proposals at ``s`` (sampled from pi(.|s) and from pi(.|s'), both scored at ``s``) becomes::

    Q~_e(s, a_j) = max(Q_e(s, a_j), G(s)),     G(s_t) = sum_{k >= 0} gamma^k r_{t+k}   (to the episode's end)

with ``G`` the discounted return-to-go of the trajectory the transition came from (the sampler computes it
for offline and online episodes alike; rewards in the same scale as the TD target). Uniform proposals keep
their Q, as in the reference code (nakamotoo/Cal-QL). A calibrated Q is never below the data's own
returns, so at the start of online fine-tuning the policy's value does not first collapse and then
climb back (the "unlearning dip" CQL shows).

Everything else, including the defaults, is CQL's. For fine-tuning the paper mixes offline and online
data half and half (``--online.mix_ratio``, 0.5 by default for this algorithm); the calibration stays on
during the online phase, as in the reference. Returns of episodes that were cut short (time limits,
checkpoints) are the rewards up to the cut, a lower estimate, which is what the bound needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from seqrl.algos.cql import CQL, CQLConfig
from seqrl.models.value_based import ActorPolicy
from seqrl.registry import register


@dataclass
class CalQLConfig(CQLConfig):
    """Cal-QL hyperparameters: CQL's (Kumar et al. 2020, MuJoCo settings), with the calibrated penalty."""


@register("calql", policy=ActorPolicy,
          paper="Nakamoto et al. 2023, Cal-QL: Calibrated Offline RL Pre-Training for Efficient Online Fine-Tuning")
class CalQL(CQL):
    """CQL with the policy proposals' Q floored at the data's Monte Carlo return."""

    config_class = CalQLConfig
    online_defaults: ClassVar[dict] = {"mix_ratio": 0.5}

    def __init__(self, config: CalQLConfig, metadata):
        super().__init__(config, metadata)
        self.model.config.algo = "calql"  # the saved policy names the algorithm that trained it

    def bound_proposals(self, q_proposals: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        num = self.config.num_sampled_actions
        uniform, policy = q_proposals[..., :num], q_proposals[..., num:]  # [E, B, N], [E, B, 2N]
        floor = batch["mc_returns"].to(policy.dtype)[None, :, None]  # [1, B, 1]
        return torch.cat([uniform, torch.maximum(policy, floor)], dim=-1)

    def sampler_options(self) -> dict:
        return {**super().sampler_options(), "mc_returns": True}
