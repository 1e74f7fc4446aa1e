"""Decision Transformer (Chen et al. 2021, "Decision Transformer: Reinforcement Learning via
Sequence Modeling", https://arxiv.org/abs/2106.01345).

A trajectory is the token sequence ``(R_1, s_1, a_1, R_2, s_2, a_2, ...)`` where ``R_t = sum_{t'>=t} r_t'``
is the return-to-go. Each token gets a modality embedding plus a learned embedding of its episode
timestep; a causal GPT-2 stack reads the sequence and the action ``a_t`` is predicted from the output
at the ``s_t`` token:

    continuous:  L = 1/|M| sum_{(b,t) in M} || tanh(W h_{s_t}) - a_t ||^2
    discrete:    L = 1/|M| sum_{(b,t) in M} -log softmax(W h_{s_t})[a_t]

with ``M`` the valid (unpadded) positions. At test time ``R_1`` is the target return and
``R_{t+1} = R_t - r_t``.

Attention: each token attends to the tokens of the last ``K = context_len`` timesteps (a band of
3K - 1 tokens). Training windows are K long, so there the band is the plain causal mask. There are no
absolute position embeddings (the reference code removes GPT-2's too); order comes from the timestep
embedding and the mask. Acting has two modes (``config.acting``):

- ``"window"``, the reference's (kzl/decision-transformer ``get_action``): every step recomputes the
  last K timesteps from scratch, left-padded at an episode's start, exactly as training windows are
  seen. Batched over envs: one forward of [B, 3K] tokens per step.
- ``"cached"``: a rolling key/value cache of the last K timesteps, so one step computes 3 new tokens
  instead of 3K. It computes exactly what a forward pass over the whole episode with the banded mask
  computes, which is not what training sees: from the second layer up, a token's keys and values were
  themselves computed from up to K steps further back, so deeper layers see up to 2K-3K steps of
  history, as in sliding-window attention (Beltagy et al. 2020), where training windows hold K.

Measured on the same trained policies and evaluation seeds (3 seeds each; README, "Fidelity to the
reference code"), the two modes score the same within seed noise on Pendulum mixed, Hopper medium and
Hopper medium-replay, and the cached mode acts about 2.3x faster on 10 Hopper envs, so it is the default;
``acting="window"`` (or ``evaluate.py --acting window``) gives the reference's behaviour exactly.
Acting may attend to fewer timesteps than training windows hold (``act_context_len``; the Online DT
trains with K=20 and acts with 5): the window or the cache then holds that many, and equals the forward
pass with that band (``forward(..., window=...)``).

Stochastic head (Online Decision Transformer, Zheng, Zhang & Grover 2022,
https://arxiv.org/abs/2202.05607), ``config.stochastic``: the policy at the ``s_t`` token is a
tanh-squashed diagonal Gaussian,

    u ~ N(mu_t, diag(sigma_t^2)),   a_t = tanh(u),   mu_t = W_mu h_t,
    log sigma_t = l_min + (l_max - l_min) (tanh(W_sigma h_t) + 1) / 2      (bounded as the reference does)
    log pi(a|.) = sum_i [ log N(u_i; mu_i, sigma_i^2) - log(1 - tanh(u_i)^2) ],   u = atanh(a).

``forward`` returns the mode ``tanh(mu)``, so a deterministic DT's weights load into a stochastic one
(only ``predict_log_std`` is new) and its actions are the mode's. ``action_distribution`` gives
``(mu, log sigma)`` for training; acting samples when the policy was reset with ``explore=True``.
"""

from __future__ import annotations


import math

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from transformers import GPT2Config
from transformers.models.gpt2.modeling_gpt2 import GPT2Block

from seqrl.models.gpt import block_forward, dropout, init_gpt2_module

from seqrl.models.decision_transformer.configuration_decision_transformer import DecisionTransformerConfig
from seqrl.models.decision_transformer.kv_ring import TOKENS_PER_STEP, KeyValueRing
from seqrl.models.policy import PolicyError, SeqRLPolicy



def band_mask(query_index: torch.Tensor, key_index: torch.Tensor, key_valid: torch.Tensor, context_len: int) -> torch.Tensor:
    """Boolean attention mask [B, 1, Nq, Nk] from token indices ``3 * step + slot`` within an episode.

    A query may see a valid key that is not after it and lies within the last ``context_len``
    timesteps. A query always sees itself, so padded queries never meet an all-masked row (whose
    softmax would be NaN); nothing valid attends to them, so this changes no real output.
    """
    q = query_index[:, :, None]  # [B, Nq, 1]
    k = key_index[:, None, :]  # [B, 1, Nk]
    first_visible = (torch.div(q, TOKENS_PER_STEP, rounding_mode="floor") - context_len + 1) * TOKENS_PER_STEP
    mask = key_valid[:, None, :] & (k <= q) & (k >= first_visible)
    return mask.unsqueeze(1)


