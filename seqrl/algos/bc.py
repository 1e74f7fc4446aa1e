"""Behaviour cloning: supervised learning of the data's actions from single transitions.

    loss = "mse":  L = E[ ||pi(s) - a||^2 ]             (deterministic tanh actor; Pomerleau 1991)
    loss = "nll":  L = -E[ log pi(a|s) ]                (Gaussian actor with a tanh mean)
    discrete:      L = -E[ log softmax(f(s))[a] ]        (categorical actor, always)

The baseline of the offline RL papers (e.g. Fujimoto & Gu 2021 use the TD3+BC actor with the MSE
loss). Defaults follow CORL's BC: 2x256 MLP, lr 3e-4, batch 256. Actions are compared in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from seqrl.algos.base import AlgoConfig, Algorithm, Output, policy_fields
from seqrl.data.schema import DatasetMetadata
from seqrl.errors import SeqRLError
from seqrl.models.value_based import ActorPolicy, ActorPolicyConfig
from seqrl.registry import register


@dataclass
class BCConfig(AlgoConfig):
    """Behaviour cloning hyperparameters."""

    batch_size: int = 256
    learning_rate: float = 3e-4
    """Learning rate of the actor."""
    loss: str = "mse"
    """Continuous actions: "mse" (deterministic actor) or "nll" (Gaussian actor). Discrete: cross-entropy."""
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    """Hidden widths of the actor."""


@register("bc", policy=ActorPolicy, paper="Pomerleau 1991, Efficient Training of Artificial Neural Networks for Autonomous Navigation")
class BC(Algorithm):
    """Behaviour cloning for continuous and discrete actions."""

    config_class = BCConfig
    data_shape = "transition"
    supports_discrete = True
    supports_continuous = True

    def __init__(self, config: BCConfig, metadata: DatasetMetadata):
        super().__init__(config, metadata)
        if config.loss not in ("mse", "nll"):
            raise SeqRLError(f"bc: loss must be 'mse' or 'nll', got '{config.loss}'.")
        actor_type = "categorical" if metadata.is_discrete else ("deterministic" if config.loss == "mse" else "gaussian")
        self.model = ActorPolicy(ActorPolicyConfig(actor_type=actor_type, hidden_sizes=config.hidden_sizes,
                                                   **policy_fields(metadata, "bc")))

    def compute_loss(self, batch: dict[str, torch.Tensor], step: int) -> Output:
        actor, observations = self.model.actor, batch["observations"]  # [B, S]
        if self.model.config.discrete_actions:
            loss = F.cross_entropy(actor(observations).float(), batch["actions"])
        else:
            actions = self.model.normalize_actions(batch["actions"]).clamp(-1.0, 1.0)  # [B, A]
            if self.config.loss == "mse":
                loss = (actor(observations).float() - actions).square().mean()
            else:
                loss = -actor.log_prob(observations, actions).float().mean()
        return Output(loss={"actor": loss}, metrics={"actor_loss": loss.detach()})

    def optimizer_groups(self) -> dict[str, list[dict]]:
        return {"actor": [{"params": list(self.model.parameters()), "lr": self.config.learning_rate}]}

    def policy(self) -> ActorPolicy:
        return self.model
