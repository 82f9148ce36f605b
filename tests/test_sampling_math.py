"""The sampling distributions against a brute-force computation from their definitions.

Written so that the one-line mutations of ``tools/mutate.py`` fail: a temperature applied
twice, a top-k threshold off by one, a top-p boundary taken the wrong way, a filter ignored.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook.sampling import next_token_probs, sample_next


def brute_force_probs(logits: list[float], temperature: float, top_k: int | None,
                      top_p: float | None) -> list[float]:
    """The definition, one token at a time in plain Python: temper, keep the k largest, then
    walk the survivors from the most likely down and keep each token while the mass of the
    tokens kept before it is below p; renormalize what is kept."""
    z = [x / temperature for x in logits]
    ranked = sorted(range(len(z)), key=lambda i: -z[i])
    kept = set(ranked[:top_k] if top_k is not None else ranked)
    if top_p is not None:
        m = max(z[i] for i in kept)
        weights = {i: math.exp(z[i] - m) for i in kept}
        total = sum(weights.values())
        mass, nucleus = 0.0, set()
        for i in (i for i in ranked if i in kept):
            if mass >= top_p:
                break
            nucleus.add(i)
            mass += weights[i] / total
        kept = nucleus
    m = max(z[i] for i in kept)
    weights = [math.exp(z[i] - m) if i in kept else 0.0 for i in range(len(z))]
    total = sum(weights)
    return [w / total for w in weights]


@settings(max_examples=60, deadline=None)
@given(v=st.integers(2, 10), temperature=st.sampled_from([0.3, 0.7, 1.0, 2.5]),
       top_k=st.one_of(st.none(), st.integers(1, 10)),
       top_p=st.one_of(st.none(), st.floats(0.05, 0.95)), seed=st.integers(0, 10_000))
def test_next_token_probs_match_the_definition(v, temperature, top_k, top_p, seed):
    logits = 2 * torch.randn(3, v, generator=torch.Generator().manual_seed(seed),
                             dtype=torch.float64)
    probs = next_token_probs(logits, temperature, top_k, top_p)
    expected = torch.tensor([brute_force_probs(row, temperature, top_k, top_p)
                             for row in logits.tolist()], dtype=torch.float64)
    # a token whose preceding mass is within rounding of p may fall either way
    torch.testing.assert_close(probs, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("top_k", [None, 1, 3])
@pytest.mark.parametrize("top_p", [None, 0.3, 0.6, 0.9])
def test_a_fixed_grid_of_options_matches_the_definition(temperature, top_k, top_p):
    """The same check on fixed logits, so that it fails on every run, not only on most."""
    logits = torch.tensor([[1.0, -0.5, 2.2, 0.3, 1.7, -2.0],
                           [0.0, 0.4, -0.1, 3.0, 0.2, 0.1]], dtype=torch.float64)
    expected = torch.tensor([brute_force_probs(row, temperature, top_k, top_p)
                             for row in logits.tolist()], dtype=torch.float64)
    torch.testing.assert_close(next_token_probs(logits, temperature, top_k, top_p), expected,
                               rtol=1e-9, atol=1e-12)


def test_top_p_boundary_is_inclusive():
    """With probabilities 1/2, 1/4, 1/8, 1/8 (exact in binary), p = 1/2 is reached by the first
    token alone and p = 3/4 by the first two: the next token is dropped."""
    logits = torch.tensor([[0.5, 0.25, 0.125, 0.125]], dtype=torch.float64).log()
    assert torch.equal(torch.softmax(logits, -1)[0, :2], torch.tensor([0.5, 0.25]).double())
    assert next_token_probs(logits, top_p=0.5).tolist() == [[1.0, 0.0, 0.0, 0.0]]
    torch.testing.assert_close(next_token_probs(logits, top_p=0.75),
                               torch.tensor([[2 / 3, 1 / 3, 0.0, 0.0]], dtype=torch.float64))
    # just above 1/2 the second token is needed too
    assert (next_token_probs(logits, top_p=0.5 + 1e-9)[0] > 0).tolist() == [True, True,
                                                                          False, False]


def test_top_k_keeps_exactly_k_tokens_and_top_p_keeps_them_in_place():
    logits = torch.tensor([[0.1, 3.0, -1.0, 2.0, 0.5]], dtype=torch.float64)
    for k in range(1, 6):
        kept = next_token_probs(logits, top_k=k)[0] > 0
        assert kept.sum().item() == k
        assert set(kept.nonzero().flatten().tolist()) == set(
            logits[0].argsort(descending=True)[:k].tolist())
    probs = next_token_probs(logits, top_p=0.8)[0]
    assert probs[1] > probs[3] > 0 and probs[[0, 2]].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("options", [dict(top_p=0.5), dict(top_k=2), dict(top_k=3, top_p=0.7),
                                     dict(temperature=0.5, top_p=0.9)])
def test_sample_next_draws_only_from_the_filtered_distribution(options):
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, -2.0]]).repeat(4000, 1)
    draws = sample_next(logits, generator=torch.Generator().manual_seed(0), **options)
    probs = next_token_probs(logits[:1].double(), **options)[0]
    freq = torch.bincount(draws, minlength=5).double() / len(draws)
    assert bool((freq[probs == 0] == 0).all()), (freq, probs)
    # binomial standard error at most 0.008 here; allow about 4 of them
    assert (freq - probs).abs().max() < 0.03, (freq, probs)