def bounded_log_std(raw: torch.Tensor, log_std_min: float, log_std_max: float) -> torch.Tensor:
    """Squash an unbounded head output into [log_std_min, log_std_max] with tanh (the Online DT reference
    does this rather than clamping, so the bound never cuts the gradient)."""
    return log_std_min + 0.5 * (log_std_max - log_std_min) * (torch.tanh(raw) + 1.0)


def squashed_gaussian_log_prob(pre_tanh: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """``log pi(tanh(u))`` [...] of pre-tanh values ``u`` [..., A] under ``N(mean, exp(log_std)^2)`` pushed
    through tanh, summed over the A dimensions. ``log(1 - tanh(u)^2)`` is written as
    ``2 (log 2 - u - softplus(-2u))``, which stays finite for large ``|u|``."""
    gaussian = -0.5 * ((pre_tanh - mean) * torch.exp(-log_std)).square() - log_std - 0.5 * math.log(2 * math.pi)
    log_det = 2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))
    return (gaussian - log_det).sum(-1)


class DecisionTransformer(SeqRLPolicy):
    """Decision Transformer policy: GPT-2 blocks from transformers, SDPA attention, a rolling KV cache."""

    config_class = DecisionTransformerConfig
    _supports_sdpa = True

    def __init__(self, config: DecisionTransformerConfig):
        super().__init__(config)
        hidden = config.hidden_size
        gpt2 = GPT2Config(
            n_embd=hidden, n_layer=config.n_layer, n_head=config.n_head, n_inner=config.n_inner,
            activation_function=config.activation_function, resid_pdrop=config.resid_pdrop,
            embd_pdrop=config.embd_pdrop, attn_pdrop=config.attn_pdrop,
            layer_norm_epsilon=config.layer_norm_epsilon, n_positions=TOKENS_PER_STEP * config.context_len,
        )
        self.embed_timestep = nn.Embedding(config.max_ep_len, hidden)
        self.embed_return = nn.Linear(1, hidden)
        self.embed_state = nn.Linear(config.state_dim, hidden)
        if config.discrete_actions:
            self.embed_action = nn.Embedding(config.act_dim, hidden)
        else:
            self.embed_action = nn.Linear(config.act_dim, hidden)
        self.embed_ln = nn.LayerNorm(hidden, eps=config.layer_norm_epsilon)
        self.embed_dropout = nn.Dropout(config.embd_pdrop)
        self.blocks = nn.ModuleList(GPT2Block(gpt2, layer_idx=i) for i in range(config.n_layer))
        self.ln_f = nn.LayerNorm(hidden, eps=config.layer_norm_epsilon)
        self.predict_action = nn.Linear(hidden, config.act_dim)
        if config.stochastic:  # a separate module, so that a deterministic DT's weights load around it
            self.predict_log_std = nn.Linear(hidden, config.act_dim)
        for block in self.blocks:
            block.attn.c_proj.residual_projection = block.mlp.c_proj.residual_projection = True
        self.post_init()

    def _init_submodule(self, module: nn.Module) -> None:
        init_gpt2_module(module, self.config.initializer_range, self.config.n_layer)

    # --- embeddings ----------------------------------------------------------------------------
    def _embed(self, returns_to_go, states, actions, timesteps) -> torch.Tensor:
        """Token embeddings [B, T, 3, H] for (R_t, s_t, a_t); inputs [B, T, ...] with normalised
        states, scaled returns and actions in [-1, 1] (or int ids)."""
        time = self.embed_timestep(timesteps.clamp(max=self.config.max_ep_len - 1))  # [B, T, H]
        if not self.config.discrete_actions:
            actions = actions.to(time.dtype)
        tokens = torch.stack(
            [self.embed_return(returns_to_go.to(time.dtype)) + time,
             self.embed_state(states.to(time.dtype)) + time,
             self.embed_action(actions) + time],
            dim=2,
        )
        return dropout(self.embed_ln(tokens), self.embed_dropout.p, self.training)

    def _head(self, features: torch.Tensor) -> torch.Tensor:
        """Action prediction from final-norm state-token features [..., H] -> [..., act_dim]: the
        (tanh-squashed) action, its mode for a stochastic head, or logits for discrete actions."""
        out = self.predict_action(features)
        if self.config.action_tanh and not self.config.discrete_actions:
            out = torch.tanh(out)
        return out

    def _log_std(self, features: torch.Tensor) -> torch.Tensor:
        """Bounded log std [..., act_dim] of the stochastic head from state-token features [..., H]."""
        return bounded_log_std(self.predict_log_std(features), self.config.log_std_min, self.config.log_std_max)

    @property
    def can_explore(self) -> bool:
        return bool(self.config.stochastic and not self.config.discrete_actions)

    # --- training / full-sequence forward ------------------------------------------------------
    def _state_features(self, states, actions, returns_to_go, timesteps, attention_mask, window,
                        last_only: bool = False) -> torch.Tensor:
        """Final-norm outputs [B, T, H] at the state tokens (the inputs of the action heads); with
        ``last_only``, [B, 1, H] at the last state token only (acting)."""
        batch, steps = states.shape[:2]
        x = rearrange(self._embed(returns_to_go, states, actions, timesteps), "b t k h -> b (t k) h")
        if attention_mask is None:
            attention_mask = torch.ones(batch, steps, dtype=torch.bool, device=states.device)
        valid = attention_mask.bool().repeat_interleave(TOKENS_PER_STEP, dim=1)  # [B, 3T]
        index = torch.arange(TOKENS_PER_STEP * steps, device=states.device).expand(batch, -1)
        mask = band_mask(index, index, valid, window or self.config.context_len)
        mask = mask | torch.eye(mask.shape[-1], dtype=torch.bool, device=mask.device)
        for block in self.blocks[:-1]:
            x = block_forward(block, x, mask, self.config.n_head)
        # The last block computes outputs only at the state tokens (positions 1, 4, 7, ...).
        states_only = slice(TOKENS_PER_STEP * steps - 2 if last_only else 1, None, TOKENS_PER_STEP)
        state_tokens = block_forward(self.blocks[-1], x, mask[:, :, states_only], self.config.n_head,
                                      queries=states_only)  # [B, T, H]
        return self.ln_f(state_tokens)

    def forward(self, states, actions, returns_to_go, timesteps, attention_mask=None, window: int | None = None,
                **kwargs) -> torch.Tensor:
        """Action predictions [B, T, act_dim] (tanh-squashed values or logits) at every state token; for a
        stochastic head the mode ``tanh(mu)``.

        ``states`` [B, T, S] normalised, ``actions`` [B, T, A] in [-1, 1] or [B, T] ids,
        ``returns_to_go`` [B, T, 1] scaled, ``timesteps`` [B, T], ``attention_mask`` [B, T] (1 = real
        step, padding on the left). Each token attends to the last ``window`` timesteps (None:
        ``context_len``), so sequences longer than that use the banded mask; acting computes exactly
        this with ``window = act_context_len``.
        """
        return self._head(self._state_features(states, actions, returns_to_go, timesteps, attention_mask, window))

    def action_distribution(self, states, actions, returns_to_go, timesteps, attention_mask=None,
                            window: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Parameters of the stochastic head's policy at every state token: the pre-tanh mean and the
        bounded log std, each [B, T, act_dim] (inputs as :meth:`forward`). The action density is
        :func:`squashed_gaussian_log_prob` of ``atanh(a)``."""
        if not self.config.stochastic:
            raise PolicyError(
                f"{type(self).__name__} (algo '{self.config.algo}') is deterministic (config.stochastic=False), so it "
                "has no action distribution; build it with stochastic=True (e.g. --algo odt)."
            )
        features = self._state_features(states, actions, returns_to_go, timesteps, attention_mask, window)
        return self.predict_action(features), self._log_std(features)

    # --- acting ---------------------------------------------------------------------------------
    def _reset_state(self, batch_size: int, target_return: np.ndarray | None) -> None:
        """Empty histories for ``batch_size`` envs: the last K steps' inputs (window mode), or a key/value
        ring of K+1 step groups ``[a_{t-1}, R_t, s_t]`` (cached mode), with K the acting context: enough
        for ``a_{t-1}`` to see back to timestep ``t-K``."""
        cfg, dev = self.config, self.device
        dtype = self.embed_state.weight.dtype
        self._target = torch.tensor(target_return, device=dev)  # [B] raw return units
        self._return_to_go = self._target.clone()
        self._step = torch.zeros(batch_size, dtype=torch.long, device=dev)  # timestep of the next state
        self._pending_start = torch.ones(batch_size, dtype=torch.bool, device=dev)
        if cfg.acting == "window":
            k = cfg.acting_context_len
            self._window = {  # the last K steps, oldest first, as forward() takes them
                "states": torch.zeros(batch_size, k, cfg.state_dim, device=dev, dtype=dtype),
                "actions": (torch.zeros(batch_size, k, dtype=torch.long, device=dev) if cfg.discrete_actions
                            else torch.zeros(batch_size, k, cfg.act_dim, device=dev, dtype=dtype)),
                "returns_to_go": torch.zeros(batch_size, k, 1, device=dev, dtype=dtype),
                "timesteps": torch.zeros(batch_size, k, dtype=torch.long, device=dev),
                "attention_mask": torch.zeros(batch_size, k, dtype=torch.bool, device=dev),
            }
            return
        self._ring_offsets = torch.tensor([-1, 0, 0], device=dev)
        self._ring = KeyValueRing(self.blocks, cfg.n_head, batch_size, cfg.acting_context_len, cfg.hidden_size,
                                  dtype, dev)
        self._prev_action = torch.zeros(batch_size, *(() if cfg.discrete_actions else (cfg.act_dim,)), device=dev,
                                        dtype=torch.long if cfg.discrete_actions else dtype)

    def _act(self, observations, rewards, episode_starts) -> torch.Tensor:
        starts = self._pending_start if episode_starts is None else episode_starts | self._pending_start
        self._pending_start = torch.zeros_like(starts)
        # New episodes forget their envs' history and start again from the target return.
        self._return_to_go = torch.where(starts, self._target, self._return_to_go - rewards)
        self._step = torch.where(starts, torch.zeros_like(self._step), self._step)
        if self.config.acting == "window":
            features = self._window_features(observations, starts)
        else:
            features = self._cached_features(observations, starts)
        if self.exploring:  # a = tanh(mu + sigma * noise): a sample of the stochastic head
            mean = self.predict_action(features)  # [B, A]
            action = torch.tanh(mean + self._log_std(features).exp() * torch.randn_like(mean))
        else:
            prediction = self._head(features)  # [B, act_dim]
            action = prediction.argmax(-1) if self.config.discrete_actions else prediction
        if self.config.acting == "window":
            self._window["actions"][:, -1] = action.to(self._window["actions"].dtype)
        else:
            self._prev_action = action.to(self._prev_action.dtype)
        self._step = self._step + 1
        return action

    def _window_features(self, observations, starts) -> torch.Tensor:
        """State-token features [B, H] of a fresh forward over each env's last K steps (window mode)."""
        window = self._window
        window["attention_mask"] &= ~starts[:, None]  # [B, K]
        new = {"states": observations, "returns_to_go": (self._return_to_go * self.config.return_scale)[:, None],
               "timesteps": self._step, "attention_mask": torch.ones_like(starts)}
        for name, history in window.items():  # drop the oldest step, append the new one (its action comes later)
            history.copy_(history.roll(-1, dims=1))
            history[:, -1] = new[name].to(history.dtype) if name in new else 0
        features = self._state_features(window["states"], window["actions"], window["returns_to_go"],
                                        window["timesteps"], window["attention_mask"], None, last_only=True)
        return features[:, -1]

    def _cached_features(self, observations, starts) -> torch.Tensor:
        """State-token features [B, H] from the 3 new tokens ``[a_{t-1}, R_t, s_t]`` over the key/value ring
        (cached mode; see :mod:`.kv_ring`)."""
        cfg, step = self.config, self._step  # [B]
        offsets = self._ring_offsets  # timesteps of the 3 tokens: t - 1, t, t
        time = self.embed_timestep((step[:, None] + offsets).clamp_(0, cfg.max_ep_len - 1))  # [B, 3, H]
        rtg = (self._return_to_go * cfg.return_scale).to(time.dtype)[:, None]  # [B, 1]
        tokens = torch.stack([self.embed_action(self._prev_action),
                              torch.addmm(self.embed_return.bias, rtg, self.embed_return.weight.t()),
                              self.embed_state(observations.to(time.dtype))], dim=1) + time
        x = F.layer_norm(tokens, (cfg.hidden_size,), self.embed_ln.weight, self.embed_ln.bias, self.embed_ln.eps)
        return self.ln_f(self._ring.step(x, step))  # [B, H]
