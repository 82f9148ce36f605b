"""Drawing the computational graph, and the scalar network of chapter 1."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from dlbook.autograd import Value  # noqa: E402
from dlbook.graph import draw_graph, graph_layers  # noqa: E402
from dlbook.scalarnet import Neuron, ScalarMLP, sgd_step  # noqa: E402


def chapter_graph():
    x1, x2 = Value(2.0, label="x1"), Value(5.0, label="x2")
    return x1, x2, x1 * x2 + x1.sin()


def test_layers_put_each_node_right_of_its_parents():
    x1, x2, out = chapter_graph()
    depth = graph_layers(out)
    assert depth[id(x1)] == depth[id(x2)] == 0
    assert depth[id(out)] == 2
    assert len(depth) == 5


def test_draw_graph_draws_one_box_per_node():
    _, _, out = chapter_graph()
    out.backward()
    ax = draw_graph(out)
    texts = [t.get_text() for t in ax.texts if t.get_text()]  # arrows are empty annotations
    assert len(texts) == 5
    assert any(t.startswith("x1") and "grad 4.58" in t for t in texts)


def test_draw_graph_refuses_a_non_value():
    with pytest.raises(TypeError, match="must be a Value"):
        draw_graph(3.0)


def test_scalar_mlp_matches_torch_forward_and_gradients():
    net = ScalarMLP([3, 4, 2], seed=1)
    x = [0.3, -1.2, 0.7]
    out = net(x)
    loss = out[0] * out[0] + out[1]
    loss.backward()
    # The same network in torch, float64, with the same weights.
    w1 = torch.tensor([[p.data for p in n.w] for n in net.layers[0]], dtype=torch.float64,
                      requires_grad=True)
    b1 = torch.tensor([n.b.data for n in net.layers[0]], dtype=torch.float64, requires_grad=True)
    w2 = torch.tensor([[p.data for p in n.w] for n in net.layers[1]], dtype=torch.float64,
                      requires_grad=True)
    b2 = torch.tensor([n.b.data for n in net.layers[1]], dtype=torch.float64, requires_grad=True)
    h = torch.tanh(w1 @ torch.tensor(x, dtype=torch.float64) + b1)
    y = w2 @ h + b2  # the last layer is linear
    (y[0] ** 2 + y[1]).backward()
    assert [o.data for o in out] == pytest.approx(y.tolist(), rel=1e-12)
    ours_w1 = [[p.grad for p in n.w] for n in net.layers[0]]
    assert torch.allclose(torch.tensor(ours_w1, dtype=torch.float64), w1.grad, rtol=1e-10)
    assert [n.b.grad for n in net.layers[1]] == pytest.approx(b2.grad.tolist(), rel=1e-10)


def test_scalar_mlp_overfits_four_points():
    net = ScalarMLP([2, 6, 1], seed=0)
    data = [([1.0, 1.0], 1.0), ([-1.0, -1.0], 1.0), ([1.0, -1.0], -1.0), ([-1.0, 1.0], -1.0)]
    for _ in range(300):
        loss = sum(((net(x)[0] - y) ** 2 for x, y in data), Value(0.0))
        loss.backward()
        sgd_step(net.parameters(), lr=0.05)
    assert loss.data < 0.05


def test_scalarnet_errors_are_clear():
    import random

    with pytest.raises(ValueError, match="positive int"):
        Neuron(0, random.Random(0))
    with pytest.raises(ValueError, match="expected 2 inputs, got 3"):
        Neuron(2, random.Random(0))([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="at least two positive ints"):
        ScalarMLP([2])
    with pytest.raises(ValueError, match="lr must be > 0"):
        sgd_step([], lr=0.0)
