"""Rotary position embeddings (dlbook.attention.rotary_embedding) against two references: the
complex-number formulation of Su et al. (2024) and the Llama implementation in ``transformers``
(which stores each pair as (x_i, x_{i + d/2}) instead of (x_2i, x_2i+1))."""

import pytest
import torch

from dlbook.attention import attention, rotary_embedding


def complex_rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """RoPE as the paper writes it: each pair is a complex number times exp(i m theta_j)."""
    d = x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    z = torch.view_as_complex(x.reshape(*x.shape[:-1], d // 2, 2).contiguous())
    turned = z * torch.polar(torch.ones_like(theta), positions.double()[:, None] * theta)
    return torch.view_as_real(turned).flatten(-2)


@pytest.mark.parametrize("d", [2, 8, 64])
@pytest.mark.parametrize("base", [10000.0, 500.0])
def test_equals_the_complex_formulation(d, base):
    gen = torch.Generator().manual_seed(d)
    x = torch.randn(2, 3, 11, d, dtype=torch.float64, generator=gen)  # (B, heads, T, d)
    positions = torch.randint(0, 1000, (11,), generator=gen)
    ours = rotary_embedding(x, positions, base)
    torch.testing.assert_close(ours, complex_rope(x, positions, base), atol=1e-12, rtol=0)


def test_scores_depend_only_on_the_relative_position():
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 1, 16, dtype=torch.float64, generator=gen)  # one query, one key
    def score(m, n):
        rq = rotary_embedding(q, torch.tensor([m]))
        rk = rotary_embedding(k, torch.tensor([n]))
        return (rq @ rk.T).item()
    for m, n in [(0, 0), (5, 2), (2, 5), (40, 37)]:
        for shift in (1, 13, 500):
            assert abs(score(m, n) - score(m + shift, n + shift)) < 1e-10
    assert abs(score(5, 2) - score(2, 5)) > 1e-3  # the sign of m - n matters


def test_norm_is_kept_and_position_zero_is_the_identity():
    x = torch.randn(4, 7, 32, dtype=torch.float64)
    out = rotary_embedding(x)
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1), atol=1e-12, rtol=0)
    torch.testing.assert_close(out[:, 0], x[:, 0], atol=0, rtol=0)
    assert out.dtype == x.dtype and rotary_embedding(x.float()).dtype == torch.float32


def test_default_positions_and_gradient_are_those_of_the_explicit_call():
    x = torch.randn(3, 9, 8, dtype=torch.float64, requires_grad=True)
    explicit = rotary_embedding(x, torch.arange(9))
    torch.testing.assert_close(rotary_embedding(x), explicit, atol=0, rtol=0)
    assert torch.autograd.gradcheck(lambda t: rotary_embedding(t, torch.arange(3, 12)), (x,))


def test_attention_with_rotated_queries_and_keys_is_shift_invariant():
    # the whole score table is unchanged when every position is shifted by the same amount
    gen = torch.Generator().manual_seed(1)
    q, k, v = torch.randn(3, 2, 4, 6, 16, dtype=torch.float64, generator=gen).unbind(0)
    def rope_attention(start):
        pos = torch.arange(start, start + 6)
        return attention(rotary_embedding(q, pos), rotary_embedding(k, pos), v)
    out0, w0 = rope_attention(0)
    out1, w1 = rope_attention(123)
    torch.testing.assert_close(w0, w1, atol=1e-10, rtol=0)
    torch.testing.assert_close(out0, out1, atol=1e-10, rtol=0)


def test_matches_transformers_llama_after_reordering_the_pairs():
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    from transformers import LlamaConfig

    d_head, n_heads, T = 16, 2, 10
    config = LlamaConfig(hidden_size=d_head * n_heads, num_attention_heads=n_heads,
                         rope_theta=10000.0)
    rope = llama.LlamaRotaryEmbedding(config)
    gen = torch.Generator().manual_seed(2)
    q, k = torch.randn(2, 1, n_heads, T, d_head, generator=gen).unbind(0)
    position_ids = torch.arange(5, 5 + T)[None]  # (1, T)
    cos, sin = rope(q, position_ids)  # each (1, T, d_head)
    hf_q, hf_k = llama.apply_rotary_pos_emb(q, k, cos, sin)
    # Llama pairs feature i with feature i + d/2; ours pairs 2i with 2i + 1.
    to_ours = torch.stack([torch.arange(d_head // 2), torch.arange(d_head // 2, d_head)], -1)
    to_ours = to_ours.flatten()  # [0, d/2, 1, d/2 + 1, ...]
    ours_q = rotary_embedding(q[..., to_ours], position_ids[0])
    ours_k = rotary_embedding(k[..., to_ours], position_ids[0])
    torch.testing.assert_close(ours_q, hf_q[..., to_ours], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours_k, hf_k[..., to_ours], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("bad", [dict(x=torch.zeros(3, 5)), dict(x=torch.zeros(5)),
                                 dict(x=torch.zeros(3, 4), positions=torch.arange(4)),
                                 dict(x=torch.zeros(3, 4), base=0.5)])
def test_bad_inputs_raise_value_errors(bad):
    with pytest.raises(ValueError):
        rotary_embedding(**bad)
