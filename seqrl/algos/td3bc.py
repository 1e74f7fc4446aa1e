"""TD3+BC (Fujimoto & Gu 2021, "A Minimalist Approach to Offline Reinforcement Learning",
https://arxiv.org/abs/2106.06860).

TD3 with a behaviour-cloning term in the actor loss, weighted so that Q's scale does not matter:

    a'   = clip(pi'(s') + clip(eps, -c, c), -1, 1),   eps ~ N(0, sigma^2)
    y    = r_n + gamma^n (1 - d) min_e Q'_e(s', a')
    L_Q  = sum_e E[(Q_e(s, a) - y)^2]
    L_pi = -lambda E[Q_1(s, pi(s))] + E[(pi(s) - a)^2],   lambda = alpha / E|Q_1(s, pi(s))| (no gradient)

The actor and the targets (pi', Q') are updated every ``policy_delay`` steps. Defaults are the
paper's: alpha = 2.5, sigma = 0.2, c = 0.5 (in units of the action half-range), delay 2, 2x256 MLPs,
lr 3e-4, tau 5e-3, batch 256, normalised states.

Departure: on actor steps the actor and critic losses come from the same pre-step parameters (the
reference computes the actor loss with the just-updated critic).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from seqrl.algos.base import ActorCriticConfig, Algorithm, Output, policy_fields
from seqrl.data.schema import DatasetMetadata
from seqrl.errors import SeqRLError
from seqrl.models.networks import IdentityEncoder, QEnsemble, call_frozen, frozen_copy, polyak_update
from seqrl.models.value_based import ActorPolicy, ActorPolicyConfig
from seqrl.registry import register


@dataclass
class TD3BCConfig(ActorCriticConfig):
    """TD3+BC hyperparameters (Fujimoto & Gu 2021)."""

    alpha: float = 2.5
    """Weight of the Q term relative to behaviour cloning (after normalising by mean |Q|)."""
    policy_noise: float = 0.2
    """sigma: std of the target policy smoothing noise (action half-range units)."""
    noise_clip: float = 0.5
    """c: the smoothing noise is clipped to [-c, c]."""
    policy_delay: int = 2
    """The actor and the targets are updated every this many critic updates."""


@register("td3bc", policy=ActorPolicy, paper="Fujimoto & Gu 2021, A Minimalist Approach to Offline Reinforcement Learning")
class TD3BC(Algorithm):
    """TD3+BC with a deterministic tanh actor and a batched critic ensemble."""

    config_class = TD3BCConfig
    targets = {"actor_target": "model.actor", "critic_target": "critic"}
    data_shape = "transition"
    supports_discrete = False
    supports_continuous = True

    find_unused_parameters = True  # the actor sits out the loss on steps between its updates

    def __init__(self, config: TD3BCConfig, metadata: DatasetMetadata):
        super().__init__(config, metadata)
        if config.policy_delay < 1 or config.num_critics < 1:
            raise SeqRLError(f"td3bc: policy_delay and num_critics must be >= 1; got {config.policy_delay}, {config.num_critics}.")
        self.model = ActorPolicy(ActorPolicyConfig(actor_type="deterministic", hidden_sizes=config.actor_hidden_sizes,
                                                   **policy_fields(metadata, "td3bc")))
        self.actor_target = frozen_copy(self.model.actor)
        self.critic = QEnsemble(IdentityEncoder(metadata.obs_dim), metadata.action_dim, config.critic_hidden_sizes,
                                config.num_critics)
        self.critic_target = frozen_copy(self.critic)

    def compute_loss(self, batch: dict[str, torch.Tensor], step: int) -> Output:
        cfg = self.config
        observations, next_observations = batch["observations"], batch["next_observations"]  # [B, S]
        actions = self.model.normalize_actions(batch["actions"]).clamp(-1.0, 1.0)  # [B, A]

        with torch.no_grad():
            noise = (torch.randn_like(actions) * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
            next_actions = (self.actor_target(next_observations) + noise).clamp(-1.0, 1.0)  # [B, A]
            target_q = self.critic_target(next_observations, next_actions).float().min(0).values  # [B]
            targets = batch["rewards"] + batch["discounts"] * (1.0 - batch["terminals"]) * target_q  # [B]
        q = self.critic(observations, actions).float()  # [E, B]
        critic_loss = (q - targets).square().mean(-1).sum()
        losses = {"critic": critic_loss}

        # The actor is left out of the loss on the other steps, so its gradients stay None and AdamW
        # skips it (a zero loss would still move it through Adam's momentum).
        metrics = {"critic_loss": critic_loss.detach(), "q_data": q.detach().mean(), "target_q": target_q.mean()}
        if self.updates_actor(step):
            policy_actions = self.model.actor(observations)  # [B, A]
            q_policy = call_frozen(self.critic, observations, policy_actions)[0].float()  # [B], Q_1
            weight = cfg.alpha / q_policy.abs().mean().detach()
            actor_loss = -weight * q_policy.mean() + (policy_actions.float() - actions).square().mean()
            losses["actor"] = actor_loss
            metrics["actor_loss"] = actor_loss.detach()  # logged as the mean over the steps that update the actor
        return Output(loss=losses, metrics=metrics)

    def optimizer_groups(self) -> dict[str, list[dict]]:
        cfg = self.config
        return {
            "actor": [{"params": list(self.model.parameters()), "lr": cfg.actor_learning_rate}],
            "critic": [{"params": list(self.critic.parameters()), "lr": cfg.learning_rate}],
        }

    def updates_actor(self, step: int) -> bool:
        """The actor (and, after it, the targets) moves every ``policy_delay`` steps."""
        return step % self.config.policy_delay == 0

    def after_step(self, step: int) -> None:
        if self.updates_actor(step):  # targets move with the actor, every policy_delay steps
            polyak_update(self.critic_target, self.critic, self.config.tau)
            polyak_update(self.actor_target, self.model.actor, self.config.tau)

    def policy(self) -> ActorPolicy:
        return self.model
