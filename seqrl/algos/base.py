"""The contract every algorithm follows, so that one training loop trains them all.

An :class:`Algorithm` is an ``nn.Module`` that owns every trainable module and target network. The
loop calls it (``algo(batch, step)``, which is ``compute_loss``; calling the module keeps DDP's
gradient hooks in play), backpropagates the named losses, steps the optimizer, and calls
``after_step``. ``policy()`` hands out the ``PreTrainedModel`` used for inference and saving.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import draccus
import numpy as np
import torch
from torch import nn

from seqrl.data.schema import DatasetMetadata
from seqrl.envs import spec_kwargs
from seqrl.models.policy import SeqRLPolicy


@dataclass
class AlgoConfig(draccus.ChoiceRegistry):
    """Hyperparameters shared by every algorithm. Subclasses add their own and are registered in
    :mod:`seqrl.registry` under the name used by ``--algo``."""

    batch_size: int = 256
    """Samples (windows or transitions) per gradient step on each process."""
    learning_rate: float = 3e-4
    """Learning rate of the main optimizer."""
    weight_decay: float = 0.0
    """Decoupled weight decay (AdamW)."""
    warmup_steps: int = 0
    """Linear learning-rate warm-up from 0 over this many steps."""
    lr_schedule: str = "constant"
    """After the warm-up (transformers.get_scheduler): "constant", "linear" decay to 0 at the last step, or
    "cosine" decay to ``min_lr_ratio`` times the rate at the last step."""
    min_lr_ratio: float = 0.1
    """Final fraction of the learning rate under the "cosine" schedule."""
    grad_clip: float | None = None
    """Clip the gradient norm of each named parameter group (actor, critic, value, ...) separately to this value
    when gradients sync (None: no clipping)."""
    target_returns: list[float] = field(default_factory=list)
    """Default target returns saved with return-conditioned policies (empty: taken from the data)."""


@dataclass
class TDConfig(AlgoConfig):
    """Fields of the algorithms that learn Q from TD targets on transitions (not an algorithm itself)."""

    gamma: float = 0.99
    """Discount factor."""
    n_step: int = 1
    """Rewards summed per transition (n-step returns)."""
    reward_scale: float = 1.0
    """Rewards are multiplied by this before the TD target."""
    tau: float = 5e-3
    """Polyak rate of the target networks."""


@dataclass
class ActorCriticConfig(TDConfig):
    """Fields of the actor-critic algorithms (not an algorithm itself)."""

    actor_learning_rate: float = 3e-4
    """Learning rate of the actor (``learning_rate`` is the critics')."""
    actor_hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    """Hidden widths of the actor."""
    critic_hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    """Hidden widths of each critic."""
    num_critics: int = 2
    """Critics in the ensemble (the TD target uses their minimum)."""


@dataclass
class Output:
    """What ``compute_loss`` returns.

    ``loss`` is one tensor for algorithms with a single parameter group, or a mapping from group name
    (as in ``optimizer_groups``) to the loss that group minimises. The loop backpropagates their sum
    once (DDP allows one backward per forward), so each loss must reach only its own group's
    parameters: detach targets and freeze critics inside actor terms. ``metrics`` holds every named
    loss term and diagnostic as detached scalar tensors; the loop reads them only when it logs.
    """

    loss: torch.Tensor | Mapping[str, torch.Tensor]
    metrics: dict[str, torch.Tensor]

    def losses(self) -> dict[str, torch.Tensor]:
        return dict(self.loss) if isinstance(self.loss, Mapping) else {"main": self.loss}


class Algorithm(nn.Module):
    """Base class. Subclasses set ``config_class`` and ``data_shape`` ("trajectory" for sequence
    models, "transition" for value-based methods) and implement the four methods below."""

    config_class: type[AlgoConfig] = AlgoConfig
    data_shape: str = "transition"
    supports_discrete: bool = False
    supports_continuous: bool = True
    # True when some steps leave parameters out of the loss (e.g. a delayed actor update). DDP then
    # has to look for unused parameters each step, which costs a graph traversal, so it is opt-in.
    find_unused_parameters: bool = False
    # Target networks: attribute of the target -> dotted path of the module it tracks (Polyak copies).
    # ``sync_targets`` copies them after weights are loaded (--init_from), so no target starts random.
    targets: dict[str, str] = {}
    # Online fine-tuning (--online.env_steps): whether the algorithm can keep learning from its own
    # interaction, and its defaults for the `online` settings left unset (see seqrl.online.config).
    supports_online: bool = False
    online_defaults: dict = {}

    def __init__(self, config: AlgoConfig, metadata: DatasetMetadata):
        super().__init__()
        self.config = config
        self.metadata = metadata

    def forward(self, batch: dict[str, torch.Tensor], step: int) -> Output:
        return self.compute_loss(batch, step)

    def compute_loss(self, batch: dict[str, torch.Tensor], step: int) -> Output:
        """Losses for one batch (the names of ``batch`` are the sampler's)."""
        raise NotImplementedError

    def optimizer_groups(self) -> dict[str, list[dict]]:
        """Group name -> torch param groups (each may set its own ``lr``/``weight_decay``). The loop
        steps all of them with one AdamW (``seqrl.training.setup.build_optimizer``); the names label
        the losses, the logged learning rates and gradient clipping."""
        return {"main": [{"params": [p for p in self.parameters() if p.requires_grad]}]}

    def after_step(self, step: int) -> None:
        """Called after the optimizer step of gradient step ``step`` (the one ``compute_loss`` just had): Polyak
        updates, delayed target updates."""

    @torch.no_grad()
    def sync_targets(self) -> None:
        """Copy every online network into its target network (``targets``)."""
        for target, online in self.targets.items():
            getattr(self, target).load_state_dict(self.get_submodule(online).state_dict())

    def load_policy_weights(self, pretrained: SeqRLPolicy) -> None:
        """Load a trained policy's weights into ``policy()`` (``--init_from``). The classes and shapes
        match (checked before); algorithms that extend a policy (ODT's stochastic head on a DT) override this."""
        self.policy().load_state_dict(pretrained.state_dict())

    def policy(self) -> SeqRLPolicy:
        """The module used for acting and saved with ``save_pretrained``."""
        raise NotImplementedError

    def sampler_options(self) -> dict:
        """Extra keyword arguments for this data shape's sampler (e.g. ``context_len``, ``n_step``)."""
        cfg = self.config
        if isinstance(cfg, TDConfig):
            return {"n_step": cfg.n_step, "gamma": cfg.gamma, "reward_scale": cfg.reward_scale}
        return {}

    def make_sampler(self, dataset, seed: int, process_index: int = 0, num_processes: int = 1):
        """The sampler for this algorithm's data shape, normalising observations as the policy will."""
        from seqrl.data.samplers import TrajectorySampler, TransitionSampler

        sampler = TrajectorySampler if self.data_shape == "trajectory" else TransitionSampler
        stats = self.metadata.stats
        return sampler(
            dataset, batch_size=self.config.batch_size, obs_mean=np.asarray(stats["obs_mean"], np.float32),
            obs_std=np.asarray(stats["obs_std"], np.float32), seed=seed, process_index=process_index,
            num_processes=num_processes, **self.sampler_options(),
        )


def policy_fields(metadata: DatasetMetadata, algo: str, target_returns: list[float] | None = None) -> dict:
    """Config fields every policy saves (see :class:`~seqrl.models.policy_config.PolicyConfigMixin`),
    taken from the dataset so that evaluation needs nothing else."""
    stats = metadata.stats
    space = metadata.action_space_obj
    fields = dict(
        algo=algo,
        env_id=metadata.env_id,
        env_kwargs=spec_kwargs(metadata.env_spec),
        env_import=list(metadata.env_import),
        dataset_id=metadata.dataset_id,
        obs_mean=[float(x) for x in stats["obs_mean"]],
        obs_std=[float(x) for x in stats["obs_std"]],
        ref_min_score=metadata.ref_min_score,
        ref_max_score=metadata.ref_max_score,
        state_dim=metadata.obs_dim,
        act_dim=metadata.action_dim,
        discrete_actions=metadata.is_discrete,
    )
    if not metadata.is_discrete:
        fields["action_low"] = [float(x) for x in np.broadcast_to(space.low, space.shape)]
        fields["action_high"] = [float(x) for x in np.broadcast_to(space.high, space.shape)]
    if target_returns is not None:
        fields["target_returns"] = [float(x) for x in target_returns] or default_target_returns(metadata)
    return fields


def default_target_returns(metadata: DatasetMetadata) -> list[float]:
    """Three points of the return-conditioning curve: the reference random and expert returns and
    their midpoint, or, without reference scores, the 10th/50th/90th percentile episode returns
    (extremes are often a lucky start, not a level of play)."""
    if metadata.ref_min_score is not None and metadata.ref_max_score is not None:
        low, high = float(metadata.ref_min_score), float(metadata.ref_max_score)
        return [low, (low + high) / 2, high]
    stats = metadata.stats
    return [float(stats["return_p10"]), float(stats["return_p50"]), float(stats["return_p90"])]
