"""The acting contract shared by every seqrl policy.

A policy is a ``transformers.PreTrainedModel`` whose config carries its preprocessing
(:class:`~seqrl.models.policy_config.PolicyConfigMixin`). Acting is batched over vector envs and
takes and returns numpy arrays, so an evaluation loop makes one host-device copy per step for all
environments together, not one per environment.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel

from seqrl.errors import SeqRLError


class PolicyError(SeqRLError):
    """A policy was asked for something it cannot do (e.g. a target return for a Q-learning actor)."""


class SeqRLPolicy(PreTrainedModel):
    """Base class: observation/action (de)normalisation from the config and the ``reset``/``act`` API.

    Subclasses implement :meth:`_reset_state` and :meth:`_act`. The normalisation constants are
    non-persistent buffers rebuilt from the config, so ``model.safetensors`` holds only weights and the
    config stays the single source of the preprocessing.
    """

    base_model_prefix = "policy"
    main_input_name = "states"
    exploring = False  # set by reset(): sample actions instead of the mode

    def push_to_hub(self, repo_id: str, *, private: bool = False, revision: str | None = None, token: str | None = None,
                    commit_message: str | None = None, license: str | None = None, run_dir: str | None = None):
        """Push this policy with seqrl's model card (algorithm, environment, usage; the results and training
        config too when ``run_dir``, the run folder it came from, is given), instead of transformers' generic card.
        The same as ``seqrl-hub push``; returns the commit."""
        from seqrl.hub.cards import DEFAULT_LICENSE
        from seqrl.hub.push import push_policy

        options = dict(private=private, revision=revision, token=token, commit_message=commit_message,
                       license=license or DEFAULT_LICENSE)
        with tempfile.TemporaryDirectory(prefix="seqrl-push-") as folder:
            if run_dir is not None:  # the run's reports and videos, with this policy's weights
                from seqrl.hub.run_folder import PUBLISHED_FILES, VIDEO_DIR

                for name in PUBLISHED_FILES:
                    if (Path(run_dir) / name).is_file():
                        shutil.copy2(Path(run_dir) / name, Path(folder) / name)
                if (Path(run_dir) / VIDEO_DIR).is_dir():
                    shutil.copytree(Path(run_dir) / VIDEO_DIR, Path(folder) / VIDEO_DIR)
            self.save_pretrained(folder)
            return push_policy(folder, repo_id, **options)

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """transformers' ``from_pretrained``, with every CPU tensor moved into memory of its own: tensors
        read from ``model.safetensors`` can sit at any 8-byte offset of the file's buffer, and MKL's GEMMs
        round differently on unaligned weights on some CPUs (measured on an AMD EPYC: a loaded DT's returns
        differed from the same weights' in the training process in the 8th digit), so a loaded policy would
        not act exactly as the one that was saved."""
        loaded = super().from_pretrained(*args, **kwargs)
        policy = loaded[0] if isinstance(loaded, tuple) else loaded  # (policy, loading info) on request
        with torch.no_grad():
            for tensor in (*policy.parameters(), *policy.buffers()):
                if tensor.device.type == "cpu":
                    tensor.data = tensor.data.clone()  # PyTorch's allocator: 64-byte aligned
        return loaded

    def __init__(self, config):
        super().__init__(config)
        discrete = getattr(config, "discrete_actions", False)
        self.scales_actions = bool(
            not discrete and config.action_low is not None
            and np.all(np.isfinite(config.action_low)) and np.all(np.isfinite(config.action_high))
        )
        for name, size in (("obs_mean", config.state_dim), ("obs_std", config.state_dim),
                           ("action_low", config.act_dim), ("action_high", config.act_dim)):
            self.register_buffer(name, torch.empty(size), persistent=False)
        self._fill_preprocessing()

    @torch.no_grad()
    def _fill_preprocessing(self) -> None:
        """(Re)build the normalisation buffers from the config. ``from_pretrained`` creates modules on the
        meta device and re-initialises non-persistent buffers through ``_init_weights``, which calls this."""
        cfg = self.config
        values = {
            "obs_mean": cfg.obs_mean if cfg.obs_mean is not None else [0.0] * cfg.state_dim,
            "obs_std": cfg.obs_std if cfg.obs_std is not None else [1.0] * cfg.state_dim,
            "action_low": cfg.action_low if self.scales_actions else [-1.0] * cfg.act_dim,
            "action_high": cfg.action_high if self.scales_actions else [1.0] * cfg.act_dim,
        }
        for name, value in values.items():
            buffer = getattr(self, name)
            if buffer.device.type != "meta":
                buffer.copy_(torch.tensor(value, dtype=torch.float32))

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        if module is self:
            self._fill_preprocessing()
        else:
            self._init_submodule(module)

    def _init_submodule(self, module: nn.Module) -> None:
        """Initialise one submodule's parameters (subclasses)."""

    # --- preprocessing -------------------------------------------------------------------------
    def normalize_observations(self, observations: torch.Tensor) -> torch.Tensor:
        return (observations - self.obs_mean) / self.obs_std

    def normalize_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Map env actions from [low, high] to [-1, 1] (identity for discrete or unbounded actions)."""
        if not self.scales_actions:
            return actions
        return 2.0 * (actions - self.action_low) / (self.action_high - self.action_low) - 1.0

    def unnormalize_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Map network actions from [-1, 1] back to the env's [low, high]."""
        if not self.scales_actions:
            return actions
        return self.action_low + (actions + 1.0) * 0.5 * (self.action_high - self.action_low)

    # --- acting --------------------------------------------------------------------------------
    @property
    def uses_target_return(self) -> bool:
        return self.config.uses_target_return

    @property
    def can_explore(self) -> bool:
        """Whether ``reset(..., explore=True)`` makes this policy act stochastically (online fine-tuning)."""
        return False

    def reset(self, batch_size: int, target_return: float | np.ndarray | None = None, explore: bool = False) -> None:
        """Start ``batch_size`` new episodes. Return-conditioned policies need ``target_return``
        (a scalar or one per env, in raw return units); other policies refuse one. ``explore=True``
        samples actions from the policy's distribution instead of acting with its mode (online
        fine-tuning); policies without a distribution refuse it (see :attr:`can_explore`)."""
        if explore and not self.can_explore:
            raise PolicyError(
                f"{type(self).__name__} (algo '{self.config.algo}') has no action distribution to sample from, "
                "so it cannot explore; add noise to its actions instead."
            )
        self.exploring = bool(explore)
        if self.uses_target_return:
            if target_return is None:
                defaults = self.config.target_returns
                if not defaults:
                    raise PolicyError(
                        f"{type(self).__name__} is return-conditioned: pass target_return "
                        "(its config has no default target_returns)."
                    )
                target_return = defaults[-1]
            target = np.broadcast_to(np.asarray(target_return, dtype=np.float32), (batch_size,))
        else:
            if target_return is not None:
                raise PolicyError(
                    f"{type(self).__name__} (algo '{self.config.algo}') is not return-conditioned, so it "
                    "cannot use a target return. Evaluate it without target returns, or train a "
                    "return-conditioned model such as --algo dt."
                )
            target = None
        self.eval()
        self._reset_state(batch_size, target)

    @torch.no_grad()
    def act(
        self,
        observations: np.ndarray,
        rewards: np.ndarray | None = None,
        episode_starts: np.ndarray | None = None,
    ) -> np.ndarray:
        """One action per env. ``observations`` [B, obs_dim]; ``rewards`` [B] received for the previous
        action; ``episode_starts`` [B] bool marks envs whose observation begins a new episode.
        Returns [B, act_dim] float32 actions in env units, or [B] int64 for discrete actions."""
        obs = torch.as_tensor(np.asarray(observations, dtype=np.float32), device=self.device)
        obs = self.normalize_observations(obs.reshape(obs.shape[0], -1))
        batch = obs.shape[0]
        rew = torch.zeros(batch, device=self.device) if rewards is None else torch.as_tensor(
            np.asarray(rewards, dtype=np.float32), device=self.device
        )
        starts = None if episode_starts is None else torch.as_tensor(np.asarray(episode_starts, dtype=bool), device=self.device)
        actions = self._act(obs, rew, starts)
        if getattr(self.config, "discrete_actions", False):
            return actions.to(torch.int64).cpu().numpy()
        return self.unnormalize_actions(actions.float()).cpu().numpy()

    def _reset_state(self, batch_size: int, target_return: np.ndarray | None) -> None:
        raise NotImplementedError

    def _act(self, observations: torch.Tensor, rewards: torch.Tensor, episode_starts: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError
