"""dlbook.norm2d.BatchNorm2d against torch.nn.BatchNorm2d in training and evaluation mode."""

import pytest
import torch
from torch import nn

from dlbook.norm2d import BatchNorm2d


def _pair(channels, seed):
    torch.manual_seed(seed)
    ours, ref = BatchNorm2d(channels).double(), nn.BatchNorm2d(channels).double()
    with torch.no_grad():
        ours.weight.uniform_(0.5, 2.0)
        ours.bias.normal_()
        ref.weight.copy_(ours.weight)
        ref.bias.copy_(ours.bias)
    return ours, ref


@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (2, 1, 3, 7), (16, 6, 1, 1)])
def test_training_mode_matches_torch(shape):
    ours, ref = _pair(shape[1], seed=sum(shape))
    for step in range(3):  # several batches, so the running statistics are compared too
        x = (3 * torch.randn(*shape, dtype=torch.float64) + step).requires_grad_(True)
        x_ref = x.detach().clone().requires_grad_(True)
        y, y_ref = ours(x), ref(x_ref)
        torch.testing.assert_close(y, y_ref)
        upstream = torch.randn_like(y)
        grads = torch.autograd.grad(y, (x, ours.weight, ours.bias), upstream)
        grads_ref = torch.autograd.grad(y_ref, (x_ref, ref.weight, ref.bias), upstream)
        for a, b in zip(grads, grads_ref, strict=True):
            torch.testing.assert_close(a, b)
    torch.testing.assert_close(ours.running_mean, ref.running_mean)
    torch.testing.assert_close(ours.running_var, ref.running_var)


def test_eval_mode_uses_running_statistics():
    ours, ref = _pair(3, seed=0)
    for _ in range(4):
        x = torch.randn(8, 3, 4, 4, dtype=torch.float64) * 2 + 1
        ours(x), ref(x)
    ours.eval(), ref.eval()
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(ours(x), ref(x))
    # in evaluation mode an image's output does not depend on the rest of the batch
    torch.testing.assert_close(ours(x[:1]), ours(x)[:1])


def test_checks_arguments():
    with pytest.raises(ValueError, match="num_features"):
        BatchNorm2d(0)
    with pytest.raises(ValueError, match="shape"):
        BatchNorm2d(3)(torch.zeros(2, 4, 3, 3))
    with pytest.raises(ValueError, match="at least 2"):
        BatchNorm2d(3)(torch.zeros(1, 3, 1, 1))
