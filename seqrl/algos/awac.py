"""Advantage-Weighted Actor-Critic (Nair et al. 2020, "AWAC: Accelerating Online Reinforcement
Learning with Offline Datasets", https://arxiv.org/abs/2006.09359).

A critic evaluates the current policy; the actor does weighted maximum likelihood on the data with
weights from the advantage under that critic:

    y    = r_n + gamma^n (1 - d) min_e Q'_e(s', a'),   a' ~ pi(.|s')
    L_Q  = sum_e E[(Q_e(s, a) - y)^2]
    L_pi = -E[ min(exp((min_e Q_e(s, a) - min_e Q_e(s, a~)) / lambda), 100) log pi(a|s) ],  a~ ~ pi(.|s)

(the advantage uses one policy sample as the baseline V(s) and carries no gradient). Defaults follow
CORL: lambda = 1 (its code default; its D4RL Hopper configs use 0.3333, as seqrl's Hopper configs do), 3x256
MLPs for actor and critics, lr 3e-4, tau 5e-3, batch 256.

Departures: the actor is the Gaussian with a tanh mean used for IQL (CORL's AWAC actor has an
unsquashed mean and clips actions instead; with actions in [-1, 1] the tanh keeps the mean in range
without clipping); both losses use the same pre-step parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from seqrl.algos.base import ActorCriticConfig, Algorithm, Output, policy_fields
from seqrl.data.schema import DatasetMetadata
from seqrl.errors import SeqRLError
from seqrl.models.networks import IdentityEncoder, QEnsemble, frozen_copy, polyak_update
from seqrl.models.value_based import ActorPolicy, ActorPolicyConfig
from seqrl.registry import register


@dataclass
class AWACConfig(ActorCriticConfig):
    """AWAC hyperparameters (CORL's offline settings)."""

    lmbda: float = 1.0
    """lambda: temperature of the advantage weights (smaller is greedier); 1 is CORL's code default, 0.3333 its
    Hopper value."""
    max_weight: float = 100.0
    """Clip of the advantage weights."""
    actor_hidden_sizes: list[int] = field(default_factory=lambda: [256, 256, 256])
    """Hidden widths of the actor."""
    critic_hidden_sizes: list[int] = field(default_factory=lambda: [256, 256, 256])
    """Hidden widths of each critic."""


@register("awac", policy=ActorPolicy, paper="Nair et al. 2020, AWAC: Accelerating Online Reinforcement Learning with Offline Datasets")
class AWAC(Algorithm):
    """AWAC with a Gaussian actor and a batched critic ensemble."""

    config_class = AWACConfig
    supports_online = True
    targets = {"critic_target": "critic"}
    data_shape = "transition"
    supports_discrete = False
    supports_continuous = True

    def __init__(self, config: AWACConfig, metadata: DatasetMetadata):
        super().__init__(config, metadata)
        if config.lmbda <= 0 or config.num_critics < 1:
            raise SeqRLError(f"awac: lmbda must be > 0 and num_critics >= 1; got {config.lmbda}, {config.num_critics}.")
        self.model = ActorPolicy(ActorPolicyConfig(actor_type="gaussian", hidden_sizes=config.actor_hidden_sizes,
                                                   **policy_fields(metadata, "awac")))
        self.critic = QEnsemble(IdentityEncoder(metadata.obs_dim), metadata.action_dim, config.critic_hidden_sizes,
                                config.num_critics)
        self.critic_target = frozen_copy(self.critic)

    def compute_loss(self, batch: dict[str, torch.Tensor], step: int) -> Output:
        cfg, actor = self.config, self.model.actor
        observations, next_observations = batch["observations"], batch["next_observations"]  # [B, S]
        actions = self.model.normalize_actions(batch["actions"]).clamp(-1.0, 1.0)  # [B, A]

        with torch.no_grad():
            target_q = self.critic_target(next_observations, actor.sample(next_observations)).float().min(0).values  # [B]
            targets = batch["rewards"] + batch["discounts"] * (1.0 - batch["terminals"]) * target_q  # [B]
            policy_actions = actor.sample(observations)  # [B, A], the baseline's action
        # Data actions and the policy's actions in one ensemble pass.
        both = torch.stack([actions, policy_actions], dim=1)  # [B, 2, A]
        q_both = self.critic(observations.unsqueeze(1), both).float()  # [E, B, 2]
        q = q_both[..., 0]  # [E, B]
        critic_loss = (q - targets).square().mean(-1).sum()

        with torch.no_grad():
            q_min = q_both.min(0).values  # [B, 2]
            advantage = q_min[:, 0] - q_min[:, 1]  # [B]
            weights = torch.exp(advantage / cfg.lmbda).clamp(max=cfg.max_weight)
        actor_loss = -(weights * actor.log_prob(observations, actions).float()).mean()

        metrics = {"actor_loss": actor_loss.detach(), "critic_loss": critic_loss.detach(), "q_data": q.detach().mean(),
                   "advantage": advantage.mean(), "weight": weights.mean()}
        return Output(loss={"actor": actor_loss, "critic": critic_loss}, metrics=metrics)

    def optimizer_groups(self) -> dict[str, list[dict]]:
        cfg = self.config
        return {
            "actor": [{"params": list(self.model.parameters()), "lr": cfg.actor_learning_rate}],
            "critic": [{"params": list(self.critic.parameters()), "lr": cfg.learning_rate}],
        }

    def after_step(self, step: int) -> None:
        polyak_update(self.critic_target, self.critic, self.config.tau)

    def policy(self) -> ActorPolicy:
        return self.model
