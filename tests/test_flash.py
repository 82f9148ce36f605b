"""Tiled attention with the online softmax (dlbook.flash) against PyTorch's
scaled_dot_product_attention, and the memory it allocates against chapter 6's
attention."""

import math

import pytest
import torch
import torch.nn.functional as F

from dlbook.attention import attention
from dlbook.flash import online_softmax_update, peak_allocated_bytes, tiled_attention


def qkv(shape_q, T_k, d_v, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(*shape_q, dtype=dtype, generator=gen)
    k = torch.randn(*shape_q[:-2], T_k, shape_q[-1], dtype=dtype, generator=gen)
    v = torch.randn(*shape_q[:-2], T_k, d_v, dtype=dtype, generator=gen)
    return q, k, v


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("blocks", [(1, 1), (4, 4), (5, 16), (64, 7), (37, 37), (100, 100)])
def test_equals_sdpa_in_float64(causal, blocks):
    q, k, v = qkv((2, 3, 37, 16), 37, 8, torch.float64)
    ours = tiled_attention(q, k, v, causal, *blocks)
    reference = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    torch.testing.assert_close(ours, reference, atol=1e-12, rtol=0)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("blocks", [(16, 16), (32, 8), (7, 64)])
def test_equals_sdpa_in_float32(causal, blocks):
    q, k, v = qkv((2, 4, 130, 32), 130, 32, torch.float32, seed=1)
    ours = tiled_attention(q, k, v, causal, *blocks)
    reference = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


def test_more_keys_than_queries_and_large_scores():
    q, k, v = qkv((1, 2, 9, 8), 50, 5, torch.float64, seed=2)
    q = 30 * q  # scores of several hundred: a softmax without the max would overflow
    ours = tiled_attention(q, k, v, block_q=4, block_k=6)
    torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k, v), atol=1e-12, rtol=0)


def test_gradients_equal_sdpa():
    q, k, v = (t.requires_grad_() for t in qkv((1, 2, 21, 8), 21, 8, torch.float64, 3))
    w = torch.randn(1, 2, 21, 8, dtype=torch.float64)
    ours = torch.autograd.grad((tiled_attention(q, k, v, True, 8, 5) * w).sum(), (q, k, v))
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    theirs = torch.autograd.grad((ref * w).sum(), (q, k, v))
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_online_update_of_two_blocks_equals_one_softmax():
    gen = torch.Generator().manual_seed(4)
    scores = 10 * torch.randn(3, 12, dtype=torch.float64, generator=gen)
    v = torch.randn(12, 4, dtype=torch.float64, generator=gen)
    state = (
        torch.full((3,), -math.inf, dtype=torch.float64),
        torch.zeros(3, dtype=torch.float64),
        torch.zeros(3, 4, dtype=torch.float64),
    )
    for cols in (slice(0, 5), slice(5, 12)):
        state = online_softmax_update(state, scores[:, cols], v[cols])
    row_max, row_sum, acc = state
    torch.testing.assert_close(row_max, scores.amax(dim=-1))
    torch.testing.assert_close(row_sum, torch.exp(scores - row_max[:, None]).sum(-1))
    torch.testing.assert_close(acc / row_sum[:, None], torch.softmax(scores, -1) @ v)


def test_bad_arguments():
    q, k, v = qkv((1, 1, 4, 8), 6, 8, torch.float32)
    with pytest.raises(ValueError, match="T_q == T_k"):
        tiled_attention(q, k, v, causal=True)
    with pytest.raises(ValueError, match="block_q"):
        tiled_attention(q, k, v, block_q=0)
    with pytest.raises(ValueError, match="need q"):
        tiled_attention(q, k[..., :4], v)


def test_peak_counts_what_is_held_at_once():
    assert peak_allocated_bytes(lambda: torch.empty(1000)) == 4000

    def two_then_one():
        a = torch.empty(1000)
        b = torch.empty(500)
        del a
        return b, torch.empty(100)

    assert peak_allocated_bytes(two_then_one) == 6000  # a and b, then b and c


def test_memory_grows_as_t_squared_then_as_t():
    peaks = {}
    for T in (512, 1024):
        q, k, v = qkv((1, 1, T, 32), T, 32, torch.float32)
        with torch.no_grad():
            peaks["naive", T] = peak_allocated_bytes(lambda q=q, k=k, v=v: attention(q, k, v)[0])
            peaks["tiled", T] = peak_allocated_bytes(
                lambda q=q, k=k, v=v: tiled_attention(q, k, v, block_q=64, block_k=64)
            )
    # scores and softmax weights: two (T, T) float32 matrices, and the output
    assert peaks["naive", 1024] >= 2 * 1024**2 * 4
    assert 3.7 < peaks["naive", 1024] / peaks["naive", 512] < 4.1, peaks
    assert 1.2 < peaks["tiled", 1024] / peaks["tiled", 512] < 2.1, peaks
    assert peaks["tiled", 1024] < peaks["naive", 1024] / 10, peaks
