"""The GPT blocks' matmul attention (used for cached decoding and for bf16 training on CPU) computes what
PyTorch's SDPA computes, outputs and gradients alike; the blocks' dropout drops at its rate, keeps the mean and
follows the seed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import GPT2Config
from transformers.models.gpt2.modeling_gpt2 import GPT2Block

from seqrl.models import gpt
from seqrl.models.gpt import block_forward, matmul_attention


def banded_mask(batch: int, length: int, band: int) -> torch.Tensor:
    """[B, 1, L, L]: causal, at most ``band`` keys back, the diagonal always visible; one row padded out."""
    i = torch.arange(length)
    mask = (i[None, :] <= i[:, None]) & (i[None, :] > i[:, None] - band)
    mask = mask.expand(batch, 1, length, length).clone()
    mask[0, 0, :, 0] = False  # a padded first key in the first row
    return mask | torch.eye(length, dtype=torch.bool)


@pytest.mark.parametrize("queries", [7, 2])
def test_matmul_attention_matches_sdpa_with_gradients(queries):
    torch.manual_seed(0)
    q = torch.randn(3, 2, queries, 8, dtype=torch.float64, requires_grad=True)
    k, v = (torch.randn(3, 2, 7, 8, dtype=torch.float64, requires_grad=True) for _ in range(2))
    mask = banded_mask(3, 7, band=4)[:, :, -queries:]
    ours = matmul_attention(q, k, v, mask)
    grads = torch.autograd.grad(ours.square().sum(), (q, k, v))
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    expected = torch.autograd.grad(theirs.square().sum(), (q, k, v))
    torch.testing.assert_close(ours, theirs)
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want)


def test_matmul_attention_dropout_zeroes_weights_and_rescales_the_rest():
    torch.manual_seed(0)
    q = torch.zeros(1, 1, 1, 4)  # equal scores: each of the 100 keys has weight 1/100
    k, v = torch.randn(1, 1, 100, 4), torch.eye(100)[None, None]  # value j is the one-hot j: out = weights
    weights = matmul_attention(q, k, v, torch.ones(1, 1, 1, 100, dtype=torch.bool), dropout_p=0.5)[0, 0, 0]
    dropped = weights == 0
    assert 20 < int(dropped.sum()) < 80
    torch.testing.assert_close(weights[~dropped], torch.full_like(weights[~dropped], 0.02))


def test_block_under_bf16_autocast_stays_close_to_float32(monkeypatch):
    """On CPU, a block under bf16 autocast attends through the matmuls; the float32 block through SDPA."""
    calls = []
    monkeypatch.setattr(gpt, "matmul_attention", lambda q, *rest: calls.append(q.dtype) or matmul_attention(q, *rest))
    torch.manual_seed(0)
    block = GPT2Block(GPT2Config(n_embd=32, n_head=4, resid_pdrop=0.0, attn_pdrop=0.0)).eval()
    x = torch.randn(4, 12, 32, requires_grad=True)
    mask = banded_mask(4, 12, band=6)
    reference = block_forward(block, x, mask, n_head=4)
    (grad_reference,) = torch.autograd.grad(reference.sum(), x)
    with torch.autocast("cpu", torch.bfloat16):
        low = block_forward(block, x, mask, n_head=4)
    (grad_low,) = torch.autograd.grad(low.float().sum(), x)
    assert calls == [torch.bfloat16]
    torch.testing.assert_close(low.float(), reference, atol=0.05, rtol=0.05)
    torch.testing.assert_close(grad_low, grad_reference, atol=0.05, rtol=0.05)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_drops_at_rate_p_keeps_the_mean_and_passes_the_mask_to_the_gradient(p, dtype):
    x = torch.full((1000, 101), 2.0, dtype=dtype, requires_grad=True)  # an odd size: lanes do not divide it
    out = gpt.dropout(x, p, training=True)
    dropped = out == 0
    assert out.dtype == dtype and out.shape == x.shape
    assert abs(dropped.float().mean().item() - p) < 0.005  # 101,000 draws: 5 standard deviations at p = 0.5
    torch.testing.assert_close(out[~dropped].float(), torch.full_like(out[~dropped].float(), 2.0 / (1 - p)),
                               rtol=1e-2 if dtype == torch.bfloat16 else 1e-4, atol=0)
    assert abs(out.float().mean().item() - 2.0) < 0.05
    # the kept values carry the exact scale, rounded once: bf16(2 / (1 - q)) with q = round(p * 2^16) / 2^16
    scale = 65536 / (65536 - round(p * 65536))
    assert torch.equal(out[~dropped], torch.tensor(2.0 * scale, dtype=dtype).expand(out[~dropped].shape))
    (grad,) = torch.autograd.grad(out.float().sum(), x)
    assert torch.equal(grad == 0, dropped)


def test_dropout_follows_the_seed_and_is_the_identity_in_eval():
    x = torch.randn(64, 60, 128)
    torch.manual_seed(3)
    first = gpt.dropout(x, 0.1, training=True)
    torch.manual_seed(3)
    assert torch.equal(first, gpt.dropout(x, 0.1, training=True))
    assert not torch.equal(first, gpt.dropout(x, 0.1, training=True))
    assert gpt.dropout(x, 0.1, training=False) is x
    assert gpt.dropout(x, 0.0, training=True) is x


@pytest.mark.parametrize("p", [1e-6, 1 / 65536, 0.1, 0.5, 0.99999])
def test_dropout_drops_exactly_the_lanes_below_the_threshold(p):
    """The arithmetic mask is the documented rule: an element is dropped where its 16-bit lane of the
    seeded random bits is below round(p * 2^16) - 2^15 (lanes at the threshold itself are kept)."""
    x = torch.ones(1000, 2000)  # each 16-bit lane value about 30 times: an off-by-one at the threshold shows
    torch.manual_seed(5)
    out = gpt.dropout(x, p, training=True)
    assert torch.equal(out[out != 0], torch.full_like(out[out != 0], 65536 / (65536 - round(p * 65536))))
    torch.manual_seed(5)
    bits = torch.empty((x.numel() + 3) // 4, dtype=torch.int64).random_(-2**63, None)
    lanes = bits.view(torch.int16)[:x.numel()].view(x.shape)
    assert torch.equal(out == 0, lanes < round(p * 65536) - 32768)
