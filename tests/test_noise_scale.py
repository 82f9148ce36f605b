"""dlbook.scale.gradient_noise_scale against per-example gradients computed directly."""

import pytest
import torch
from torch import nn

from dlbook.scale import gradient_noise_scale


def _loss(model, batch):
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def test_one_example_batches_give_the_sample_variance_of_per_example_gradients():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 5, generator=g), torch.randn(40, 1, generator=g)
    model = nn.Linear(5, 1).double()
    x, y = x.double(), y.double()
    per_example = []
    for i in range(40):  # the reference: one gradient per example
        model.zero_grad()
        _loss(model, (x[i : i + 1], y[i : i + 1])).backward()
        per_example.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    per_example = torch.stack(per_example)
    trace_sigma = per_example.var(0, unbiased=True).sum().item()
    mean = per_example.mean(0)
    # unbiased |G|^2: the squared mean minus its variance, tr(Sigma) / n
    grad_sq = mean.square().sum().item() - trace_sigma / 40
    batches = [(x[i : i + 1], y[i : i + 1]) for i in range(40)]
    est = gradient_noise_scale(model, _loss, batches, batch_size=1)
    assert est.trace_sigma == pytest.approx(trace_sigma, rel=1e-9)
    assert est.grad_sq == pytest.approx(grad_sq, rel=1e-9)
    assert est.b_simple == pytest.approx(trace_sigma / grad_sq, rel=1e-9)


def test_larger_batches_estimate_the_same_quantities():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(5, 1, generator=g)
    x = torch.randn(4096, 5, generator=g)
    y = x @ w + 0.5 * torch.randn(4096, 1, generator=g)
    model = nn.Linear(5, 1).double()
    x, y = x.double(), y.double()
    one = gradient_noise_scale(
        model, _loss, [(x[i : i + 1], y[i : i + 1]) for i in range(4096)], 1
    )
    eight = gradient_noise_scale(
        model, _loss, [(x[i : i + 8], y[i : i + 8]) for i in range(0, 4096, 8)], 8
    )
    assert eight.b_simple == pytest.approx(one.b_simple, rel=0.25)


def test_errors():
    with pytest.raises(ValueError, match="at least 2"):
        gradient_noise_scale(nn.Linear(1, 1), _loss, [], 4)
