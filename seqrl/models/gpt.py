"""GPT-2 blocks from transformers, run with functional ops on their own parameters.

The sequence models (Decision Transformer, Trajectory Transformer) build their stacks from
``transformers``' ``GPT2Block`` modules (weights, init, saving) and run them through
:func:`block_forward`, which adds what the stock forward lacks for acting and planning: a key/value
cache that the caller owns (a ring, reordered with beams), and outputs computed only at chosen queries.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.gpt2.modeling_gpt2 import GPT2Block
from transformers.pytorch_utils import Conv1D


def init_gpt2_module(module: nn.Module, std: float, n_layer: int) -> bool:
    """GPT-2's init for one module: N(0, std) weights and zero biases; residual projections (modules
    marked ``residual_projection``) get std / sqrt(2 * n_layer) so the residual stream does not grow with
    depth; layer norms start at the identity. Returns whether ``module`` was one of those kinds."""
    if isinstance(module, (nn.Linear, nn.Embedding, Conv1D)):
        scale = getattr(module, "residual_projection", False)
        module.weight.normal_(0.0, std / math.sqrt(2 * n_layer) if scale else std)
        if getattr(module, "bias", None) is not None:
            module.bias.zero_()
    elif isinstance(module, nn.LayerNorm):
        module.weight.fill_(1.0)
        module.bias.zero_()
    else:
        return False
    return True


def conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """GPT-2's ``Conv1D`` (``x @ weight + bias``, weight [in, out]) on a slice of its columns."""
    return torch.addmm(bias, x.reshape(-1, x.shape[-1]), weight).view(*x.shape[:-1], weight.shape[-1])


def block_forward(block: GPT2Block, x: torch.Tensor, mask: torch.Tensor | None, n_head: int, store=None,
                  queries: slice | None = None, attend=None) -> torch.Tensor:
    """One pre-LN GPT-2 block on tokens ``x`` [B, N, H] under the boolean ``mask`` [B, 1, Nq, L].

    Every token gives a key and a value; only the tokens in ``queries`` (all by default) are queries,
    and only their outputs [B, Nq, H] are computed. The last block uses this: the loss and the action
    read only state tokens, so there the other tokens need only their keys and values, which saves
    about 10/12 of that block's matmuls for 2 of every 3 tokens.

    Without ``store`` the tokens attend to each other (L = N). With it, ``store(k, v)`` files the new
    tokens' keys and values [B, nh, N, hd] in the key/value cache and returns the whole cache
    [B, nh, L, hd] to attend over. With ``attend``, ``attend(q, k, v)`` files the keys and values and does
    the attention itself over a cache the caller lays out, returning [B, nh, Nq, hd] (``mask`` is unused).
    """
    # Written with functional ops on the block's own parameters: acting calls this on 3 tokens per
    # step, where module-call overhead would cost more than the arithmetic.
    attn, mlp, hidden, training = block.attn, block.mlp, x.shape[-1], block.training
    h = F.layer_norm(x, (hidden,), block.ln_1.weight, block.ln_1.bias, block.ln_1.eps)
    weight, bias = attn.c_attn.weight, attn.c_attn.bias  # [H, 3H], [3H]: columns q | k | v
    if queries is None:
        q, k, v = conv1d(h, weight, bias).split(hidden, dim=-1)
    else:
        k, v = conv1d(h, weight[:, hidden:], bias[hidden:]).split(hidden, dim=-1)
        x = x[:, queries]
        q = conv1d(h[:, queries], weight[:, :hidden], bias[:hidden])
    q, k, v = (t.unflatten(-1, (n_head, -1)).transpose(1, 2) for t in (q, k, v))  # [B, nh, N, hd]
    if store is not None:
        k, v = store(k, v)
    if attend is not None:
        out = attend(q, k, v)
    elif (store is not None and q.shape[-2] <= 4) or (q.device.type == "cpu" and q.dtype != torch.float32):
        out = matmul_attention(q, k, v, mask, attn.attn_dropout.p if training else 0.0)
    else:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             dropout_p=attn.attn_dropout.p if training else 0.0)  # [B, nh, Nq, hd]
    out = conv1d(out.transpose(1, 2).flatten(2), attn.c_proj.weight, attn.c_proj.bias)
    x = x + dropout(out, attn.resid_dropout.p, training)
    h = F.layer_norm(x, (hidden,), block.ln_2.weight, block.ln_2.bias, block.ln_2.eps)
    h = conv1d(mlp.act(conv1d(h, mlp.c_fc.weight, mlp.c_fc.bias)), mlp.c_proj.weight, mlp.c_proj.bias)
    return x + dropout(h, mlp.dropout.p, training)


