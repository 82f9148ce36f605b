"""Tests of dlbook.bptt: hand-written BPTT against autograd; truncated-BPTT streams and state."""

import pytest
import torch

from dlbook.bptt import TruncatedBPTTLoss, evaluate_stateful, rnn_bptt, stream_batches
from dlbook.rnn import CharLSTM, CharLSTMConfig, RNNCell, rnn_unroll


@pytest.mark.parametrize("batch,steps,n_in,hidden", [(1, 1, 2, 3), (3, 7, 4, 5), (2, 12, 3, 6)])
def test_rnn_bptt_matches_autograd(batch, steps, n_in, hidden):
    gen = torch.Generator().manual_seed(batch * 100 + steps)
    cell = RNNCell(n_in, hidden).double()
    x = torch.randn(batch, steps, n_in, dtype=torch.float64, generator=gen)
    h0 = torch.randn(batch, hidden, dtype=torch.float64, generator=gen, requires_grad=True)
    weights = torch.randn(batch, steps, hidden, dtype=torch.float64, generator=gen)
    hs, _ = rnn_unroll(cell, x, h0)
    loss = (weights * hs).sum() + hs[:, -1].pow(2).sum()  # a loss at every step
    grad_h = torch.autograd.grad(loss, hs, retain_graph=True)[0]
    ref = torch.autograd.grad(loss, (cell.W_xh, cell.W_hh, cell.b_h, h0))
    ours = rnn_bptt(cell, x, grad_h, h0.detach())
    for a, b in zip((ours.W_xh, ours.W_hh, ours.b_h, ours.h0), ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert ours.W_hh_per_step.shape == (steps, hidden, hidden)
    torch.testing.assert_close(ours.W_hh_per_step.sum(0), ref[1])


def test_rnn_bptt_rejects_bad_shapes():
    cell = RNNCell(2, 3)
    with pytest.raises(ValueError, match="grad_h"):
        rnn_bptt(cell, torch.zeros(1, 4, 2), torch.zeros(1, 4, 5))


def test_stream_batches_are_contiguous():
    data = torch.arange(103)
    stream = stream_batches(data, block_size=5, batch_size=4)  # parts of 25: 5 chunks each
    (x1, y1), (x2, _) = next(stream), next(stream)
    assert x1.shape == (4, 5) and torch.equal(y1, x1 + 1)
    assert torch.equal(x1[:, 0], torch.tensor([0, 25, 50, 75]))
    assert torch.equal(x2[:, 0], x1[:, -1] + 1)  # row b continues where it stopped
    for _ in range(3):
        next(stream)
    assert torch.equal(next(stream)[0], x1)  # after 5 chunks it starts again
    with pytest.raises(ValueError, match="too short"):
        next(stream_batches(torch.arange(10), block_size=5, batch_size=4))
    with pytest.raises(ValueError, match="block_size"):
        next(stream_batches(data, block_size=0, batch_size=4))


def test_truncated_loss_carries_a_detached_state():
    torch.manual_seed(0)
    model = CharLSTM(CharLSTMConfig(vocab_size=7, embed_dim=4, hidden_size=8))
    data = torch.randint(0, 7, (200,))
    stream = stream_batches(data, block_size=6, batch_size=3)
    loss_fn = TruncatedBPTTLoss()
    first = next(stream)
    loss_fn(model, first).backward()
    assert loss_fn.state is not None and not loss_fn.state[0].requires_grad
    second = next(stream)
    carried = loss_fn(model, second)
    # the carried state is the one a single pass over both chunks reaches
    both = torch.cat([first[0], second[0]], dim=1)
    with torch.no_grad():
        logits_both, _ = model(both)
    fresh, _ = model(second[0])
    expected = torch.nn.functional.cross_entropy(logits_both[:, 6:].flatten(0, 1),
                                                 second[1].flatten())
    torch.testing.assert_close(carried, expected)
    assert not torch.allclose(carried, torch.nn.functional.cross_entropy(
        fresh.flatten(0, 1), second[1].flatten()))


def test_evaluate_stateful_equals_one_long_pass():
    torch.manual_seed(1)
    model = CharLSTM(CharLSTMConfig(vocab_size=5, embed_dim=3, hidden_size=4))
    data = torch.randint(0, 5, (61,))
    # one stream of 60 predictions = 6 chunks of 10, the same as one pass over the whole text
    with torch.no_grad():
        logits, _ = model(data[None, :60])
    expected = torch.nn.functional.cross_entropy(logits[0], data[1:61]).item()
    assert evaluate_stateful(model, data, block_size=10, batch_size=1) == pytest.approx(expected)
