"""Trajectory Transformer (Janner, Li & Levine 2021, "Offline Reinforcement Learning as One Big Sequence
Modeling Problem", https://arxiv.org/abs/2106.02039).

A trajectory is discretised dimension by dimension (:mod:`.discretiser`) into the token sequence

    s_1^1 .. s_1^S, a_1^1 .. a_1^A, r_1, V_1, s_2^1, ...        (D = S + A + 2 tokens per transition)

and a GPT models it autoregressively, ``log p(tau) = sum_i log p(tau_i | tau_<i)``, trained by
cross-entropy with the loss weights of the reference (action tokens 5, the rest 1). Token ``k`` of
dimension ``d`` has its own embedding row ``d * N + k`` (the per-dimension offset), and the output at a
token of dimension ``d`` goes through its own head ``W_d`` [H, N + 1] (the reference's ``EinLinear``),
predicting the token of dimension ``d + 1``.

Attention (:func:`attention_mask`): causal, and no token ever sees a value token ``V_t``, as in the
reference (values are targets, never inputs). Acting adds a band: a token of transition ``t`` sees only
transitions ``t - band + 1 .. t``.

Positions: each token's embedding adds a learned embedding of its transition's **episode timestep**
(GPT-2's absolute position embedding is not used). Positions therefore do not depend on where a window
starts, so a key/value cache of earlier tokens is reused as it is, and decoding one token with the cache
computes exactly what a forward pass over the whole sequence under the banded mask computes. The
reference instead crops its input to the last ``context`` transitions and re-numbers positions from 0 for
every sampled token, which no cache can reproduce once a plan is longer than the window; there, a token
deep in a plan sees, from the second layer up, nothing older than the crop, where here it sees the cached
states of older tokens (as in sliding-window attention). ``benchmarks/bench_tt_plan.py`` runs both.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn
from transformers import GPT2Config
from transformers.models.gpt2.modeling_gpt2 import GPT2Block

from seqrl.models.gpt import block_forward, dropout, init_gpt2_module
from seqrl.models.policy import SeqRLPolicy
from seqrl.models.trajectory_transformer.configuration_trajectory_transformer import TrajectoryTransformerConfig
from seqrl.models.trajectory_transformer.discretiser import Discretiser


def attention_mask(query_index: torch.Tensor, key_index: torch.Tensor, key_valid: torch.Tensor,
                   transition_dim: int, band: int) -> torch.Tensor:
    """Boolean mask [B, 1, Nq, Nk] from global token indices ``t * D + d`` (``t`` the episode timestep).

    A query sees a valid key that is not after it, is not a value token (``d = D - 1``), and belongs to
    one of the last ``band`` transitions up to the query's own.
    """
    q = query_index[:, :, None]  # [B, Nq, 1]
    k = key_index[:, None, :]  # [B, 1, Nk]
    transition = torch.div(k, transition_dim, rounding_mode="floor")
    first = torch.div(q, transition_dim, rounding_mode="floor") - band + 1
    mask = key_valid[:, None, :] & (k <= q) & (k % transition_dim != transition_dim - 1) & (transition >= first)
    return mask.unsqueeze(1)


class PerDimensionHead(nn.Module):
    """One linear map per dimension of the transition, all in one weight [D, H, N + 1] (no bias), as the
    reference's ``EinLinear``; applied to all dimensions at once with one batched matmul."""

    def __init__(self, dims: int, hidden: int, outputs: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dims, hidden, outputs))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """[B, T, D, H] (the outputs at whole transitions) -> logits [B, T, D, N + 1]."""
        batch, steps, dims, width = hidden.shape
        flat = hidden.permute(2, 0, 1, 3).reshape(dims, batch * steps, width)  # [D, B*T, H]
        return torch.bmm(flat, self.weight).view(dims, batch, steps, -1).permute(1, 2, 0, 3)

    def at(self, hidden: torch.Tensor, dim: int) -> torch.Tensor:
        """Logits [R, N + 1] of the outputs [R, H] at tokens of one dimension ``dim``."""
        return hidden @ self.weight[dim]


