"""Tests of dlbook.attention against PyTorch's attention functions and modules."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook.attention import (
    KVCache,
    LearnedPositions,
    MultiHeadAttention,
    SinusoidalPositions,
    attention,
    causal_mask,
    padding_mask,
    sinusoidal_positions,
)

F = torch.nn.functional


def _qkv(B, H, T_q, T_k, d, seed):
    gen = torch.Generator().manual_seed(seed)
    shapes = ((B, H, T_q, d), (B, H, T_k, d), (B, H, T_k, d + 1))
    return [torch.randn(*s, generator=gen, dtype=torch.float64, requires_grad=True)
            for s in shapes]


def _check_against_torch(q, k, v, mask):
    out, weights = attention(q, k, v, mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    grads = torch.autograd.grad(out.sum(), (q, k, v))
    ref_grads = torch.autograd.grad(ref.sum(), (q, k, v))
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(weights.sum(-1), torch.ones_like(weights.sum(-1)))
    return weights


shapes = dict(B=st.integers(1, 3), H=st.integers(1, 4), T_q=st.integers(1, 9),
              extra=st.integers(0, 5), d=st.integers(1, 8), seed=st.integers(0, 10_000))


@settings(max_examples=25, deadline=None)
@given(**shapes)
def test_attention_matches_torch_without_mask(B, H, T_q, extra, d, seed):
    _check_against_torch(*_qkv(B, H, T_q, T_q + extra, d, seed), mask=None)


@settings(max_examples=25, deadline=None)
@given(**shapes)
def test_attention_matches_torch_with_causal_mask(B, H, T_q, extra, d, seed):
    q, k, v = _qkv(B, H, T_q, T_q + extra, d, seed)
    weights = _check_against_torch(q, k, v, causal_mask(T_q, T_q + extra))
    # query i sits at position extra + i and gives no weight to any later key
    later = ~causal_mask(T_q, T_q + extra)
    assert bool((weights[..., later] == 0).all())


@settings(max_examples=25, deadline=None)
@given(**shapes)
def test_attention_matches_torch_with_padding_mask(B, H, T_q, extra, d, seed):
    T_k = T_q + extra
    q, k, v = _qkv(B, H, T_q, T_k, d, seed)
    lengths = torch.randint(1, T_k + 1, (B,), generator=torch.Generator().manual_seed(seed))
    mask = padding_mask(lengths, T_k)  # (B, 1, 1, T_k)
    weights = _check_against_torch(q, k, v, mask)
    for b, n in enumerate(lengths.tolist()):
        assert bool((weights[b, ..., n:] == 0).all())


def test_causal_mask_with_offset():
    mask = causal_mask(2, 4)
    assert mask.tolist() == [[True, True, True, False], [True, True, True, True]]
    assert torch.equal(causal_mask(3), torch.ones(3, 3, dtype=torch.bool).tril())


def test_mask_and_shape_errors():
    q = torch.randn(2, 3, 4)
    with pytest.raises(TypeError, match="bool"):
        attention(q, q, q, mask=torch.ones(3, 3))
    with pytest.raises(ValueError, match="need q"):
        attention(q, torch.randn(2, 3, 5), q)
    with pytest.raises(ValueError, match="t_q <= t_k"):
        causal_mask(5, 3)
    with pytest.raises(ValueError, match="lengths must be in"):
        padding_mask(torch.tensor([0, 2]), 4)
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)


def _torch_mha(d_model, n_heads, seed):
    torch.manual_seed(seed)
    mha = torch.nn.MultiheadAttention(d_model, n_heads, batch_first=True).double()
    with torch.no_grad():  # nonzero biases, so a mix-up of bias vectors would show
        mha.in_proj_bias.normal_()
        mha.out_proj.bias.normal_()
    return mha.eval()


@settings(max_examples=25, deadline=None)
@given(B=st.integers(1, 3), n_heads=st.sampled_from([1, 2, 4]), d_head=st.integers(1, 4),
       T_q=st.integers(1, 7), T_k=st.integers(1, 7), seed=st.integers(0, 10_000))
def test_multi_head_attention_matches_torch(B, n_heads, d_head, T_q, T_k, seed):
    d_model = n_heads * d_head
    mha = _torch_mha(d_model, n_heads, seed)
    ours = MultiHeadAttention.from_torch(mha).eval()
    gen = torch.Generator().manual_seed(seed)
    query = torch.randn(B, T_q, d_model, generator=gen, dtype=torch.float64)
    memory = torch.randn(B, T_k, d_model, generator=gen, dtype=torch.float64)
    lengths = torch.randint(1, T_k + 1, (B,), generator=gen)
    keep = padding_mask(lengths, T_k)  # (B, 1, 1, T_k), True = attend
    # PyTorch's module takes the opposite convention: True = ignore this key
    ref, ref_w = mha(query, memory, memory, key_padding_mask=~keep[:, 0, 0],
                     average_attn_weights=False)
    out, weights = ours(query, memory, memory, keep, need_weights=True)
    fast, none = ours(query, memory, memory, keep)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(weights, ref_w)
    torch.testing.assert_close(fast, ref)
    assert none is None


def test_multi_head_self_attention_causal_matches_torch():
    mha = _torch_mha(8, 2, seed=0)
    ours = MultiHeadAttention.from_torch(mha).eval()
    x = torch.randn(3, 6, 8, dtype=torch.float64, requires_grad=True)
    mask = causal_mask(6)
    ref, _ = mha(x, x, x, attn_mask=~mask)
    out, _ = ours(x, x, x, mask)
    torch.testing.assert_close(out, ref)
    g, g_ref = (torch.autograd.grad(y.square().sum(), x)[0] for y in (out, ref))
    torch.testing.assert_close(g, g_ref)


def test_kv_cache_gives_the_same_outputs_as_one_pass():
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2).double().eval()
    x = torch.randn(2, 7, 8, dtype=torch.float64)
    full, _ = mha(x, x, x, causal_mask(7))
    cache, pieces = KVCache(), []
    for start, stop in ((0, 3), (3, 4), (4, 7)):
        chunk = x[:, start:stop]
        pieces.append(mha(chunk, chunk, chunk, causal_mask(stop - start, stop), cache)[0])
        assert len(cache) == stop
    torch.testing.assert_close(torch.cat(pieces, dim=1), full)


def test_sinusoidal_positions():
    pe = sinusoidal_positions(50, 16)
    assert pe.shape == (50, 16) and pe.dtype == torch.float32
    assert torch.equal(pe[0, 0::2], torch.zeros(8)) and torch.equal(pe[0, 1::2], torch.ones(8))
    # each (sin, cos) pair lies on the unit circle, so every row has norm sqrt(d_model / 2)
    torch.testing.assert_close(pe.norm(dim=1), torch.full((50,), math.sqrt(8.0)))
    # shifting by k positions is the same rotation of every row: PE[p + k] = PE[p] R_k
    pe64 = sinusoidal_positions(50, 16).double()
    R = torch.linalg.lstsq(pe64[:40], pe64[5:45]).solution
    torch.testing.assert_close(pe64[10:40] @ R, pe64[15:45], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="even d_model"):
        sinusoidal_positions(10, 7)


@pytest.mark.parametrize("cls", [SinusoidalPositions, LearnedPositions])
def test_position_modules_offset(cls):
    torch.manual_seed(0)
    layer = cls(12, 6)
    x = torch.randn(2, 5, 6)
    full = layer(torch.cat([x, x], dim=1))
    torch.testing.assert_close(layer(x, start=5), full[:, 5:])
    with pytest.raises(ValueError, match="max_len is 12"):
        layer(x, start=10)


@pytest.mark.parametrize("need_weights", [False, True])
def test_is_causal_equals_the_causal_mask(need_weights):
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2).double().eval()
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    masked, w_masked = mha(x, x, x, causal_mask(6), need_weights=need_weights)
    causal, w_causal = mha(x, x, x, is_causal=True, need_weights=need_weights)
    torch.testing.assert_close(causal, masked, rtol=1e-12, atol=1e-12)
    if need_weights:
        torch.testing.assert_close(w_causal, w_masked)
    # after cached keys the queries are the last positions: is_causal must follow the cache
    cache, pieces = KVCache(), []
    for start, stop in ((0, 2), (2, 3), (3, 6)):
        chunk = x[:, start:stop]
        pieces.append(mha(chunk, chunk, chunk, cache=cache, is_causal=True)[0])
    torch.testing.assert_close(torch.cat(pieces, dim=1), masked, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("max_len", [None, 9])
def test_kv_cache_preallocates_and_grows(max_len):
    gen = torch.Generator().manual_seed(0)
    cache, ks = KVCache(max_len), []
    for t_new in (3, 1, 1, 4):
        k = torch.randn(2, 2, t_new, 4, generator=gen)
        ks.append(k)
        k_all, v_all = cache.append(k, -k)
        assert torch.equal(k_all, torch.cat(ks, dim=2)) and torch.equal(v_all, -k_all)
    assert len(cache) == 9 and cache.k.shape == (2, 2, 9, 4)
    if max_len is not None:  # one buffer of max_len positions, allocated at the first append
        assert cache._k.shape[2] == max_len
        with pytest.raises(ValueError, match="max_len=9"):
            cache.append(k[:, :, :1], k[:, :, :1])