def matmul_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, dropout_p: float = 0.0
                     ) -> torch.Tensor:
    """Softmax attention of queries [B, nh, Nq, hd] over keys/values [B, nh, L, hd] under the boolean
    ``mask`` [B, 1, Nq, L] (None: all visible; no row fully masked), as two batched matmuls, with dropout ``dropout_p`` on the weights.

    Two places where this beats SDPA on CPU (one thread, measured):
    - cached decoding with a few queries per row: SDPA's flash kernel took 4.8 ms against 1.5 ms for
      these matmuls on a Trajectory Transformer beam step (256 rows, 4 heads, 80 keys of 32);
    - training under bf16 autocast: the flash kernel's backward in bf16 took 233 ms against 84 ms here
      for a Trajectory Transformer batch (64 rows, 4 heads, 159 tokens of 32), 21 ms against 8 ms for a
      Decision Transformer one (64 rows, 1 head, 60 tokens of 128); in float32 the flash kernel is as fast
      or faster, so float32 keeps it.
    Results agree with SDPA to float rounding (8e-7 in float32; PyTorch's CPU softmax accumulates a bf16
    row in float32).
    """
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)  # [B, nh, Nq, L]
    if mask is not None:
        # The mask as an additive bias over [B, 1, Nq, L], added in place: the scale goes on the queries (L / hd
        # times fewer elements), and neither needs a pass over the scores' gradient backward, where scaling and
        # masked_fill each took one (a Trajectory Transformer batch: 26M scores a layer; 370-420 against
        # 500-540 ms a layer forward and backward under bf16 autocast).
        scores.add_(scores.new_zeros(mask.shape).masked_fill_(~mask, float("-inf")))
    weights = scores.softmax(-1)
    # Under autocast the softmax is float32: dropout after the cast to v's dtype touches half the bytes
    # (a Trajectory Transformer batch's weights are 26M elements per layer).
    return dropout(weights.to(v.dtype), dropout_p, dropout_p > 0) @ v


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout(x, p, training)``, faster on CPU, where PyTorch draws one Bernoulli sample per element.

    On CPU the keep mask comes from 16-bit lanes of 64-bit random integers (four elements per draw of the
    seeded default generator): an element is dropped with probability ``q = round(p * 2^16) / 2^16``
    (within 8e-6 of ``p``) and the kept ones are scaled by ``1 / (1 - q)``, so the expectation is ``x``.
    For a Decision Transformer activation (3,840 x 128, bf16) this took 3.8 ms against 15 ms for
    ``F.dropout``, whose ten calls per step were a fifth of the model's bf16 training step. Other devices
    use ``F.dropout``.

    The mask is made with arithmetic, not a comparison: on CPU a comparison into a bool tensor, and a
    bool tensor in a product (cast to the other operand's dtype first, forward and backward), each cost
    about as much as drawing the random bits (a 64 x 60 x 128 activation, one thread: 230 and 340 us,
    against 30 to 60 us for each arithmetic op); the arithmetic stays in the lanes' 16 bits (a Trajectory
    Transformer's attention weights, 256 x 4 x 159 x 159 in bf16: 107 ms against 205 with a float32 mask).
    Same bits, same mask, same result as the comparison.
    """
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training)
    threshold = round(p * 65536)  # drop where a uniform 16-bit lane is below it
    if threshold == 0:  # p < 2^-17: no lane is below it, nothing is dropped
        return x
    bits = torch.empty((x.numel() + 3) // 4, dtype=torch.int64).random_(-2**63, None)  # every bit random
    lanes = bits.view(torch.int16)[:x.numel()].view(x.shape)  # uniform integers in [-32768, 32767]
    # 1 where lane >= threshold - 32768 (kept), 0 below: clamped to [last_dropped, last_dropped + 1]
    # and shifted, in 16 bits
    last_dropped = threshold - 32768 - 1
    keep = lanes.clamp_(last_dropped, last_dropped + 1).sub_(last_dropped).to(x.dtype)
    return (x * keep).mul_(65536 / (65536 - threshold))  # the scale as a float scalar: no bf16 rounding of it
