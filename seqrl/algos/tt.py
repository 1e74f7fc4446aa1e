"""Trajectory Transformer training (Janner, Li & Levine 2021, https://arxiv.org/abs/2106.02039).

Windows of ``W`` transitions, each discretised into ``D = S + A + 2`` tokens (observation, action,
reward ``r_t`` with the termination penalty, value ``V_t = sum_{k>=0} gamma^k r_{t+1+k}``), are modelled
autoregressively by a GPT with weighted cross-entropy:

    L = sum_{(b,i) in M} w_{d(i+1)} * -log p(x_{b,i+1} | x_{b,<=i})  /  |M|

with ``w`` = 1 for observation tokens, ``action_weight`` for action tokens, ``reward_weight`` and
``value_weight``; ``M`` holds the positions whose target lies inside the episode (the stop tokens after
its end are inputs only). Departure from the reference: it divides by all ``B * (W D - 1)`` positions,
which lets windows that run past an episode's end dilute the loss; here the mean is over ``M``.

Defaults are the reference's (config/offline.py, scripts/train.py): N = 100 quantile bins, 4 layers,
4 heads, 128-wide embedding, windows of 10, dropout 0.1, AdamW lr 6e-4 with betas (0.9, 0.95) and weight
decay 0.1 on matmul weights only, gradient clip 1.0, batch 256, linear warm-up then cosine decay to 10%
(the reference warms up over one epoch of tokens; here ``warmup_steps`` counts gradient steps).

Acting plans with beam search over the model's own predictions (:mod:`seqrl.models.trajectory_transformer.planner`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from seqrl.algos.base import AlgoConfig, Algorithm, Output, policy_fields
from seqrl.algos.dt import max_episode_length
from seqrl.data.schema import DatasetMetadata
from seqrl.errors import SeqRLError
from seqrl.models.trajectory_transformer import TrajectoryTransformer, TrajectoryTransformerConfig, fit_edges
from seqrl.models.trajectory_transformer.discretiser import STRATEGIES
from seqrl.models.trajectory_transformer.planner import PlannerConfig, resolve
from seqrl.registry import register


class TrajectoryDataError(SeqRLError):
    """The dataset cannot train a Trajectory Transformer as configured."""


@dataclass
class TTConfig(AlgoConfig):
    """Trajectory Transformer hyperparameters (reference defaults)."""

    batch_size: int = 256
    learning_rate: float = 6e-4
    weight_decay: float = 0.1
    warmup_steps: int = 1000
    lr_schedule: str = "cosine"
    min_lr_ratio: float = 0.1
    grad_clip: float | None = 1.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    """AdamW's (beta1, beta2)."""
    n_bins: int = 100
    """Bins (tokens) per dimension of a transition."""
    discretiser: str = "quantile"
    """How bin edges are placed per dimension: "quantile" (the reference) or "uniform"."""
    window: int = 10
    """Transitions per training window."""
    hidden_size: int = 128
    """Width of the embeddings and GPT-2 blocks."""
    n_layer: int = 4
    """Number of GPT-2 blocks."""
    n_head: int = 4
    """Attention heads per block."""
    dropout: float = 0.1
    """Dropout on embeddings, attention and residuals."""
    gamma: float = 0.99
    """Discount of the value tokens and of the planner's returns."""
    termination_penalty: float | None = -100.0
    """Reward given to the step where an episode terminates (None: keep the logged reward)."""
    action_weight: float = 5.0
    """Loss weight of action tokens."""
    reward_weight: float = 1.0
    """Loss weight of reward tokens."""
    value_weight: float = 1.0
    """Loss weight of value tokens."""
    max_ep_len: int | None = None
    """Size of the timestep embedding; None: the longest of the data's episodes and the env's limit."""
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    """Beam-search settings saved with the policy (None fields: the env's or the reference's defaults)."""


@register("tt", policy=TrajectoryTransformer,
          paper="Janner, Li & Levine 2021, Offline Reinforcement Learning as One Big Sequence Modeling Problem")
