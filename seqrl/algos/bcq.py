"""Batch-Constrained deep Q-learning, continuous actions (Fujimoto et al. 2019,
"Off-Policy Deep Reinforcement Learning without Exploration", https://arxiv.org/abs/1812.02900).

A conditional VAE ``G`` models the data's actions per state; the policy only picks among actions it
generates, each moved by a perturbation model ``xi`` of at most ``phi``, by the highest Q:

    L_G   = E[ ||D(s, z) - a||^2 ] + 1/2 KL(N(mu(s, a), sigma(s, a)^2) || N(0, I)),  z = mu + sigma eps
    y     = r_n + gamma^n (1 - d) max_j [ lambda min_e Q'_e(s', a'_j) + (1 - lambda) max_e Q'_e(s', a'_j) ]
            with a'_j = xi'(s', D(s', z_j)),  z_j ~ clip(N(0, I), -0.5, 0.5),  j = 1..n
    L_Q   = sum_e E[(Q_e(s, a) - y)^2]
    L_xi  = -E[ Q_1(s, xi(s, D(s, z))) ]

(the KL term is averaged over latent dimensions, as in the reference code). Acting draws m = 100
candidates for each state and takes ``argmax_j Q_1``, as the reference's ``select_action`` (and d3rlpy)
do; the target uses n = 10. Defaults are the paper's: phi = 0.05, lambda = 0.75, n = 10, latent size 2A,
VAE 750-750, actor and critics 400-300, Adam lr 1e-3 for all three, tau 5e-3, batch 100.

Departures: the three models are updated from the same pre-step parameters (the reference trains
the VAE, then the critics, then the actor, one after another, each seeing the previous update).
Discrete actions use :mod:`seqrl.algos.bcq_discrete`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from seqrl.algos.base import ActorCriticConfig, Algorithm, Output, policy_fields
from seqrl.data.schema import DatasetMetadata
from seqrl.errors import SeqRLError
from seqrl.models.networks import IdentityEncoder, VAEEncoder, call_frozen, frozen_copy, polyak_update
from seqrl.models.value_based import BCQPolicy, BCQPolicyConfig
from seqrl.registry import register


@dataclass
class BCQConfig(ActorCriticConfig):
    """Continuous BCQ hyperparameters (Fujimoto et al. 2019)."""

    batch_size: int = 100
    learning_rate: float = 1e-3
    """Learning rate of the critics."""
    actor_learning_rate: float = 1e-3
    """Learning rate of the perturbation model."""
    vae_learning_rate: float = 1e-3
    """Learning rate of the VAE (encoder and decoder)."""
    phi: float = 0.05
    """Largest perturbation of a generated action, as a fraction of the action half-range."""
    lmbda: float = 0.75
    """lambda: weight of the minimum over critics in the target (soft clipped double Q)."""
    num_samples: int = 10
    """n: generated actions per state in the target (10, as the reference)."""
    act_candidates: int = 100
    """m: generated actions per state when acting (100, as the reference's select_action); saved in the policy."""
    latent_dim: int | None = None
    """Size of the VAE latent; None means 2 * action_dim."""
    kl_weight: float = 0.5
    """Weight of the KL term in the VAE loss."""
    vae_hidden_sizes: list[int] = field(default_factory=lambda: [750, 750])
    """Hidden widths of the VAE encoder and decoder."""
    actor_hidden_sizes: list[int] = field(default_factory=lambda: [400, 300])
    """Hidden widths of the perturbation model."""
    critic_hidden_sizes: list[int] = field(default_factory=lambda: [400, 300])
    """Hidden widths of each critic."""


@register("bcq", policy=BCQPolicy, paper="Fujimoto et al. 2019, Off-Policy Deep Reinforcement Learning without Exploration")
class BCQ(Algorithm):
    """Continuous BCQ: VAE, perturbation model and a batched critic ensemble."""

    config_class = BCQConfig
    targets = {"critic_target": "model.critic", "perturbation_target": "model.perturbation"}
    data_shape = "transition"
    supports_discrete = False
    supports_continuous = True

    def __init__(self, config: BCQConfig, metadata: DatasetMetadata):
        super().__init__(config, metadata)
        if min(config.num_samples, config.act_candidates, config.num_critics) < 1 or not 0.0 <= config.lmbda <= 1.0:
            raise SeqRLError(
                f"bcq: num_samples, act_candidates and num_critics must be >= 1 and lmbda in [0, 1]; got "
                f"{config.num_samples}, {config.act_candidates}, {config.num_critics}, {config.lmbda}."
            )
        self.model = BCQPolicy(BCQPolicyConfig(
            latent_dim=config.latent_dim, vae_hidden_sizes=config.vae_hidden_sizes,
            actor_hidden_sizes=config.actor_hidden_sizes, critic_hidden_sizes=config.critic_hidden_sizes,
            num_critics=config.num_critics, phi=config.phi, num_candidates=config.act_candidates,
            **policy_fields(metadata, "bcq"),
        ))
        model_config = self.model.config
        # The VAE's encoder half is needed only for training, so it lives here, not in the policy.
        self.vae_encoder = VAEEncoder(IdentityEncoder(metadata.obs_dim), metadata.action_dim, model_config.latent_dim,
                                      config.vae_hidden_sizes)
        self.critic_target = frozen_copy(self.model.critic)
        self.perturbation_target = frozen_copy(self.model.perturbation)

    def compute_loss(self, batch: dict[str, torch.Tensor], step: int) -> Output:
        cfg, model = self.config, self.model
        observations, next_observations = batch["observations"], batch["next_observations"]  # [B, S]
        actions = model.normalize_actions(batch["actions"]).clamp(-1.0, 1.0)  # [B, A]

        # Generative model: reconstruction plus KL to the unit Gaussian prior.
        mean, log_std = self.vae_encoder(observations, actions)  # [B, L]
        std = log_std.exp()
        reconstruction = model.decoder(observations, mean + std * torch.randn_like(std))  # [B, A]
        reconstruction_loss = (reconstruction.float() - actions).square().mean()
        kl = (-0.5 * (1.0 + 2.0 * log_std - mean.square() - std.square())).float().mean()
        vae_loss = reconstruction_loss + cfg.kl_weight * kl

        with torch.no_grad():
            candidates = model.decoder.sample(next_observations, cfg.num_samples)  # [B, N, A]
            candidates = self.perturbation_target(next_observations.unsqueeze(1), candidates)  # [B, N, A]
            q_next = self.critic_target(next_observations.unsqueeze(1), candidates).float()  # [E, B, N]
            q_next = cfg.lmbda * q_next.min(0).values + (1.0 - cfg.lmbda) * q_next.max(0).values  # [B, N]
            target_q = q_next.max(-1).values  # [B]
            targets = batch["rewards"] + batch["discounts"] * (1.0 - batch["terminals"]) * target_q  # [B]
            generated = model.decoder.sample(observations)  # [B, A]: the actor's input, not trained by it

        q = model.critic(observations, actions).float()  # [E, B]
        critic_loss = (q - targets).square().mean(-1).sum()

        perturbed = model.perturbation(observations, generated)  # [B, A]
        actor_loss = -call_frozen(model.critic, observations, perturbed)[0].float().mean()  # Q_1 only

        metrics = {
            "vae_loss": vae_loss.detach(), "reconstruction_loss": reconstruction_loss.detach(), "kl": kl.detach(),
            "critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(), "q_data": q.detach().mean(),
            "target_q": target_q.mean(),
        }
        return Output(loss={"vae": vae_loss, "critic": critic_loss, "actor": actor_loss}, metrics=metrics)

    def optimizer_groups(self) -> dict[str, list[dict]]:
        cfg, model = self.config, self.model
        return {
            "vae": [{"params": [*self.vae_encoder.parameters(), *model.decoder.parameters()], "lr": cfg.vae_learning_rate}],
            "critic": [{"params": list(model.critic.parameters()), "lr": cfg.learning_rate}],
            "actor": [{"params": list(model.perturbation.parameters()), "lr": cfg.actor_learning_rate}],
        }

    def after_step(self, step: int) -> None:
        polyak_update(self.critic_target, self.model.critic, self.config.tau)
        polyak_update(self.perturbation_target, self.model.perturbation, self.config.tau)

    def policy(self) -> BCQPolicy:
        return self.model