class TrajectoryTransformer(SeqRLPolicy):
    """Trajectory Transformer policy: GPT-2 blocks from transformers (SDPA), per-dimension token embeddings
    and heads, and a batched beam-search planner over a key/value cache (:mod:`.planner`)."""

    config_class = TrajectoryTransformerConfig
    _supports_sdpa = True

    def __init__(self, config: TrajectoryTransformerConfig):
        super().__init__(config)
        hidden, dims, bins = config.hidden_size, config.transition_dim, config.n_bins
        gpt2 = GPT2Config(
            n_embd=hidden, n_layer=config.n_layer, n_head=config.n_head,
            activation_function=config.activation_function, resid_pdrop=config.resid_pdrop,
            embd_pdrop=config.embd_pdrop, attn_pdrop=config.attn_pdrop,
            layer_norm_epsilon=config.layer_norm_epsilon, n_positions=config.window * dims,
        )
        self.discretiser = Discretiser(dims, bins)
        self.embed_token = nn.Embedding(dims * bins + 1, hidden)  # row D * N: the stop token
        self.embed_timestep = nn.Embedding(config.max_ep_len, hidden)
        self.embed_dropout = nn.Dropout(config.embd_pdrop)
        self.blocks = nn.ModuleList(GPT2Block(gpt2, layer_idx=i) for i in range(config.n_layer))
        self.ln_f = nn.LayerNorm(hidden, eps=config.layer_norm_epsilon)
        self.head = PerDimensionHead(dims, hidden, bins + 1)
        for block in self.blocks:
            block.attn.c_proj.residual_projection = block.mlp.c_proj.residual_projection = True
        self.post_init()

    def _init_submodule(self, module: nn.Module) -> None:
        """GPT-2's init (:func:`seqrl.models.gpt.init_gpt2_module`); the heads N(0, std); the discretiser keeps
        its edges."""
        if not init_gpt2_module(module, self.config.initializer_range, self.config.n_layer) and isinstance(
                module, PerDimensionHead):
            module.weight.normal_(0.0, self.config.initializer_range)

    # --- tokens -> hidden states ---------------------------------------------------------------
    @property
    def stop_token(self) -> int:
        return self.config.n_bins

    def embed(self, tokens: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Embeddings [..., H] of per-dimension tokens [...] (in [0, N], N = stop) at global indices
        ``t * D + d`` [...]: the token's own row (offset by its dimension) plus its timestep's."""
        dims, bins = self.config.transition_dim, self.config.n_bins
        dim, timestep = index % dims, torch.div(index, dims, rounding_mode="floor")
        rows = torch.where(tokens >= bins, dims * bins, tokens + dim * bins)
        time = self.embed_timestep(timestep.clamp(0, self.config.max_ep_len - 1))
        return dropout(self.embed_token(rows) + time, self.embed_dropout.p, self.training)

    def run_blocks(self, x: torch.Tensor, mask: torch.Tensor | None, stores=None, attends=None) -> torch.Tensor:
        """The GPT-2 stack on embeddings [B, N, H] under ``mask``; ``stores[layer](k, v)`` files keys and
        values in a cache, or ``attends[layer](q, k, v)`` does each layer's attention over one (see
        :func:`seqrl.models.gpt.block_forward`). Returns ``ln_f`` outputs [B, N, H]."""
        for layer, block in enumerate(self.blocks):
            x = block_forward(block, x, mask, self.config.n_head, None if stores is None else stores[layer],
                              attend=None if attends is None else attends[layer])
        return self.ln_f(x)

    def hidden_states(self, tokens: torch.Tensor, index: torch.Tensor, valid: torch.Tensor | None = None,
                      band: int | None = None) -> torch.Tensor:
        """Outputs [B, T, H] for tokens [B, T] at global indices [B, T], without a cache.

        ``valid`` [B, T] marks real tokens (padding is neither seen nor, for its own query, harmful: a padded
        query sees itself so that its softmax row is never empty). ``band`` defaults to the window.
        """
        if valid is None:
            valid = torch.ones_like(tokens, dtype=torch.bool)
        mask = attention_mask(index, index, valid, self.config.transition_dim, band or self.config.window)
        padded_self = torch.diag_embed(~valid)[:, None]  # [B, 1, T, T]
        return self.run_blocks(self.embed(tokens, index), mask | padded_self)

    # --- training ------------------------------------------------------------------------------
    def forward(self, tokens: torch.Tensor, timesteps: torch.Tensor, **kwargs) -> torch.Tensor:
        """Next-token logits [B, W * D - 1, N + 1] for windows of whole transitions.

        ``tokens`` [B, W * D] (the sampler's windows; the last token is only a target) and ``timesteps``
        [B, W], the episode timestep of each transition. Position ``i`` predicts token ``i + 1``.
        """
        batch, length = tokens.shape
        dims = self.config.transition_dim
        steps = length // dims
        index = (timesteps[:, :, None] * dims + torch.arange(dims, device=tokens.device)).reshape(batch, length)
        hidden = self.hidden_states(tokens[:, :-1], index[:, :-1], band=steps)  # [B, W*D - 1, H]
        hidden = F.pad(hidden, (0, 0, 0, 1)).view(batch, steps, dims, -1)  # whole transitions for the heads
        return self.head(hidden).reshape(batch, length, -1)[:, :-1]

    # --- acting: plan with beam search, execute the first action -------------------------------
    def _reset_state(self, batch_size: int, target_return=None) -> None:
        from seqrl.models.trajectory_transformer.planner import Planner

        self._planner = Planner(self, batch_size)

    def _act(self, observations, rewards, episode_starts) -> torch.Tensor:
        return self._planner.act(observations, rewards, episode_starts)