class TrajectoryTransformerAlgorithm(Algorithm):
    """Fits the discretiser on the dataset, then trains a :class:`TrajectoryTransformer` on token windows."""

    config_class = TTConfig
    data_shape = "tokens"
    supports_discrete = True

    def __init__(self, config: TTConfig, metadata: DatasetMetadata):
        super().__init__(config, metadata)
        if config.discretiser not in STRATEGIES:
            raise TrajectoryDataError(f"--algo.discretiser {config.discretiser}: choose one of {', '.join(STRATEGIES)}.")
        if len(config.betas) != 2:
            raise TrajectoryDataError(f"--algo.betas needs two numbers (beta1 beta2), got {config.betas}.")
        fields = policy_fields(metadata, "tt")
        planner = {k: v for k, v in vars(config.planner).items() if v is not None}
        resolve(planner, metadata.env_id, config.window)  # a setting that cannot work fails now, not at evaluation
        model_config = TrajectoryTransformerConfig(
            n_bins=config.n_bins, hidden_size=config.hidden_size, n_layer=config.n_layer, n_head=config.n_head,
            resid_pdrop=config.dropout, embd_pdrop=config.dropout, attn_pdrop=config.dropout,
            max_ep_len=config.max_ep_len or max_episode_length(metadata), window=config.window,
            discount=config.gamma, planner=planner, **fields,
        )
        self.model = TrajectoryTransformer(model_config)
        dims, obs, act = model_config.transition_dim, model_config.state_dim, model_config.action_tokens
        weights = torch.ones(dims)
        weights[obs:obs + act] = config.action_weight
        weights[dims - 2], weights[dims - 1] = config.reward_weight, config.value_weight
        self.register_buffer("token_weights", weights, persistent=False)  # [D], by the target's dimension
        self.kinds = {"observation": slice(0, obs), "action": slice(obs, obs + act),
                      "reward": slice(dims - 2, dims - 1), "value": slice(dims - 1, dims)}

    def make_sampler(self, dataset, seed: int, process_index: int = 0, num_processes: int = 1):
        """The token sampler. On first use it fits the discretiser on the whole dataset (a policy loaded
        with ``--init_from`` keeps its own bins) and prints the round-trip error of every dimension."""
        from seqrl.data.samplers import TokenSampler

        cfg, model = self.config, self.model
        stats = self.metadata.stats
        bounded = model.scales_actions
        sampler = TokenSampler(
            dataset, window=cfg.window, batch_size=cfg.batch_size, gamma=cfg.gamma,
            termination_penalty=cfg.termination_penalty, obs_mean=np.asarray(stats["obs_mean"], np.float32),
            obs_std=np.asarray(stats["obs_std"], np.float32),
            action_low=model.config.action_low if bounded else None,
            action_high=model.config.action_high if bounded else None,
            seed=seed, process_index=process_index, num_processes=num_processes,
        )
        if sampler.num_steps < cfg.window:
            raise TrajectoryDataError(
                f"the dataset has {sampler.num_steps} steps, fewer than one window of {cfg.window} transitions; "
                "collect more data or lower --algo.window.")
        columns = sampler.transition_columns()  # [N, D]
        if not np.isfinite(columns).all():
            names = self.dimension_names()
            bad = [names[i] for i in np.unique(np.nonzero(~np.isfinite(columns))[1])]
            raise TrajectoryDataError(
                f"the data has NaN or infinite values in {', '.join(bad)} (a value is a discounted sum of the rewards "
                "after it); load it with --data.validate true to find the episode, and fix or drop it.")
        discretiser = model.discretiser
        if not discretiser.is_fitted:
            discrete = (model.config.state_dim,) if model.config.discrete_actions else ()
            discretiser.load_edges(fit_edges(columns, cfg.n_bins, cfg.discretiser, discrete))
            if process_index == 0:
                print(self.describe_bins(columns))
        edges = discretiser.edges.numpy()
        key = hashlib.sha1(edges.tobytes() + repr(sampler.state_dict()).encode()).hexdigest()[:16]
        sampler.tokenize(discretiser.encode_numpy, cfg.n_bins, key, columns)
        return sampler

    def dimension_names(self) -> list[str]:
        """``observation[0] .. action[0] .. reward[0], value[0]``: the D dimensions of a transition."""
        return [f"{kind}[{i}]" for kind, part in self.kinds.items() for i in range(part.stop - part.start)]

    def describe_bins(self, columns: np.ndarray) -> str:
        """A table of the discretiser's mean round-trip error per dimension (absolute, and per standard
        deviation of the dimension), so a too-coarse discretisation shows before training."""
        error, relative = self.model.discretiser.reconstruction_error(columns)
        names = self.dimension_names()
        rows = [f"  {name:<16} {err:>11.4g} {rel:>10.4f}" for name, err, rel in zip(names, error, relative)]
        header = (f"Discretiser: {self.config.discretiser}, {self.config.n_bins} bins per dimension; mean round-trip "
                  f"error per dimension (worst {relative.max():.4f} std):\n  {'dimension':<16} {'|x - x^|':>11} "
                  f"{'/ std':>10}")
        return "\n".join([header, *rows])

    def compute_loss(self, batch: dict[str, torch.Tensor], step: int) -> Output:
        tokens, dims = batch["tokens"], self.model.config.transition_dim  # [B, W*D]
        logits = self.model(tokens, batch["timesteps"])  # [B, W*D - 1, N + 1]
        targets = tokens[:, 1:]
        inside = batch["valid"].repeat_interleave(dims, dim=1)[:, 1:].to(logits.dtype)  # [B, W*D - 1]
        per_token = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none").view_as(targets)
        target_dim = torch.arange(1, tokens.shape[1], device=tokens.device) % dims  # [W*D - 1]
        weights = self.token_weights[target_dim] * inside
        loss = (per_token * weights).sum() / inside.sum().clamp(min=1)
        metrics = {"token_loss": loss.detach()}
        for kind, part in self.kinds.items():  # unweighted cross-entropy of each kind of token
            of_kind = ((target_dim >= part.start) & (target_dim < part.stop)) * inside
            metrics[f"{kind}_loss"] = ((per_token * of_kind).sum() / of_kind.sum().clamp(min=1)).detach()
        return Output(loss=loss, metrics=metrics)

    def optimizer_groups(self) -> dict[str, list[dict]]:
        """Weight decay on the matmul weights only (the blocks' and the heads'), as minGPT and the reference;
        embeddings, biases and layer norms are not decayed."""
        decay, no_decay = [], []
        for name, param in self.model.named_parameters():
            is_matrix = name.endswith("weight") and param.ndim >= 2 and "embed" not in name
            (decay if is_matrix else no_decay).append(param)
        betas = tuple(self.config.betas)
        return {"main": [{"params": decay, "betas": betas},
                         {"params": no_decay, "weight_decay": 0.0, "betas": betas}]}

    def policy(self) -> TrajectoryTransformer:
        return self.model
