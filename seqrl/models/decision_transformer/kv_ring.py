"""The Decision Transformer's cached acting: a key/value ring of the last K + 1 timesteps per env.

Each step appends one group of three tokens ``[a_{t-1}, R_t, s_t]`` per env and computes only those
three tokens through the stack, over the keys and values already in the ring. What a new token may see
is the banded causal mask of :func:`band_mask` (the forward pass over the whole episode, each token
seeing the last K timesteps) intersected with the episode: keys from before the env's episode start are
hidden. Both depend only on

- the ring position ``r`` (where the new group is written; every env steps together, so it is shared),
- how far into its episode the env is, ``min(t, K + 1)`` (older keys are either from this episode or not),

so every mask the ring can need is precomputed once as an additive bias table
``[K + 1, K + 2, 3, 3 (K + 1)]`` (0 = visible, -inf = hidden) and one step reads its ``[B, 3, 3 (K + 1)]``
slice with one index. The ring is never shifted: attention does not depend on slot order.

Acting for a vector of envs is many tiny ops (3 tokens of width 128 per env, one step at a time), so a
step runs :func:`seqrl.models.gpt.block_forward` with an attention of its own: the scaled scores and the
mask in one ``baddbmm`` over the ring, the last block computes its output at the state token only, and no
mask or index is rebuilt per step.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from seqrl.models.gpt import block_forward

TOKENS_PER_STEP = 3  # (a_{t-1}, R_t, s_t) in the ring; (R_t, s_t, a_t) in training sequences


def ring_bias_table(context_len: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """Additive attention biases [G, K + 2, 3, 3G] (G = K + 1 groups, K = ``context_len``), indexed by the ring
    position of the new group, the env's timestep clamped to K + 1, the new token (a_{t-1}, R_t, s_t) and the
    ring slot of the key.

    A key of age ``j`` groups (the group written at step ``t - j``), slot ``s`` (0: a_{t-j-1}, 1: R_{t-j},
    2: s_{t-j}) has token index ``3 (t - j) + s - 1`` relative to a query at ``3 t + q - 1``. It is visible
    when the band allows it (not after the query; within the query's last K timesteps, as
    :func:`seqrl.models.decision_transformer.modeling_decision_transformer.band_mask`), and it lies in the
    env's episode (``t - j >= 0``, and ``t - j - 1 >= 0`` for the action). A new token always sees itself,
    so no row is empty (a_{-1} at an episode's start is a placeholder nothing else sees).
    """
    k, groups = context_len, context_len + 1
    age = torch.arange(groups, device=device)[None, :, None]  # [1, G, 1]: j
    slot = torch.arange(TOKENS_PER_STEP, device=device)[None, None, :]  # [1, 1, 3]: s
    query = torch.arange(TOKENS_PER_STEP, device=device)[:, None, None]  # [3, 1, 1]: q
    key_rel, query_rel = -TOKENS_PER_STEP * age + slot - 1, query - 1  # indices relative to 3t
    first_visible = (torch.div(query_rel, TOKENS_PER_STEP, rounding_mode="floor") - k + 1) * TOKENS_PER_STEP
    in_band = (key_rel <= query_rel) & (key_rel >= first_visible)  # [3, G, 3]
    own = (age == 0) & (slot == query)
    step = torch.arange(k + 2, device=device)[:, None, None, None]  # [K+2, 1, 1, 1]: min(t, K + 1)
    in_episode = age + (slot == 0).long() <= step  # [K+2, 1, G, 3]
    visible = (in_band & in_episode) | own  # [K+2, 3, G, 3] (age order)
    # Ring position r holds age j in group (r - j) mod G, i.e. group g holds age (r - g) mod G.
    position = torch.arange(groups, device=device)
    ages = (position[:, None] - position[None, :]) % groups  # [r, g] -> j
    by_slot = visible[:, :, ages]  # [K+2, 3, r, g, 3]
    bias = torch.zeros(by_slot.shape, dtype=dtype, device=device).masked_fill_(~by_slot, float("-inf"))
    return bias.permute(2, 0, 1, 3, 4).reshape(groups, k + 2, TOKENS_PER_STEP, TOKENS_PER_STEP * groups)


class KeyValueRing:
    """Keys and values of the last K + 1 timesteps of ``batch_size`` envs for a stack of GPT-2 blocks,
    and the step that runs three new tokens per env through the stack over them.

    ``keys_values`` is [n_layer, 2, B, n_head, 3 (K + 1), head_dim]; nothing in it is read before it is
    written, because the bias table hides every slot an env has not filled in its episode.
    """

    def __init__(self, blocks: nn.ModuleList, n_head: int, batch_size: int, context_len: int, hidden: int,
                 dtype: torch.dtype, device) -> None:
        self.blocks, self.n_head = blocks, n_head
        self.groups = context_len + 1
        self.keys_values = torch.zeros(len(blocks), 2, batch_size, n_head, TOKENS_PER_STEP * self.groups,
                                       hidden // n_head, dtype=dtype, device=device)
        self.bias_table = ring_bias_table(context_len, dtype, device)
        self.position = 0  # ring group of the next step's tokens

    def step(self, tokens: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """Run the new tokens [B, 3, H] (embedded, before the first block) of envs at episode timesteps
        ``timestep`` [B] through the blocks; returns the last block's output at the state token [B, H]."""
        heads = self.n_head
        new = slice(TOKENS_PER_STEP * self.position, TOKENS_PER_STEP * (self.position + 1))
        # [B, 3, 3G] -> one row per (env, head), as baddbmm takes it
        bias = self.bias_table[self.position][timestep.clamp(max=self.groups)]
        bias = bias.repeat_interleave(heads, dim=0) if heads > 1 else bias
        x, last = tokens, len(self.blocks) - 1
        for layer, block in enumerate(self.blocks):
            queries = slice(2, 3) if layer == last else None  # the last block: only the state token is read
            x = block_forward(block, x, None, heads, queries=queries, attend=partial(
                self._attend, self.keys_values[layer], new, bias[:, 2:] if layer == last else bias))
        self.position = (self.position + 1) % self.groups
        return x[:, 0]

    @staticmethod
    def _attend(cache: torch.Tensor, new: slice, bias: torch.Tensor, q: torch.Tensor, k: torch.Tensor,
                v: torch.Tensor) -> torch.Tensor:
        """File the new keys and values [B, nh, 3, hd] in the layer's ``cache`` [2, B, nh, slots, hd] at ``new``,
        then attend with queries [B, nh, Nq, hd] over the whole ring under ``bias`` [B nh, Nq, slots]: the
        scaled scores and the mask in one ``baddbmm``. Returns [B, nh, Nq, hd]."""
        cache[0, :, :, new] = k
        cache[1, :, :, new] = v
        batch, heads, queries, head_dim = q.shape
        keys, values = (cache[i].reshape(batch * heads, -1, head_dim) for i in (0, 1))  # [B nh, slots, hd]
        weights = torch.baddbmm(bias, q.reshape(batch * heads, queries, head_dim), keys.transpose(1, 2),
                                alpha=head_dim ** -0.5).softmax(-1)
        return (weights @ values).view(batch, heads, queries, head_dim)
