"""Online Decision Transformer (Zheng, Zhang & Grover 2022, https://arxiv.org/abs/2202.05607).

A Decision Transformer whose action head is a tanh-squashed diagonal Gaussian (see
:mod:`seqrl.models.decision_transformer.modeling_decision_transformer`), trained by maximum likelihood
with an entropy bonus whose weight, the temperature ``T``, is tuned towards a target entropy:

    L_pi = -( 1/|M| sum_{(b,t) in M} log pi(a_t | R_{<=t}, s_{<=t}, a_{<t})  +  sg(T) * H )
    H    = -1/|M| sum_{(b,t) in M} log pi(a~_t | ...),   a~_t = tanh(mu_t + sigma_t * eps),  eps ~ N(0, I)
    L_T  = T * sg(H - H_target),   T = exp(log T),   H_target = -act_dim by default

``M`` is the set of unpadded positions of the sampled K-step windows, ``sg`` stops gradients, and the
entropy is estimated from one reparameterised sample per position, as the reference does.
``log pi(a)`` of data actions uses ``u = atanh(a)`` with ``a`` clamped to ``±(1 - 1e-6)``, so actions on
the bounds stay finite. ``L_pi`` trains the transformer ("main" group); ``L_T`` trains only ``log T``
("temperature" group, no weight decay, betas (0.9, 0.999) as the reference's Adam), so the loop
minimises ``L_pi + L_T`` with one backward. When the policy's entropy is below the target, ``L_T``'s
gradient raises ``T`` and with it the weight of the entropy bonus.

Defaults are the reference's (facebookresearch/online-dt ``main.py``): embedding 512, 4 layers,
4 heads, MLP width 2048 (``n_inner`` None = 4 * hidden_size), ReLU, dropout 0.1, K = 20 for training
and 5 for acting (``eval_context_len``), batch 256, learning rate 1e-4, weight decay 5e-4, 10,000
warm-up steps, gradient clip 0.25, returns scaled by 1/1000, initial temperature 0.1 with learning
rate 1e-4, log std bounded in [-5, 2]. Fine-tuning online (rollouts with sampled actions, the
trajectory replay buffer, hindsight returns-to-go) is the loop's online phase; this file holds the
losses.

Departures from the reference code, and why:
- Optimiser: the reference trains the model with LAMB and the temperature with its own Adam. seqrl
  steps one fused AdamW over named groups (one optimizer for Accelerate/DeepSpeed, see
  ``seqrl.training.setup.build_optimizer``), so the model uses AdamW with the same learning rate and
  decoupled weight decay, and the temperature group is AdamW with zero weight decay, which is Adam.
  The loop's warm-up schedule and per-group gradient clipping also apply to the temperature group
  (the reference warms up and clips only the model); Adam's step hardly depends on the gradient's
  scale, so clipping the one scalar changes little, but the temperature moves slowly during warm-up.
- The entropy is averaged over unpadded positions only (the reference averages over padding too),
  following seqrl's masked-loss rule. Data actions are clamped before atanh (the reference takes atanh
  of the raw actions, which is infinite for an action on a bound). Data with many actions on the
  bounds (clipped noisy actions) pulls the fit towards a wide policy that puts its mass on both bounds
  in every state; a lower ``log_std_max`` avoids that (configs/odt/pendulum-mixed.yaml).
- Timesteps keep DT's learned timestep embedding (the reference ODT, ``ordering=0``, has none), so a
  trained ``dt`` policy loads into ``odt`` and acts the same; the log-std head starts from the GPT-2
  init like every other linear layer (the reference initialises its two action heads orthogonally).
- Acting uses the rolling key/value cache over the last ``eval_context_len`` timesteps (see the DT
  model's docstring), and evaluation acts with the mode ``tanh(mu)``; the reference recomputes the
  last 5 steps every step and reports both sampled and mean-action returns.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from seqrl.algos.base import Algorithm, Output, policy_fields
from seqrl.algos.dt import DTConfig, max_episode_length
from seqrl.data.schema import DatasetMetadata
from seqrl.errors import SeqRLError
from seqrl.models.decision_transformer import DecisionTransformer, DecisionTransformerConfig
from seqrl.models.decision_transformer.modeling_decision_transformer import squashed_gaussian_log_prob
from seqrl.models.policy import SeqRLPolicy
from seqrl.registry import register

ATANH_EPS = 1e-6  # data actions are clamped to ±(1 - eps) before atanh (atanh(±1) is infinite)
LOG_STD_HEAD = ("predict_log_std.weight", "predict_log_std.bias")  # the weights a deterministic DT lacks


@dataclass
class ODTConfig(DTConfig):
    """Online Decision Transformer hyperparameters (defaults of the reference code, facebookresearch/online-dt)."""

    batch_size: int = 256
    learning_rate: float = 1e-4
    weight_decay: float = 5e-4
    warmup_steps: int = 10_000
    grad_clip: float | None = 0.25
    context_len: int = 20
    """K: timesteps per training window."""
    hidden_size: int = 512
    """Width of the embeddings and GPT-2 blocks."""
    n_layer: int = 4
    """Number of GPT-2 blocks."""
    n_head: int = 4
    """Attention heads per block."""
    n_inner: int | None = None
    """Hidden width of the block MLPs; None: 4 * hidden_size (2048 at the default width, as the reference)."""
    eval_context_len: int | None = 5
    """Timesteps the policy attends to when acting (the reference acts with 5); None, or more than
    context_len: context_len. Saved in the policy's config (act_context_len)."""
    init_temperature: float = 0.1
    """Initial entropy temperature T."""
    temperature_learning_rate: float = 1e-4
    """Learning rate of log T."""
    target_entropy: float | None = None
    """Entropy the temperature steers the policy towards; None: -act_dim."""
    log_std_min: float = -5.0
    """Lower bound of the policy's log std."""
    log_std_max: float = 2.0
    """Upper bound of the policy's log std."""


