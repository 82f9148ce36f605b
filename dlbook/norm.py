"""Batch normalization and layer normalization from scratch (chapter 3).

Both standardize activations, ``x_hat = (x - mean) / sqrt(var + eps)``, then rescale
them with a learned gain and shift, ``y = gamma * x_hat + beta``. They differ in what
the statistics are taken
over: batch normalization (Ioffe and Szegedy, 2015) averages each feature over the
examples of a batch, layer normalization (Ba et al., 2016) averages each example over
its features. The defaults and the update of the running statistics follow
``torch.nn.BatchNorm1d`` and ``torch.nn.LayerNorm``, and ``tests/test_norm.py`` checks
both against them in float64.
"""

from __future__ import annotations

import torch
from torch import nn

from dlbook.utils import check_positive_int


def _check_features(num_features: object) -> int:
    return check_positive_int(num_features, "num_features")


def _check_eps(eps: object) -> float:
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not eps > 0:
        raise ValueError(f"eps must be a number > 0, got {eps!r}")
    return float(eps)


class BatchNorm1d(nn.Module):
    """Batch normalization of (B, D) activations, feature by feature.

    Training mode standardizes with the mean and the (biased) variance of the current
    batch and updates running averages of both,
    ``running <- (1 - momentum) running + momentum batch``, where the running variance
    uses the unbiased batch variance, as PyTorch does. Evaluation mode uses the running
    averages, so each example's output no longer depends on its batch.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_features = _check_features(num_features)
        self.eps = _check_eps(eps)
        if not isinstance(momentum, (int, float)) or not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], got {momentum!r}")
        self.momentum = float(momentum)
        self.weight = nn.Parameter(torch.ones(num_features))  # gamma
        self.bias = nn.Parameter(torch.zeros(num_features))  # beta
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, D) -> (B, D)."""
        if x.dim() != 2 or x.shape[1] != self.num_features:
            raise ValueError(
                f"x must have shape (B, {self.num_features}), got {tuple(x.shape)}"
            )
        if self.training:
            if x.shape[0] < 2:
                raise ValueError(
                    f"training mode needs at least 2 examples per batch, "
                    f"got "
                    f"{x.shape[0]}: the variance of one example is 0"
                )
            mean = x.mean(dim=0)  # (D,)
            # (D,), the variance that standardizes the batch
            var = x.var(dim=0, unbiased=False)
            # the running averages are statistics, not part of the graph
            with torch.no_grad():
                unbiased = var * x.shape[0] / (x.shape[0] - 1)
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * unbiased)
        else:
            mean, var = self.running_mean, self.running_var
        x_hat = (x - mean) / torch.sqrt(var + self.eps)  # (B, D)
        return self.weight * x_hat + self.bias


class LayerNorm(nn.Module):
    """Layer normalization over the last axis: each example (and position) is
    standardized over its own D features, so training and evaluation compute the same
    thing."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = _check_features(num_features)
        self.eps = _check_eps(eps)
        self.weight = nn.Parameter(torch.ones(num_features))  # gamma
        self.bias = nn.Parameter(torch.zeros(num_features))  # beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., D) -> (..., D)."""
        if x.dim() < 1 or x.shape[-1] != self.num_features:
            raise ValueError(
                f"x must have last axis {self.num_features}, got {tuple(x.shape)}"
            )
        mean = x.mean(dim=-1, keepdim=True)  # (..., 1)
        var = x.var(dim=-1, unbiased=False, keepdim=True)  # (..., 1)
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight * x_hat + self.bias


def batch_norm_backward(
    grad_out: torch.Tensor,
    x_hat: torch.Tensor,
    inv_std: torch.Tensor,
    weight: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The backward pass of training-mode batch normalization, written out.

    Args:
        grad_out: dL/dy, (B, D).
        x_hat: the standardized input, (B, D).
        inv_std: 1 / sqrt(var + eps) of the batch, (D,).
        weight: gamma, (D,).
    Returns:
        (dL/dx, dL/dgamma, dL/dbeta). Every x_i enters the mean and the variance as well
        as its own x_hat_i, so dL/dx_i = gamma inv_std (g_i - mean_j g_j - x_hat_i
        mean_j(g_j x_hat_j)) with g = dL/dy, each feature separately (Ioffe and Szegedy,
        2015, section 3).
    """
    grad_weight = (grad_out * x_hat).sum(dim=0)  # (D,)
    grad_bias = grad_out.sum(dim=0)  # (D,)
    g_mean = grad_out.mean(dim=0)  # (D,)
    gx_mean = (grad_out * x_hat).mean(dim=0)  # (D,)
    grad_x = weight * inv_std * (grad_out - g_mean - x_hat * gx_mean)  # (B, D)
    return grad_x, grad_weight, grad_bias
