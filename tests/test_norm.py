"""dlbook.norm against torch.nn.BatchNorm1d and torch.nn.LayerNorm, in float64."""

import pytest
import torch
from torch import nn

from dlbook.norm import BatchNorm1d, LayerNorm, batch_norm_backward

F64 = torch.float64


def _random_affine(ours, theirs, generator):
    """Give both modules the same non-trivial gain and shift."""
    with torch.no_grad():
        gamma = 1 + 0.5 * torch.randn(ours.weight.shape, generator=generator, dtype=F64)
        beta = torch.randn(ours.bias.shape, generator=generator, dtype=F64)
        for module in (ours, theirs):
            module.weight.copy_(gamma)
            module.bias.copy_(beta)


def _assert_same_forward_and_backward(ours, theirs, x, g):
    """Outputs, input gradients and weight gradients of the two layers agree on x, with the
    upstream gradient g."""
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1, y2 = ours(x1), theirs(x2)
    torch.testing.assert_close(y1, y2, rtol=1e-12, atol=1e-12)
    (y1 * g).sum().backward()
    (y2 * g).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ours.weight.grad, theirs.weight.grad, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("batch,features", [(2, 1), (8, 5), (33, 16)])
def test_batch_norm_matches_torch_in_train_and_eval(batch, features):
    gen = torch.Generator().manual_seed(batch * 100 + features)
    ours = BatchNorm1d(features, momentum=0.2).to(F64)
    theirs = nn.BatchNorm1d(features, momentum=0.2).to(F64)
    _random_affine(ours, theirs, gen)
    for _ in range(3):  # training steps: outputs, gradients and running statistics agree
        x = 3 * torch.randn(batch, features, generator=gen, dtype=F64) + 2
        g = torch.randn(batch, features, generator=gen, dtype=F64)
        _assert_same_forward_and_backward(ours, theirs, x, g)
        torch.testing.assert_close(ours.bias.grad, theirs.bias.grad, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ours.running_mean, theirs.running_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours.running_var, theirs.running_var, rtol=1e-12, atol=1e-12)
    ours.eval()
    theirs.eval()
    x = torch.randn(5, features, generator=gen, dtype=F64)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-12, atol=1e-12)


def test_batch_norm_eval_output_does_not_depend_on_the_batch():
    gen = torch.Generator().manual_seed(0)
    bn = BatchNorm1d(4).to(F64)
    bn(torch.randn(16, 4, generator=gen, dtype=F64))  # one training step sets running stats
    x = torch.randn(6, 4, generator=gen, dtype=F64)
    other = x.clone()
    other[1:] += 10
    bn.eval()
    torch.testing.assert_close(bn(x)[0], bn(other)[0])
    bn.train()
    assert (bn(x)[0] - bn(other)[0]).abs().max() > 0.1


@pytest.mark.parametrize("shape", [(4, 7), (3, 5, 7), (1, 7)])
def test_layer_norm_matches_torch(shape):
    gen = torch.Generator().manual_seed(len(shape))
    ours, theirs = LayerNorm(shape[-1]).to(F64), nn.LayerNorm(shape[-1]).to(F64)
    _random_affine(ours, theirs, gen)
    x = 2 * torch.randn(shape, generator=gen, dtype=F64) - 1
    g = torch.randn(shape, generator=gen, dtype=F64)
    _assert_same_forward_and_backward(ours, theirs, x, g)
    ours.eval()
    theirs.eval()
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-12, atol=1e-12)


def test_batch_norm_backward_matches_autograd():
    gen = torch.Generator().manual_seed(1)
    x = (torch.randn(12, 6, generator=gen, dtype=F64) * 2 + 1).requires_grad_()
    weight = torch.randn(6, generator=gen, dtype=F64).requires_grad_()
    bias = torch.randn(6, generator=gen, dtype=F64).requires_grad_()
    g = torch.randn(12, 6, generator=gen, dtype=F64)
    eps = 1e-5
    mean, var = x.mean(0), x.var(0, unbiased=False)
    inv_std = 1 / torch.sqrt(var + eps)
    x_hat = (x - mean) * inv_std
    ((weight * x_hat + bias) * g).sum().backward()
    grad_x, grad_w, grad_b = batch_norm_backward(g, x_hat.detach(), inv_std.detach(),
                                                 weight.detach())
    torch.testing.assert_close(grad_x, x.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad_w, weight.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad_b, bias.grad, rtol=1e-10, atol=1e-12)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="num_features"):
        BatchNorm1d(0)
    with pytest.raises(ValueError, match="eps"):
        LayerNorm(3, eps=0.0)
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm1d(3, momentum=1.5)
    with pytest.raises(ValueError, match=r"\(B, 3\)"):
        BatchNorm1d(3)(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="at least 2"):
        BatchNorm1d(3)(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="last axis 3"):
        LayerNorm(3)(torch.zeros(2, 4))