@register("odt", policy=DecisionTransformer, paper="Zheng, Zhang & Grover 2022, Online Decision Transformer")
class OnlineDecisionTransformer(Algorithm):
    """Trains a stochastic :class:`~seqrl.models.decision_transformer.DecisionTransformer` and its temperature."""

    config_class = ODTConfig
    supports_online = True
    data_shape = "trajectory"
    supports_discrete = False
    supports_continuous = True

    def __init__(self, config: ODTConfig, metadata: DatasetMetadata):
        super().__init__(config, metadata)
        if metadata.is_discrete:
            raise SeqRLError(
                f"odt: '{metadata.dataset_id}' has discrete actions ({metadata.action_space_obj}), but the Online "
                "Decision Transformer's policy is a tanh-Gaussian over continuous actions. Use --algo dt for "
                "discrete actions."
            )
        if config.init_temperature <= 0 or (config.eval_context_len is not None and config.eval_context_len < 1):
            raise SeqRLError(
                "odt: init_temperature must be > 0 and eval_context_len >= 1 (or None); got "
                f"{config.init_temperature}, {config.eval_context_len}."
            )
        act_context_len = min(config.eval_context_len or config.context_len, config.context_len)
        model_config = DecisionTransformerConfig(
            hidden_size=config.hidden_size, n_layer=config.n_layer, n_head=config.n_head, n_inner=config.n_inner,
            activation_function=config.activation_function, resid_pdrop=config.dropout, embd_pdrop=config.dropout,
            attn_pdrop=config.dropout, context_len=config.context_len, act_context_len=act_context_len,
            return_scale=config.return_scale, max_ep_len=config.max_ep_len or max_episode_length(metadata),
            stochastic=True, log_std_min=config.log_std_min, log_std_max=config.log_std_max, acting=config.acting,
            **policy_fields(metadata, "odt", config.target_returns),
        )
        self.model = DecisionTransformer(model_config)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(config.init_temperature)))
        action_dim = metadata.action_dim
        self.target_entropy = -float(action_dim) if config.target_entropy is None else float(config.target_entropy)

    def compute_loss(self, batch: dict[str, torch.Tensor], step: int) -> Output:
        model = self.model
        actions = model.normalize_actions(batch["actions"])  # [B, K, A] in [-1, 1]
        mean, log_std = model.action_distribution(batch["states"], actions, batch["returns_to_go"], batch["timesteps"],
                                                  batch["attention_mask"])
        mean, log_std = mean.float(), log_std.float()  # [B, K, A]: densities in float32 under autocast too
        mask = batch["attention_mask"].float()  # [B, K]
        valid = mask.sum().clamp(min=1)  # divide by real steps, not B * K

        data_pre_tanh = torch.atanh(actions.float().clamp(-1.0 + ATANH_EPS, 1.0 - ATANH_EPS))  # [B, K, A]
        log_likelihood = (squashed_gaussian_log_prob(data_pre_tanh, mean, log_std) * mask).sum() / valid
        sampled_pre_tanh = mean + log_std.exp() * torch.randn_like(mean)  # reparameterised sample [B, K, A]
        entropy = -(squashed_gaussian_log_prob(sampled_pre_tanh, mean, log_std) * mask).sum() / valid

        temperature = self.log_temperature.exp()
        policy_loss = -(log_likelihood + temperature.detach() * entropy)
        temperature_loss = temperature * (entropy.detach() - self.target_entropy)
        with torch.no_grad():
            action_loss = ((torch.tanh(mean) - actions).square().mean(-1) * mask).sum() / valid  # MSE of the mode
        metrics = {
            "nll": -log_likelihood.detach(), "entropy": entropy.detach(), "temperature": temperature.detach(),
            "action_loss": action_loss, "policy_loss": policy_loss.detach(), "temperature_loss": temperature_loss.detach(),
        }
        return Output(loss={"main": policy_loss, "temperature": temperature_loss}, metrics=metrics)

    def optimizer_groups(self) -> dict[str, list[dict]]:
        return {
            "main": [{"params": list(self.model.parameters())}],
            "temperature": [{"params": [self.log_temperature], "lr": self.config.temperature_learning_rate,
                             "weight_decay": 0.0, "betas": (0.9, 0.999)}],
        }

    def policy(self) -> DecisionTransformer:
        return self.model

    def sampler_options(self) -> dict:
        return {"context_len": self.config.context_len, "return_scale": self.config.return_scale}

    def load_policy_weights(self, pretrained: SeqRLPolicy) -> None:
        """Start from a trained policy: an ``odt`` policy (every weight), or a deterministic ``dt``
        Decision Transformer of the same sizes (every weight but the log-std head, which keeps its init;
        the mode ``tanh(mu)`` then acts exactly like the DT). The preprocessing (observation
        statistics, return scale) stays this run's; a warning names any that differs from the policy's."""
        ours = self.model.state_dict()
        name = f"{type(pretrained).__name__} (algo '{pretrained.config.algo}')"
        if not isinstance(pretrained, DecisionTransformer) or pretrained.config.discrete_actions:
            raise SeqRLError(
                f"odt can start from a continuous-action Decision Transformer (--algo dt or odt), not from {name}"
                f"{' with discrete actions' if getattr(pretrained.config, 'discrete_actions', False) else ''}."
            )
        theirs = pretrained.state_dict()
        new = set() if pretrained.config.stochastic else set(LOG_STD_HEAD)
        missing, unexpected = sorted(set(ours) - set(theirs) - new), sorted(set(theirs) - set(ours))
        mismatched = sorted(k for k in set(ours) & set(theirs) if ours[k].shape != theirs[k].shape)
        if missing or unexpected or mismatched:
            details = "; ".join(f"{kind}: {', '.join(keys[:5])}" for kind, keys in
                                (("missing", missing), ("unexpected", unexpected), ("other shapes", mismatched)) if keys)
            raise SeqRLError(
                f"The weights of the {name} do not fit this odt model ({details}). Use the same hidden_size, "
                "n_layer, n_head, n_inner, max_ep_len and a dataset with the same observation and action spaces."
            )
        self.model.load_state_dict(theirs, strict=not new)
        differing = [field for field in ("obs_mean", "obs_std", "action_low", "action_high", "return_scale")
                     if not _same(getattr(self.model.config, field), getattr(pretrained.config, field))]
        if differing:
            warnings.warn(
                f"odt: loaded the weights of a {name} whose {', '.join(differing)} differ from this run's; the "
                "policy now sees inputs scaled unlike in its training. Train on the same dataset and return_scale "
                "to continue it unchanged.", stacklevel=2,
            )


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return bool(np.allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)))
