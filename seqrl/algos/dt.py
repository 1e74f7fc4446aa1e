"""Decision Transformer training (Chen et al. 2021, https://arxiv.org/abs/2106.01345).

Supervised sequence modelling of actions given returns-to-go, states and past actions:

    continuous:  L = 1/|M| sum_{(b,t) in M} || pi(R_{<=t}, s_{<=t}, a_{<t})_t - a_t ||^2
    discrete:    L = 1/|M| sum_{(b,t) in M} CE(logits_t, a_t)

where ``M`` is the set of unpadded positions of the sampled K-step windows, so padded windows do
not dilute the loss. Actions are mapped to [-1, 1] with the action bounds (the tanh head's range).
Defaults are the paper's MuJoCo settings: K=20, 128 hidden, 3 layers, 1 head, dropout 0.1,
AdamW (lr 1e-4, weight decay 1e-4), 10k warm-up steps, gradient clip 0.25, batch 64, returns
scaled by 1/1000.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from seqrl.algos.base import AlgoConfig, Algorithm, Output, policy_fields
from seqrl.data.schema import DatasetMetadata
from seqrl.models.decision_transformer import DecisionTransformer, DecisionTransformerConfig
from seqrl.models.decision_transformer.configuration_decision_transformer import ACTING_DEFAULT
from seqrl.registry import register


@dataclass
class DTConfig(AlgoConfig):
    """Decision Transformer hyperparameters (paper defaults)."""

    batch_size: int = 64
    learning_rate: float = 1e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 10_000
    grad_clip: float | None = 0.25
    context_len: int = 20
    """K: timesteps per training window and per acting context."""
    hidden_size: int = 128
    """Width of the embeddings and GPT-2 blocks."""
    n_layer: int = 3
    """Number of GPT-2 blocks."""
    n_head: int = 1
    """Attention heads per block."""
    dropout: float = 0.1
    """Dropout on embeddings, attention and residuals."""
    activation_function: str = "relu"
    """Activation of the block MLPs."""
    return_scale: float = 1e-3
    """Returns-to-go are multiplied by this (1/1000 for MuJoCo returns in the thousands)."""
    acting: str = ACTING_DEFAULT
    """How the saved policy acts: "window" recomputes the last K steps every step, as the reference and as
    training sees them; "cached" computes 3 new tokens per step over a rolling key/value cache."""
    max_ep_len: int | None = None
    """Size of the timestep embedding; None: the longest of the data's episodes and the env's limit."""


@register("dt", policy=DecisionTransformer, paper="Chen et al. 2021, Decision Transformer: Reinforcement Learning via Sequence Modeling")
class DecisionTransformerAlgorithm(Algorithm):
    """Trains a :class:`~seqrl.models.decision_transformer.DecisionTransformer` on K-step windows."""

    config_class = DTConfig
    data_shape = "trajectory"
    supports_discrete = True

    def __init__(self, config: DTConfig, metadata: DatasetMetadata):
        super().__init__(config, metadata)
        fields = policy_fields(metadata, "dt", config.target_returns)
        model_config = DecisionTransformerConfig(
            hidden_size=config.hidden_size, n_layer=config.n_layer, n_head=config.n_head,
            activation_function=config.activation_function, resid_pdrop=config.dropout,
            embd_pdrop=config.dropout, attn_pdrop=config.dropout, context_len=config.context_len,
            return_scale=config.return_scale, max_ep_len=config.max_ep_len or max_episode_length(metadata),
            acting=config.acting, **fields,
        )
        self.model = DecisionTransformer(model_config)

    def compute_loss(self, batch: dict[str, torch.Tensor], step: int) -> Output:
        model = self.model
        actions = batch["actions"] if model.config.discrete_actions else model.normalize_actions(batch["actions"])
        predictions = model(batch["states"], actions, batch["returns_to_go"], batch["timesteps"], batch["attention_mask"])
        mask = batch["attention_mask"].to(predictions.dtype)  # [B, K]
        if model.config.discrete_actions:
            per_step = F.cross_entropy(predictions.flatten(0, 1).float(), actions.flatten(), reduction="none")
            per_step = per_step.view_as(mask)
        else:
            per_step = (predictions.float() - actions).square().mean(-1)  # [B, K]
        # Divide by the number of real steps, not B * K: left padding must not dilute the loss.
        loss = (per_step * mask).sum() / mask.sum().clamp(min=1)
        return Output(loss=loss, metrics={"action_loss": loss.detach()})

    def policy(self) -> DecisionTransformer:
        return self.model

    def sampler_options(self) -> dict:
        return {"context_len": self.config.context_len, "return_scale": self.config.return_scale}


def max_episode_length(metadata: DatasetMetadata) -> int:
    """Timestep embedding size: long enough for the data and for a full episode of the env."""
    longest = int(metadata.stats["length_max"])
    if metadata.env_spec:
        from gymnasium.envs.registration import EnvSpec

        limit = EnvSpec.from_json(metadata.env_spec).max_episode_steps
        longest = max(longest, limit or 0)
    return longest
