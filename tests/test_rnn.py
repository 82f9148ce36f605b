"""Tests for dlbook.rnn: from-scratch cells against PyTorch, and the character LSTM."""

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dlbook.rnn import (
    CharLSTM,
    CharLSTMConfig,
    GRUCell,
    LSTMCell,
    RNNCell,
    hidden_grad_norms,
    rnn_unroll,
)
from dlbook.text import CharCorpus, LMTrainConfig, train_char_lm
from dlbook.train import TrainConfig

TORCH_LAYERS = {"rnn": (nn.RNN, RNNCell), "lstm": (nn.LSTM, LSTMCell), "gru": (nn.GRU, GRUCell)}


def _pair(kind, input_size, hidden_size, seed):
    torch.manual_seed(seed)
    layer_cls, cell_cls = TORCH_LAYERS[kind]
    layer = layer_cls(input_size, hidden_size, batch_first=True).double()
    return layer, cell_cls.from_torch(layer)


@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from(sorted(TORCH_LAYERS)), b=st.integers(1, 4), t=st.integers(1, 7),
       i=st.integers(1, 5), h=st.integers(1, 6), seed=st.integers(0, 1000))
def test_cells_match_torch_values_and_gradients(kind, b, t, i, h, seed):
    layer, cell = _pair(kind, i, h, seed)
    x = torch.randn(b, t, i, dtype=torch.float64, requires_grad=True)
    ours, state = rnn_unroll(cell, x)
    theirs, torch_state = layer(x)
    torch.testing.assert_close(ours, theirs)
    if kind == "lstm":
        torch.testing.assert_close(state[1], torch_state[1][0])  # the final cell state c_T
    # gradients of one scalar loss w.r.t. the input and every weight
    w = torch.randn_like(ours)
    g_ours = torch.autograd.grad((ours * w).sum(), [x, *cell.parameters()])
    g_theirs = torch.autograd.grad((theirs * w).sum(), [x, *layer.parameters()])
    torch.testing.assert_close(g_ours[0], g_theirs[0])
    torch_grads = dict(zip([n for n, _ in layer.named_parameters()], g_theirs[1:], strict=True))
    ours_by_name = dict(zip([n for n, _ in cell.named_parameters()], g_ours[1:], strict=True))
    # each of our matrices is the transpose of PyTorch's; the summed bias gets both gradients
    w_x = "W_xh" if kind == "rnn" else "W_x"
    w_h = "W_hh" if kind == "rnn" else "W_h"
    torch.testing.assert_close(ours_by_name[w_x], torch_grads["weight_ih_l0"].T)
    torch.testing.assert_close(ours_by_name[w_h], torch_grads["weight_hh_l0"].T)
    if kind == "gru":
        torch.testing.assert_close(ours_by_name["b_x"], torch_grads["bias_ih_l0"])
        torch.testing.assert_close(ours_by_name["b_h"], torch_grads["bias_hh_l0"])
    else:
        bias = "b_h" if kind == "rnn" else "b"
        torch.testing.assert_close(ours_by_name[bias], torch_grads["bias_ih_l0"])
        torch.testing.assert_close(ours_by_name[bias], torch_grads["bias_hh_l0"])


@pytest.mark.parametrize("kind", sorted(TORCH_LAYERS))
def test_initial_state_is_used(kind):
    layer, cell = _pair(kind, 3, 4, 0)
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    h0 = torch.randn(2, 4, dtype=torch.float64)
    if kind == "lstm":
        c0 = torch.randn(2, 4, dtype=torch.float64)
        ours, _ = rnn_unroll(cell, x, (h0, c0))
        theirs, _ = layer(x, (h0[None], c0[None]))
    else:
        ours, _ = rnn_unroll(cell, x, h0)
        theirs, _ = layer(x, h0[None])
    torch.testing.assert_close(ours, theirs)


def test_hidden_grad_norms_match_finite_differences():
    torch.manual_seed(0)
    cell = RNNCell(2, 3).double()
    x = torch.randn(1, 4, 2, dtype=torch.float64)
    v = torch.randn(3, dtype=torch.float64)
    norms = hidden_grad_norms(cell, x, lambda h: (h[0] * v).sum())
    assert norms.shape == (4,)
    # dL/dh_1 by central differences: perturb h_1, then run steps 2..4 by hand
    h1 = cell(x[:, 0], cell.init_state(1)).detach()
    eps, grad = 1e-6, torch.zeros(3, dtype=torch.float64)
    for k in range(3):
        losses = []
        for sign in (1, -1):
            h = h1.clone()
            h[0, k] += sign * eps
            with torch.no_grad():
                for t in range(1, 4):
                    h = cell(x[:, t], h)
            losses.append(float((h[0] * v).sum()))
        grad[k] = (losses[0] - losses[1]) / (2 * eps)
    assert abs(float(norms[0]) - float(grad.norm())) < 1e-7
    assert abs(float(norms[-1]) - float(v.norm())) < 1e-12


