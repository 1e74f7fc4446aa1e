"""Acting policies of the value-based methods, as ``PreTrainedModel`` subclasses.

All of them act on normalised observations ``[B, obs_dim]`` in one batched forward pass and return
actions in [-1, 1] (the base class rescales them to the env's bounds) or int64 action ids. They keep
no state between steps, so ``reset`` has nothing to clear. The training algorithms own these modules
and train them in place; critics or models the policy does not act with stay in the algorithm.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from seqrl.models.networks import (
    CategoricalActor,
    DeterministicActor,
    GaussianActor,
    IdentityEncoder,
    PerturbationActor,
    QEnsemble,
    TanhGaussianActor,
    VAEDecoder,
)
from seqrl.models.policy import PolicyError, SeqRLPolicy
from seqrl.models.value_based.configuration_value_based import (
    ActorPolicyConfig,
    BCQPolicyConfig,
    DiscreteBCQPolicyConfig,
    DiscreteQPolicyConfig,
)


ACTING_SEED = 0  # seed of BCQ's acting latents at every reset


class _StatelessPolicy(SeqRLPolicy):
    """Shared parts: PyTorch's default init for each layer, no per-episode state."""

    def _init_submodule(self, module: nn.Module) -> None:
        # Each network layer re-initialises its own direct parameters (nn.Linear, EnsembleLinear,
        # GaussianActor.log_std); containers have no reset_parameters and are skipped.
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()

    def _require_bounded_actions(self) -> None:
        if not self.config.discrete_actions and not self.scales_actions:
            raise PolicyError(
                f"{type(self).__name__} outputs actions in [-1, 1] and rescales them to the action bounds, but the "
                f"bounds are missing or infinite (action_low={self.config.action_low}, action_high="
                f"{self.config.action_high}). Give the dataset a bounded Box action space (train.py: name its env with "
                "--data.env_id ID, or give --data.action_low/--data.action_high)."
            )

    def _reset_state(self, batch_size: int, target_return: np.ndarray | None) -> None:
        """Nothing to keep: each action depends on the current observation only."""


class ActorPolicy(_StatelessPolicy):
    """A stand-alone actor: deterministic, tanh-Gaussian, Gaussian (continuous) or categorical."""

    config_class = ActorPolicyConfig

    def __init__(self, config: ActorPolicyConfig):
        super().__init__(config)
        self._require_bounded_actions()
        encoder = IdentityEncoder(config.state_dim)
        if config.actor_type == "deterministic":
            self.actor = DeterministicActor(encoder, config.act_dim, config.hidden_sizes)
        elif config.actor_type == "tanh_gaussian":
            self.actor = TanhGaussianActor(encoder, config.act_dim, config.hidden_sizes, config.log_std_min, config.log_std_max)
        elif config.actor_type == "gaussian":
            self.actor = GaussianActor(encoder, config.act_dim, config.hidden_sizes, config.log_std_min, config.log_std_max)
        else:
            self.actor = CategoricalActor(encoder, config.act_dim, config.hidden_sizes)
        self.post_init()

    @property
    def can_explore(self) -> bool:
        return self.config.actor_type != "deterministic"

    def _act(self, observations, rewards, episode_starts) -> torch.Tensor:
        if self.exploring:
            return self.actor.explore(observations)  # [B, A] in [-1, 1], or [B] ids
        return self.actor.mode(observations)  # [B, A] in [-1, 1], or [B] ids


class DiscreteQPolicy(_StatelessPolicy):
    """Greedy action of a discrete Q ensemble: ``argmax_a mean_e Q_e(s, a)``."""

    config_class = DiscreteQPolicyConfig

    def __init__(self, config: DiscreteQPolicyConfig):
        super().__init__(config)
        self.q = QEnsemble(IdentityEncoder(config.state_dim), 0, config.hidden_sizes, config.num_critics, config.act_dim)
        self.post_init()

    def _act(self, observations, rewards, episode_starts) -> torch.Tensor:
        return self.q(observations).mean(0).argmax(-1)  # [E, B, n] -> [B]


class BCQPolicy(_StatelessPolicy):
    """Continuous BCQ: decoder of the generative model, perturbation model and the critic ensemble."""

    config_class = BCQPolicyConfig

    def __init__(self, config: BCQPolicyConfig):
        super().__init__(config)
        self._require_bounded_actions()
        state_dim, act_dim = config.state_dim, config.act_dim
        self.decoder = VAEDecoder(IdentityEncoder(state_dim), act_dim, config.latent_dim, config.vae_hidden_sizes,
                                  config.latent_clip)
        self.perturbation = PerturbationActor(IdentityEncoder(state_dim), act_dim, config.actor_hidden_sizes, config.phi)
        self.critic = QEnsemble(IdentityEncoder(state_dim), act_dim, config.critic_hidden_sizes, config.num_critics)
        self._generator: torch.Generator | None = None
        self.post_init()

    def candidate_actions(self, observations: torch.Tensor, num_candidates: int,
                          generator: torch.Generator | None = None) -> torch.Tensor:
        """Perturbed decoder samples [B, N, A] for observations [B, S]."""
        sampled = self.decoder.sample(observations, num_candidates, generator)  # [B, N, A], latent clipped
        return self.perturbation(observations.unsqueeze(1), sampled)

    def _reset_state(self, batch_size: int, target_return: np.ndarray | None) -> None:
        """Candidates are random; their latents come from a generator seeded here, so an evaluation is
        reproducible and two copies of a policy act alike (training uses the global RNG)."""
        self._generator = torch.Generator(device=self.device).manual_seed(ACTING_SEED)

    def _act(self, observations, rewards, episode_starts) -> torch.Tensor:
        candidates = self.candidate_actions(observations, self.config.num_candidates, self._generator)  # [B, N, A]
        q_first = self.critic(observations.unsqueeze(1), candidates)[0]  # [B, N]: Q_1, as in the reference
        best = q_first.argmax(-1)  # [B]
        return candidates[torch.arange(candidates.shape[0], device=candidates.device), best]  # [B, A]


class DiscreteBCQPolicy(_StatelessPolicy):
    """Discrete BCQ: Q network plus imitation network with a relative-probability threshold."""

    config_class = DiscreteBCQPolicyConfig

    def __init__(self, config: DiscreteBCQPolicyConfig):
        super().__init__(config)
        self.q = QEnsemble(IdentityEncoder(config.state_dim), 0, config.hidden_sizes, 1, config.act_dim)
        self.imitation = CategoricalActor(IdentityEncoder(config.state_dim), config.act_dim, config.hidden_sizes)
        self.post_init()

    def allowed_actions(self, logits: torch.Tensor) -> torch.Tensor:
        """``G(a|s) / max_a' G(a'|s) >= threshold`` [..., n] from the imitation logits [..., n]."""
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        relative = log_probs - log_probs.max(-1, keepdim=True).values  # log of the ratio, <= 0
        return relative >= (math.log(self.config.threshold) if self.config.threshold > 0 else -math.inf)

    def greedy_allowed(self, q_values: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """``argmax`` of ``q_values`` [..., n] over the allowed actions -> ids [...] (the most likely
        action is always allowed, so the set is never empty)."""
        return q_values.masked_fill(~self.allowed_actions(logits), -math.inf).argmax(-1)

    def _act(self, observations, rewards, episode_starts) -> torch.Tensor:
        return self.greedy_allowed(self.q(observations)[0], self.imitation(observations))  # [B]
