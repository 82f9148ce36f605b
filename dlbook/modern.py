"""Two parts of today's GPTs that differ from GPT-2's: RMSNorm and the SwiGLU
feed-forward layer.

LLaMA (Touvron et al., 2023) and most open models since use both.
``GPTConfig(norm="rmsnorm")`` and ``GPTConfig(mlp="swiglu")`` switch a GPT to them; the
tests compare them with ``torch.nn.RMSNorm`` and with the feed-forward layer of
``transformers``' LLaMA.
"""

from __future__ import annotations

import torch
from torch import nn

from dlbook.utils import check_positive_int, check_real


class RMSNorm(nn.Module):
    """Root-mean-square normalization (Zhang and Sennrich, 2019):
    ``x / sqrt(mean(x^2) + eps) * g``, over the last dimension.

    Layer norm without the mean: no centring and no bias, so one statistic fewer per
    token and ``d`` parameters instead of ``2 d``.
    """

    def __init__(self, d_model: int, eps: float = 1e-6):
        super().__init__()
        check_positive_int(d_model, "d_model")
        self.eps = check_real(eps, "eps", 0.0, low_open=True)
        self.weight = nn.Parameter(torch.ones(d_model))  # the gain g

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., d_model) -> (..., d_model)."""
        rms = x.pow(2).mean(dim=-1, keepdim=True).add(self.eps).sqrt()  # (..., 1)
        return x / rms * self.weight


class SwiGLU(nn.Module):
    """The gated feed-forward layer ``W_2 (SiLU(W_g x) * (W_u x))`` (Shazeer, 2020), no
    biases.

    Three matrices instead of two, so LLaMA shrinks the hidden width from ``4 d`` to
    about ``8 d / 3`` to keep the parameter count: ``3 d h`` against ``8 d^2``.
    """

    def __init__(self, d_model: int, d_hidden: int, dropout: float = 0.0):
        super().__init__()
        check_positive_int(d_model, "d_model")
        check_positive_int(d_hidden, "d_hidden")
        self.gate = nn.Linear(d_model, d_hidden, bias=False)  # W_g
        self.up = nn.Linear(d_model, d_hidden, bias=False)  # W_u
        # W_2 (named as in FeedForward)
        self.proj = nn.Linear(d_hidden, d_model, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, d_model) -> (B, T, d_model)."""
        hidden = nn.functional.silu(self.gate(x)) * self.up(x)  # (B, T, d_hidden)
        return self.dropout(self.proj(hidden))


def swiglu_width(d_model: int) -> int:
    """LLaMA's hidden width for a SwiGLU layer that replaces a 4 d MLP: 2/3 of 4 d,
    rounded up to a multiple of 8."""
    check_positive_int(d_model, "d_model")
    return 8 * -(-(8 * d_model) // 24)
