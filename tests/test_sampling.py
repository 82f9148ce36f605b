"""Tests for dlbook.sampling: greedy, temperature, top-k and top-p draws."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook.sampling import next_token_probs, sample_next


def _logits(b=3, v=7, seed=0):
    return torch.randn(b, v, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_greedy_is_argmax():
    logits = _logits()
    assert torch.equal(sample_next(logits, temperature=0), logits.argmax(-1))
    assert torch.equal(sample_next(logits, temperature=1.0, top_k=1), logits.argmax(-1))
    assert torch.equal(sample_next(logits, top_p=1e-6), logits.argmax(-1))


@settings(max_examples=25, deadline=None)
@given(b=st.integers(1, 4), v=st.integers(2, 12), t=st.floats(0.05, 5.0),
       seed=st.integers(0, 1000))
def test_probs_are_tempered_softmax(b, v, t, seed):
    logits = _logits(b, v, seed)
    probs = next_token_probs(logits, temperature=t)
    assert probs.shape == (b, v)
    torch.testing.assert_close(probs, torch.softmax(logits / t, dim=-1))


@settings(max_examples=25, deadline=None)
@given(v=st.integers(2, 12), k=st.integers(1, 12), seed=st.integers(0, 1000))
def test_top_k_keeps_k_largest_renormalized(v, k, seed):
    logits = _logits(2, v, seed)
    probs = next_token_probs(logits, top_k=k)
    kept = min(k, v)
    assert torch.equal((probs > 0).sum(-1), torch.full((2,), kept))
    top = torch.topk(logits, kept, dim=-1).indices
    expected = torch.zeros_like(probs).scatter_(-1, top, torch.softmax(logits.gather(-1, top), -1))
    torch.testing.assert_close(probs, expected)


@settings(max_examples=25, deadline=None)
@given(v=st.integers(2, 12), p=st.floats(0.01, 1.0), seed=st.integers(0, 1000))
def test_top_p_keeps_smallest_set_reaching_p(v, p, seed):
    logits = _logits(2, v, seed)
    full = torch.softmax(logits, -1)
    probs = next_token_probs(logits, top_p=p)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, dtype=torch.float64))
    for row in range(2):
        kept = probs[row] > 0
        # the kept tokens are the most likely ones, their mass reaches p, and without the
        # least likely kept token it would not
        if (~kept).any():
            assert full[row][kept].min() >= full[row][~kept].max()
        mass = full[row][kept].sum()
        assert mass >= p - 1e-12
        assert mass - full[row][kept].min() < p
        torch.testing.assert_close(probs[row][kept], full[row][kept] / mass)


def test_sample_frequencies_match_probs():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]]).repeat(20_000, 1)
    gen = torch.Generator().manual_seed(1)
    draws = sample_next(logits, temperature=0.7, generator=gen)
    freq = torch.bincount(draws, minlength=4).double() / len(draws)
    expected = torch.softmax(logits[0].double() / 0.7, -1)
    # binomial standard error is at most 0.0036 here; allow 4 of them
    assert (freq - expected).abs().max() < 0.015, (freq, expected)


def test_seeded_draws_repeat_and_low_temperature_is_nearly_greedy():
    logits = _logits(8, 20).float()
    a = sample_next(logits, generator=torch.Generator().manual_seed(5))
    b = sample_next(logits, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert a.dtype == torch.long and a.shape == (8,)
    cold = sample_next(logits * 100, temperature=0.01, generator=torch.Generator().manual_seed(0))
    assert torch.equal(cold, logits.argmax(-1))


def test_errors():
    logits = _logits()
    with pytest.raises(ValueError, match="logits must be a \\(B, V\\)"):
        sample_next(logits[0])
    with pytest.raises(TypeError, match="floating point"):
        sample_next(torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="temperature must be"):
        sample_next(logits, temperature=-1.0)
    with pytest.raises(ValueError, match="top_k must be"):
        sample_next(logits, top_k=0)
    with pytest.raises(ValueError, match="top_p must be"):
        sample_next(logits, top_p=1.5)
    with pytest.raises(ValueError, match="top_p must be"):
        next_token_probs(logits, top_p=0.0)
