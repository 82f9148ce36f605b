"""The best possible noise predictor for a finite data set, from Tweedie's formula.

When the data are the N points x0_i, the noised marginal ``q(x_t)`` is a mixture of N
Gaussians ``N(sqrt(abar_t) x0_i, (1 - abar_t) I)``. Its score has a closed form, and the
noise predictor that minimizes the denoising loss at step t is
``E[eps | x_t] = -sqrt(1 - abar_t) grad log q(x_t)`` (Vincent, 2011; Song et al., 2021).
A trained denoiser can be compared with it.
"""

from __future__ import annotations

import torch


def posterior_mean_x0(
    x_t: torch.Tensor, t: int, data: torch.Tensor, alpha_bar: torch.Tensor
) -> torch.Tensor:
    """``E[x_0 | x_t]`` (B, D) when x_0 is drawn uniformly from ``data`` (N, D): a
    softmax- weighted average of the data points, each weighted by how likely it is to
    have produced x_t (B, D) at step t (0-based) under ``alpha_bar`` (T,)."""
    if x_t.dim() != 2 or data.dim() != 2 or x_t.shape[1] != data.shape[1]:
        raise ValueError(
            f"need x_t (B, D) and data (N, D), got {tuple(x_t.shape)} and "
            f"{tuple(data.shape)}"
        )
    if not 0 <= t < len(alpha_bar):
        raise ValueError(f"t must be in [0, {len(alpha_bar)}), got {t}")
    ab = alpha_bar[t].to(x_t.dtype)
    sq_dist = torch.cdist(x_t, ab.sqrt() * data) ** 2  # (B, N)
    weights = torch.softmax(-sq_dist / (2 * (1 - ab)), dim=1)  # (B, N), rows sum to 1
    return weights @ data  # (B, D)


def ideal_noise_prediction(
    x_t: torch.Tensor, t: int, data: torch.Tensor, alpha_bar: torch.Tensor
) -> torch.Tensor:
    """``E[eps | x_t] = (x_t - sqrt(abar_t) E[x_0 | x_t]) / sqrt(1 - abar_t)``, which by
    Tweedie's formula equals ``-sqrt(1 - abar_t) grad log q(x_t)``: (B, D)."""
    ab = alpha_bar[t].to(x_t.dtype)
    return (x_t - ab.sqrt() * posterior_mean_x0(x_t, t, data, alpha_bar)) / (
        1 - ab
    ).sqrt()
