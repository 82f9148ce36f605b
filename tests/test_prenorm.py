"""Tests of dlbook.prenorm: post-LN and pre-LN blocks against PyTorch's encoder layer,
label smoothing against F.cross_entropy, the tagger and its gradient probe."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook.attention import MultiHeadAttention, causal_mask
from dlbook.prenorm import (
    EncoderLayer,
    Tagger,
    TaggerConfig,
    TagTrainConfig,
    ffn_grad_norms,
    label_smoothed_cross_entropy,
    reverse_batches,
    tagger_scores,
    train_tagger,
)

F = torch.nn.functional


def _copy(ours, theirs):
    with torch.no_grad():
        ours.weight.copy_(theirs.weight)
        ours.bias.copy_(theirs.bias)


@settings(max_examples=20, deadline=None)
@given(norm_first=st.booleans(), B=st.integers(1, 3), T=st.integers(1, 7),
       n_heads=st.sampled_from([1, 2, 4]), causal=st.booleans(),
       seed=st.integers(0, 10_000))
def test_encoder_layer_matches_torch(norm_first, B, T, n_heads, causal, seed):
    d_model, d_ff = 4 * n_heads, 12
    torch.manual_seed(seed)
    ref = torch.nn.TransformerEncoderLayer(
        d_model, n_heads, d_ff, dropout=0.0, activation="gelu", batch_first=True,
        norm_first=norm_first).double().eval()
    with torch.no_grad():  # non-trivial layer norms, so a swapped norm would show
        for p in ref.parameters():
            if p.dim() == 1:
                p.normal_()
    ours = EncoderLayer(d_model, n_heads, d_ff, norm_first=norm_first).double().eval()
    ours.self_attn = MultiHeadAttention.from_torch(ref.self_attn)
    _copy(ours.ln_attn, ref.norm1)
    _copy(ours.ln_ff, ref.norm2)
    _copy(ours.ff.fc, ref.linear1)
    _copy(ours.ff.proj, ref.linear2)
    x = torch.randn(B, T, d_model, dtype=torch.float64)
    mask = causal_mask(T) if causal else None
    expected = ref(x, src_mask=None if mask is None else ~mask)
    torch.testing.assert_close(ours(x, mask), expected)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.5, 0.9])
def test_label_smoothing_matches_torch(smoothing):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 7, dtype=torch.float64, generator=gen, requires_grad=True)
    target = torch.randint(7, (40,), generator=gen)
    ours = label_smoothed_cross_entropy(logits, target, smoothing)
    ref = F.cross_entropy(logits, target, label_smoothing=smoothing)
    torch.testing.assert_close(ours, ref)
    g_ours, = torch.autograd.grad(ours, logits)
    g_ref, = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(g_ours, g_ref)


def test_label_smoothing_minimum_is_the_smoothed_target():
    # the loss is smallest when softmax(logits) equals (1 - eps) onehot + eps / C
    eps, C = 0.2, 5
    best = torch.full((1, C), eps / C, dtype=torch.float64)
    best[0, 2] += 1 - eps
    logits = best.log().requires_grad_()
    loss = label_smoothed_cross_entropy(logits, torch.tensor([2]), eps)
    grad, = torch.autograd.grad(loss, logits)
    assert grad.abs().max() < 1e-12


def test_label_smoothing_rejects_bad_arguments():
    with pytest.raises(ValueError, match="smoothing"):
        label_smoothed_cross_entropy(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), 1.0)
    with pytest.raises(ValueError, match="logits"):
        label_smoothed_cross_entropy(torch.zeros(2, 3, 4), torch.zeros(2, dtype=torch.long))


@pytest.mark.parametrize("norm_first", [True, False])
def test_tagger_shapes_and_gradient_probe(norm_first):
    torch.manual_seed(0)
    model = Tagger(TaggerConfig(n_layers=3, norm_first=norm_first))
    assert isinstance(model.ln_final, torch.nn.LayerNorm) == norm_first
    batches = list(itertools.islice(reverse_batches(10, 6, 4, seed=0), 2))
    assert model(batches[0][0]).shape == (4, 6, 10)
    norms = ffn_grad_norms(model, batches)
    assert norms.shape == (3,) and (norms > 0).all()
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())


def test_reverse_batches_reverse():
    x, y = next(reverse_batches(10, 5, 3, seed=1))
    assert torch.equal(y[:, 0], x[:, -1]) and torch.equal(y[:, -1], x[:, 0])


def test_pre_ln_tagger_learns():
    torch.manual_seed(0)
    model = Tagger(TaggerConfig(n_layers=2, d_model=32))
    history = train_tagger(model, TagTrainConfig(steps=80, lr=3e-3, length=4))
    assert history.step_loss[-1] < 0.5 * history.step_loss[0]
    x = next(reverse_batches(10, 4, 256, seed=9))[0]
    assert tagger_scores(model, x)["accuracy"] > 0.5
