"""dlbook.mlp: every hand-written forward and backward pass against torch.autograd (float64)."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook.mlp import (
    MLP,
    Dropout,
    Linear,
    MLPConfig,
    ReLU,
    Sigmoid,
    Tanh,
    cross_entropy,
    init_weight,
    log_softmax,
    train_step,
)
from dlbook.optim import Adam

F64 = torch.float64


def close(a, b, tol=1e-10):
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.integers(1, 9), st.integers(0, 10**6))
def test_linear_forward_and_backward_match_autograd(batch, d_in, d_out, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, d_in, generator=g, dtype=F64)
    w = torch.randn(d_out, d_in, generator=g, dtype=F64)
    b = torch.randn(d_out, generator=g, dtype=F64)
    grad_out = torch.randn(batch, d_out, generator=g, dtype=F64)

    layer = Linear(w.clone(), b.clone())
    y = layer.forward(x)
    grad_x = layer.backward(grad_out)

    xt, wt, bt = (t.clone().requires_grad_() for t in (x, w, b))
    yt = F.linear(xt, wt, bt)
    yt.backward(grad_out)
    close(y, yt.detach())
    close(grad_x, xt.grad)
    close(layer.grad_weight, wt.grad)
    close(layer.grad_bias, bt.grad)


def test_linear_accumulates_gradients_until_zeroed():
    layer = Linear(torch.ones(2, 3, dtype=F64), torch.zeros(2, dtype=F64))
    x, grad_out = torch.ones(4, 3, dtype=F64), torch.ones(4, 2, dtype=F64)
    for _ in range(2):
        layer.forward(x)
        layer.backward(grad_out)
    close(layer.grad_weight, torch.full((2, 3), 8.0, dtype=F64))
    layer.zero_grad()
    assert layer.grad_weight.abs().sum() == 0 and layer.grad_bias.abs().sum() == 0


def test_linear_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"weight must be \(D_out, D_in\) and bias \(D_out,\)"):
        Linear(torch.zeros(2, 3), torch.zeros(3))


@pytest.mark.parametrize("ours, theirs", [(ReLU, torch.relu), (Tanh, torch.tanh),
                                          (Sigmoid, torch.sigmoid)])
def test_activations_match_autograd(ours, theirs):
    z = torch.randn(7, 5, dtype=F64) * 3
    grad_out = torch.randn(7, 5, dtype=F64)
    layer = ours()
    out = layer.forward(z)
    grad = layer.backward(grad_out)
    zt = z.clone().requires_grad_()
    theirs(zt).backward(grad_out)
    close(out, theirs(z))
    close(grad, zt.grad)


def test_log_softmax_is_stable_and_exact():
    z = torch.tensor([[1000.0, 0.0, -1000.0], [1e-3, 2e-3, 3e-3], [-800.0, -800.0, -801.0]],
                     dtype=F64)
    ours = log_softmax(z)
    assert torch.isfinite(ours).all()
    close(ours, torch.log_softmax(z, dim=1), tol=1e-12)
    naive = torch.log(torch.exp(z) / torch.exp(z).sum(dim=1, keepdim=True))
    assert not torch.isfinite(naive).all()  # why the shift is needed
    big = log_softmax(torch.tensor([[1e4, 0.0]], dtype=torch.float32))
    assert torch.isfinite(big).all()


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 12), st.integers(2, 8), st.floats(0.1, 100), st.integers(0, 10**6))
def test_cross_entropy_value_and_gradient_match_torch(batch, classes, scale, seed):
    g = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(batch, classes, generator=g, dtype=F64)
    y = torch.randint(0, classes, (batch,), generator=g)
    loss, grad = cross_entropy(logits, y)
    lt = logits.clone().requires_grad_()
    expected = F.cross_entropy(lt, y)
    expected.backward()
    close(loss, expected.detach())
    close(grad, lt.grad)


def test_cross_entropy_rejects_bad_labels():
    with pytest.raises(ValueError, match=r"logits must be \(B, C\) and y \(B,\)"):
        cross_entropy(torch.zeros(3, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"integer classes in \[0, 4\)"):
        cross_entropy(torch.zeros(2, 4), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="integer classes"):
        cross_entropy(torch.zeros(2, 4), torch.tensor([0.0, 1.0]))


def mlp_and_twin(config, seed=0):
    model = MLP(config, generator=torch.Generator().manual_seed(seed), dtype=F64)
    for layer in model.linears():  # non-zero biases, so their gradients are tested too
        layer.bias.normal_(0, 0.5, generator=torch.Generator().manual_seed(seed + 1))
    return model, model.to_torch()


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.integers(1, 12), min_size=2, max_size=5),
    st.sampled_from(["relu", "tanh", "sigmoid"]),
    st.integers(1, 10),
    st.integers(0, 10**6),
)
def test_mlp_backward_gives_every_gradient_of_autograd(sizes, activation, batch, seed):
    sizes[-1] = max(sizes[-1], 2)
    model, twin = mlp_and_twin(MLPConfig(tuple(sizes), activation, init="glorot"), seed)
    g = torch.Generator().manual_seed(seed + 2)
    x = torch.randn(batch, sizes[0], generator=g, dtype=F64)
    y = torch.randint(0, sizes[-1], (batch,), generator=g)

    loss, grad_logits = cross_entropy(model.forward(x), y)
    grad_x = model.backward(grad_logits)

    xt = x.clone().requires_grad_()
    expected = F.cross_entropy(twin(xt), y)
    expected.backward()
    close(loss, expected.detach())
    close(grad_x, xt.grad)
    for ours, theirs in zip(model.gradients(), twin.parameters()):
        close(ours, theirs.grad)


def test_mlp_gradient_matches_central_differences():
    model, _ = mlp_and_twin(MLPConfig((3, 5, 4, 2), "tanh"))
    x, y = torch.randn(6, 3, dtype=F64), torch.tensor([0, 1, 1, 0, 1, 0])
    model.zero_grad()
    model.backward(cross_entropy(model.forward(x), y)[1])
    w = model.linears()[1].weight
    h = 1e-6
    for i, j in [(0, 0), (2, 3), (3, 1)]:
        old = w[i, j].item()
        w[i, j] = old + h
        up = cross_entropy(model.forward(x), y)[0].item()
        w[i, j] = old - h
        down = cross_entropy(model.forward(x), y)[0].item()
        w[i, j] = old
        assert abs((up - down) / (2 * h) - model.linears()[1].grad_weight[i, j].item()) < 1e-8


def test_dropout_backward_uses_the_forward_mask():
    g = torch.Generator().manual_seed(0)
    layer = Dropout(0.3, generator=g)
    x = torch.randn(50, 40, dtype=F64)
    out = layer.forward(x)
    grad_out = torch.randn(50, 40, dtype=F64)
    grad = layer.backward(grad_out)
    xt = x.clone().requires_grad_()
    (xt * layer.mask).backward(grad_out)  # the same mask as a constant factor
    close(out, x * layer.mask)
    close(grad, xt.grad)
    kept = layer.mask != 0
    close(layer.mask[kept], torch.full_like(layer.mask[kept], 1 / 0.7))
    assert abs(1 - kept.double().mean().item() - 0.3) < 0.03  # 2,000 draws: std is 0.01


def test_dropout_keeps_the_mean_and_is_identity_in_eval():
    layer = Dropout(0.5, generator=torch.Generator().manual_seed(1))
    x = torch.ones(200, 100, dtype=F64)
    assert abs(layer.forward(x).mean().item() - 1) < 0.02  # 20,000 draws: std is 0.007
    layer.training = False
    close(layer.forward(x), x)
    close(layer.backward(x), x)
    with pytest.raises(ValueError, match=r"dropout probability p must be in \[0, 1\)"):
        Dropout(1.0)


def test_mlp_with_dropout_matches_autograd_with_the_same_masks():
    model = MLP(MLPConfig((4, 16, 16, 3), dropout=0.5), torch.Generator().manual_seed(0), F64)
    x, y = torch.randn(8, 4, dtype=F64), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    loss, grad_logits = cross_entropy(model.forward(x), y)
    model.backward(grad_logits)
    xt = x.clone().requires_grad_()
    params = [p.clone().requires_grad_() for p in model.parameters()]
    h, masks = xt, [layer.mask for layer in model.layers if isinstance(layer, Dropout)]
    for k in range(3):
        h = F.linear(h, params[2 * k], params[2 * k + 1])
        if k < 2:
            h = torch.relu(h) * masks[k]
    expected = F.cross_entropy(h, y)
    expected.backward()
    close(loss, expected.detach())
    for ours, p in zip(model.gradients(), params):
        close(ours, p.grad)
    model.eval()
    close(model.forward(x), model.to_torch().eval()(x))


@pytest.mark.parametrize("scheme, expected", [("he", math.sqrt(2 / 400)),
                                              ("glorot", math.sqrt(2 / 600)), (0.05, 0.05)])
def test_init_weight_has_the_promised_std(scheme, expected):
    w = init_weight(400, 200, scheme, torch.Generator().manual_seed(0), F64)
    assert w.shape == (200, 400)
    assert abs(w.std().item() / expected - 1) < 0.02  # 80,000 draws: relative std 0.0025


def test_config_and_input_errors():
    with pytest.raises(ValueError, match="init must be 'he', 'glorot' or a std"):
        init_weight(3, 3, "xavier")
    with pytest.raises(ValueError, match="at least two positive widths"):
        MLPConfig(sizes=(4,))
    with pytest.raises(ValueError, match="activation must be one of"):
        MLPConfig(activation="swish")
    with pytest.raises(ValueError, match=r"x must have shape \(B, 64\)"):
        MLP().forward(torch.zeros(2, 8))


def test_overfit_one_batch_without_autograd():
    g = torch.Generator().manual_seed(0)
    model = MLP(MLPConfig((10, 32, 4)), generator=g, dtype=F64)
    x, y = torch.randn(16, 10, generator=g, dtype=F64), torch.arange(16) % 4
    optimizer = Adam(model.parameters(), lr=0.01)
    losses = [train_step(model, optimizer, x, y) for _ in range(300)]
    assert losses[-1] < 0.01 < losses[0]
    assert (model.forward(x).argmax(dim=1) == y).all()