def test_vanishing_and_forget_bias():
    """Small recurrent weights make a tanh RNN forget fast; a forget bias keeps an LSTM's memory."""
    torch.manual_seed(0)
    x = torch.randn(8, 40, 4)
    rnn = RNNCell(4, 32)
    lstm_open = LSTMCell(4, 32, forget_bias=5.0)
    norms_rnn = hidden_grad_norms(rnn, x, lambda h: h.sum())
    norms_lstm = hidden_grad_norms(lstm_open, x, lambda h: h.sum())
    assert norms_rnn[0] / norms_rnn[-1] < 1e-6
    assert norms_lstm[0] / norms_lstm[-1] > 1e-3


def test_cell_errors():
    cell = LSTMCell(3, 4)
    with pytest.raises(ValueError, match="x must have shape \\(B, 3\\), got \\(2, 5\\)"):
        cell(torch.zeros(2, 5), cell.init_state(2))
    with pytest.raises(ValueError, match="x must have shape \\(B, T, I\\)"):
        rnn_unroll(cell, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="one-layer, one-directional"):
        LSTMCell.from_torch(nn.LSTM(3, 4, num_layers=2))
    with pytest.raises(ValueError, match="RNNCell uses tanh"):
        RNNCell.from_torch(nn.RNN(3, 4, nonlinearity="relu"))
    with pytest.raises(TypeError, match="expected an nn.GRU"):
        GRUCell.from_torch(nn.LSTM(3, 4))


def test_char_lstm_overfits_one_batch_and_generates():
    torch.manual_seed(0)
    model = CharLSTM(CharLSTMConfig(vocab_size=11, hidden_size=32))
    x = torch.randint(11, (4, 12))
    x[:, 0] = torch.arange(4)  # distinct first characters, so greedy decoding can tell them apart
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        logits, _ = model(x[:, :-1])
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05, loss.item()
    # greedy generation from the first character reproduces each memorized sequence
    out = model.generate(x[:, :1], 11, temperature=0)
    assert torch.equal(out, x)
    a = model.generate(x[:, :2], 5, generator=torch.Generator().manual_seed(1))
    b = model.generate(x[:, :2], 5, generator=torch.Generator().manual_seed(1))
    assert a.shape == (4, 7) and torch.equal(a, b) and torch.equal(a[:, :2], x[:, :2])
    assert model.training


def test_generate_with_state_equals_full_forward():
    torch.manual_seed(0)
    model = CharLSTM(CharLSTMConfig(vocab_size=7, hidden_size=16)).eval()
    out = model.generate(torch.tensor([[1, 2, 3]]), 6, temperature=0)
    logits, _ = model(out[:, :-1])
    assert torch.equal(logits.argmax(-1)[:, 2:], out[:, 3:])


def test_train_char_lm_learns_and_stops_on_time():
    text = "the quick brown fox jumps over the lazy dog. " * 60
    corpus = CharCorpus.from_text(text)
    torch.manual_seed(0)
    model = CharLSTM(CharLSTMConfig(len(corpus.vocab), embed_dim=16, hidden_size=64))
    training = TrainConfig(steps=60, batch_size=16, lr=1e-2, grad_clip=1.0, eval_every=20,
                           progress=False)
    config = LMTrainConfig(training=training, block_size=32)
    history = train_char_lm(model, corpus, config)
    assert history.step == [20, 40, 60] and len(history.step_loss) == 60
    assert history.val_loss[-1] < 0.5 * history.val_loss[0]
    assert history.val_loss[-1] < 0.5  # the text repeats, so it becomes nearly predictable
    with pytest.raises(ValueError, match="block_size must be given for a CharLSTM"):
        train_char_lm(model, corpus, LMTrainConfig(training=training))
    with pytest.raises(ValueError, match="training.steps must be set"):
        LMTrainConfig(training=TrainConfig())
    with pytest.raises(TypeError, match="training must be a TrainConfig"):
        LMTrainConfig(training={"steps": 10})
    timed = train_char_lm(model, corpus, dataclasses.replace(
        config, training=dataclasses.replace(training, steps=10**6, max_seconds=0.5)))
    assert timed.step[-1] < 10**6 and 0.5 <= timed.elapsed[-1] < 5.0
