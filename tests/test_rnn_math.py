"""The recurrent cells against chapter 5's equations written out by hand, gate by gate, and
the forget bias against where the forget gate sits, so the mutations of ``tools/mutate.py``
fail."""

import torch

from dlbook.rnn import GRUCell, LSTMCell, RNNCell, rnn_unroll

F64 = torch.float64


def _inputs(b=3, i=4, h=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(b, i, generator=gen, dtype=F64),
            torch.randn(b, h, generator=gen, dtype=F64),
            torch.randn(b, h, generator=gen, dtype=F64))


def _sigmoid(z):
    return 1 / (1 + torch.exp(-z))


def test_rnn_cell_is_elman():
    torch.manual_seed(0)
    cell = RNNCell(4, 5).double()
    x, h, _ = _inputs()
    expected = torch.tanh(x @ cell.W_xh + h @ cell.W_hh + cell.b_h)
    torch.testing.assert_close(cell(x, h), expected)
    assert cell.b_h.abs().min() > 0  # the bias really takes part


def test_lstm_cell_gate_by_gate():
    torch.manual_seed(0)
    H = 5
    cell = LSTMCell(4, H).double()
    x, h, c = _inputs(h=H)
    z = x @ cell.W_x + h @ cell.W_h + cell.b
    i, f = _sigmoid(z[:, :H]), _sigmoid(z[:, H:2 * H])  # PyTorch's order: i, f, g, o
    g, o = torch.tanh(z[:, 2 * H:3 * H]), _sigmoid(z[:, 3 * H:])
    c_new = f * c + i * g
    h_new = o * torch.tanh(c_new)
    got_h, got_c = cell(x, (h, c))
    torch.testing.assert_close(got_c, c_new)
    torch.testing.assert_close(got_h, h_new)


def test_gru_cell_gate_by_gate():
    torch.manual_seed(0)
    H = 5
    cell = GRUCell(4, H).double()
    x, h, _ = _inputs(h=H)
    a, b = x @ cell.W_x + cell.b_x, h @ cell.W_h + cell.b_h  # PyTorch's order: r, z, n
    r = _sigmoid(a[:, :H] + b[:, :H])
    z = _sigmoid(a[:, H:2 * H] + b[:, H:2 * H])
    n = torch.tanh(a[:, 2 * H:] + r * b[:, 2 * H:])
    torch.testing.assert_close(cell(x, h), (1 - z) * n + z * h)


def test_forget_bias_shifts_only_the_forget_gate():
    H = 6
    torch.manual_seed(1)
    plain = LSTMCell(3, H)
    torch.manual_seed(1)
    biased = LSTMCell(3, H, forget_bias=2.0)
    shift = biased.b.detach() - plain.b.detach()
    expected = torch.zeros(4 * H)
    expected[H:2 * H] = 2.0
    torch.testing.assert_close(shift, expected)
    # a large forget bias keeps the cell state: with f near 1 and i * g small, c barely moves
    torch.manual_seed(1)
    keeper = LSTMCell(3, H, forget_bias=20.0)
    with torch.no_grad():
        keeper.b[:H] -= 20.0  # input gate shut
        _, c = keeper(torch.randn(2, 3), (torch.zeros(2, H), torch.ones(2, H)))
    torch.testing.assert_close(c, torch.ones(2, H), atol=1e-6, rtol=0)


def test_unroll_feeds_each_state_to_the_next_step():
    torch.manual_seed(0)
    cell = GRUCell(2, 3).double()
    x = torch.randn(2, 4, 2, dtype=F64)
    h = torch.zeros(2, 3, dtype=F64)
    expected = []
    for t in range(4):
        h = cell(x[:, t], h)
        expected.append(h)
    hs, last = rnn_unroll(cell, x)
    torch.testing.assert_close(hs, torch.stack(expected, dim=1))
    torch.testing.assert_close(last, h)
