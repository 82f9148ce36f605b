"""Attention, its masks and the sinusoidal positions against formulas written out by hand.

``tests/test_attention.py`` compares with PyTorch's functions; these tests compare with the
equations themselves, entry by entry, so that the mutations of ``tools/mutate.py`` fail.
"""

import math

import pytest
import torch

from dlbook.attention import (
    MultiHeadAttention,
    attention,
    causal_mask,
    padding_mask,
    sinusoidal_positions,
)


def test_attention_is_softmax_of_scaled_scores_times_values():
    """``softmax(Q K^T / sqrt(d)) V`` row by row, with the softmax written as exp / sum."""
    gen = torch.Generator().manual_seed(0)
    B, T_q, T_k, d, d_v = 2, 3, 5, 4, 3
    q, k = (torch.randn(B, n, d, generator=gen, dtype=torch.float64) for n in (T_q, T_k))
    v = torch.randn(B, T_k, d_v, generator=gen, dtype=torch.float64)
    lengths = [5, 3]
    mask = causal_mask(T_q, T_k) & padding_mask(torch.tensor(lengths), T_k)[:, 0]  # (B, T_q, T_k)
    out, weights = attention(q, k, v, mask)
    for b in range(B):
        for i in range(T_q):
            allowed = [j for j in range(T_k) if j <= T_k - T_q + i and j < lengths[b]]
            scores = {j: float(q[b, i] @ k[b, j]) / math.sqrt(d) for j in allowed}
            top = max(scores.values())
            total = sum(math.exp(s - top) for s in scores.values())
            w = [math.exp(scores[j] - top) / total if j in scores else 0.0 for j in range(T_k)]
            expected = torch.tensor(w, dtype=torch.float64)
            torch.testing.assert_close(weights[b, i], expected, rtol=1e-12, atol=1e-14)
            torch.testing.assert_close(out[b, i], expected @ v[b], rtol=1e-12, atol=1e-14)


def test_masks_entry_by_entry():
    for t_q, t_k in ((1, 1), (3, 3), (2, 6), (1, 4)):
        mask = causal_mask(t_q, t_k)
        assert mask.shape == (t_q, t_k)
        # query i sits at position t_k - t_q + i and sees the keys up to it
        assert mask.tolist() == [[j <= t_k - t_q + i for j in range(t_k)] for i in range(t_q)]
    keep = padding_mask(torch.tensor([1, 4, 2]), 4)
    assert keep.shape == (3, 1, 1, 4)
    assert keep[:, 0, 0].tolist() == [[j < n for j in range(4)] for n in (1, 4, 2)]


def test_sinusoidal_positions_follow_vaswani_et_al():
    d = 10
    pe = sinusoidal_positions(30, d)
    for p in (0, 1, 7, 29):
        for i in range(d // 2):
            angle = p / 10000 ** (2 * i / d)
            assert pe[p, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert pe[p, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_multi_head_attention_is_heads_of_attention_concatenated():
    """Each head attends in its own slice of the projections; the heads are concatenated in
    order and projected: MultiHead = Concat(head_1, ..., head_h) W_O."""
    torch.manual_seed(0)
    d_model, n_heads, B, T = 6, 3, 2, 4
    mha = MultiHeadAttention(d_model, n_heads).double().eval()
    x = torch.randn(B, T, d_model, dtype=torch.float64)
    mask = causal_mask(T)
    q, k, v = mha.q_proj(x), mha.k_proj(x), mha.v_proj(x)
    hs = d_model // n_heads
    heads = [attention(q[..., h * hs:(h + 1) * hs], k[..., h * hs:(h + 1) * hs],
                       v[..., h * hs:(h + 1) * hs], mask)[0] for h in range(n_heads)]
    expected = mha.out_proj(torch.cat(heads, dim=-1))
    for need_weights in (True, False):
        out, _ = mha(x, x, x, mask, need_weights=need_weights)
        torch.testing.assert_close(out, expected)
