"""Normalizing flows: RealNVP's affine coupling layers (Dinh et al., 2017) and exact
likelihood.

A flow is an invertible map ``z = f(x)`` onto a standard normal base, trained by the
change of variables formula ``log p(x) = log N(f(x); 0, I) + log |det df/dx|``. A
coupling layer keeps the coordinates that a binary mask selects and transforms the
others by a scale and a shift that depend only on the kept ones, so its Jacobian is
triangular: its log-determinant is the sum of the log-scales, and its inverse costs one
pass. With ``n_classes > 0`` the scale-and-shift networks also see a one-hot label (a
conditional flow). For images in [0, 1] a fixed ``logit_transform`` first maps the
(dequantised) pixels to the real line, as in the paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from dlbook.conditioning import (
    base_noise,
    fit_tensors,
    labelled_batch,
    one_hot_labels,
)
from dlbook.train import History, TrainConfig
from dlbook.utils import check_positive_int, check_real, model_device


@dataclass(frozen=True)
class FlowConfig:
    """A RealNVP of ``n_layers`` affine couplings with alternating masks. The paper used
    deep convolutional ResNets for s and t and multi-scale squeezing; small MLPs suit
    these inputs."""

    dim: int = 2  # D, the data dimension
    n_layers: int = 8  # coupling layers; consecutive layers use complementary masks
    hidden: int = 64  # width of the two hidden layers of each scale-and-shift network
    n_classes: int = 0  # > 0: condition every coupling on a one-hot label
    # "alternate" (even/odd coordinates) or "checkerboard" (square images)
    mask: str = "alternate"

    def __post_init__(self) -> None:
        check_positive_int(self.dim, "dim", minimum=2)
        check_positive_int(self.n_layers, "n_layers")
        check_positive_int(self.hidden, "hidden")
        if not isinstance(self.n_classes, int) or self.n_classes < 0:
            raise ValueError(f"n_classes must be an int >= 0, got {self.n_classes!r}")
        if self.mask not in ("alternate", "checkerboard"):
            raise ValueError(
                f"mask must be 'alternate' or 'checkerboard', got {self.mask!r}"
            )
        side = math.isqrt(self.dim)
        if self.mask == "checkerboard" and side * side != self.dim:
            raise ValueError(f"a checkerboard mask needs a square dim, got {self.dim}")


def make_mask(config: FlowConfig, layer: int) -> torch.Tensor:
    """The (D,) float mask of coupling ``layer``: 1 marks the coordinates it keeps."""
    index = torch.arange(config.dim)
    if config.mask == "checkerboard":
        side = math.isqrt(config.dim)
        index = index // side + index % side  # row + column
    return ((index + layer) % 2 == 0).float()


class AffineCoupling(nn.Module):
    """y = m * x + (1 - m) * (x * exp(s(m * x)) + t(m * x))
    (Dinh et al., 2017, Eq. 9)."""

    def __init__(self, mask: torch.Tensor, hidden: int, n_classes: int = 0):
        super().__init__()
        dim = mask.numel()
        self.register_buffer("mask", mask)
        self.net = nn.Sequential(
            nn.Linear(dim + n_classes, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 2 * dim),
        )
        self.scale = nn.Parameter(torch.zeros(dim))  # s = scale * tanh(raw): bounded
        nn.init.zeros_(self.net[-1].weight)  # start at the identity map
        nn.init.zeros_(self.net[-1].bias)

    def _s_t(self, kept: torch.Tensor, label: torch.Tensor | None):
        h = kept if label is None else torch.cat([kept, label], dim=1)
        raw_s, t = self.net(h).chunk(2, dim=1)  # (B, D) each
        s = self.scale * torch.tanh(raw_s)
        return s * (1 - self.mask), t * (1 - self.mask)  # kept coordinates: s = t = 0

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None):
        """x (B, D) -> y (B, D) and ``log |det dy/dx|`` (B,): the sum of s over the
        changed coordinates."""
        s, t = self._s_t(x * self.mask, label)
        return x * torch.exp(s) + t, s.sum(dim=1)

    def inverse(
        self, y: torch.Tensor, label: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x = (y - t) * exp(-s): the kept coordinates are unchanged, so s and t are
        known."""
        s, t = self._s_t(y * self.mask, label)
        return (y - t) * torch.exp(-s)


class RealNVP(nn.Module):
    """A stack of affine couplings onto a standard normal base distribution."""

    def __init__(self, config: FlowConfig | None = None):
        super().__init__()
        config = FlowConfig() if config is None else config
        if not isinstance(config, FlowConfig):
            raise TypeError(f"config must be a FlowConfig, got {type(config).__name__}")
        self.config = config
        self.layers = nn.ModuleList(
            AffineCoupling(make_mask(config, i), config.hidden, config.n_classes)
            for i in range(config.n_layers)
        )

    def _label(self, y: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        return one_hot_labels(y, self.config.n_classes, batch, "flow")

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):
        """x (B, D) -> z = f(x) (B, D) and ``log |det df/dx|`` (B,), summed over the
        layers."""
        label = self._label(y, x.shape[0])
        log_det = torch.zeros(x.shape[0], device=x.device)
        for layer in self.layers:
            x, layer_log_det = layer(x, label)
            log_det = log_det + layer_log_det
        return x, log_det

    def inverse(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """x = f^{-1}(z): the layers undone in reverse order."""
        label = self._label(y, z.shape[0])
        for layer in reversed(self.layers):
            z = layer.inverse(z, label)
        return z

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Exact log p(x) (B,) by the change of variables:
        ``log N(f(x); 0, I) + log |det df/dx|``."""
        z, log_det = self(x, y)
        log_base = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(dim=1)
        return log_base + log_det

    @torch.no_grad()
    def sample(
        self,
        n: int,
        y: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """n samples (n, D): z from the base, pushed through the inverse."""
        z = base_noise(n, self.config.dim, generator, model_device(self))
        return self.inverse(z, y)


def logit_transform(x: torch.Tensor, alpha: float = 0.05):
    """Pixels x in [0, 1] -> u = logit(alpha + (1 - 2 alpha) x) and ``log |du/dx|`` per
    example.

    Dinh et al. (2017, Sec. 4.1) model the logit instead of x, so the flow's base covers
    the whole real line; alpha keeps u finite at x = 0 and 1. (They use alpha + (1 -
    alpha) x; the symmetric form here maps [0, 1] onto an interval centred on 0.)
    Returns u (B, D) and the log-determinant (B,).
    """
    check_real(alpha, "alpha", 0, 0.5, low_open=True, high_open=True)
    p = alpha + (1 - 2 * alpha) * x
    u = torch.log(p) - torch.log1p(-p)
    log_det = (math.log(1 - 2 * alpha) - torch.log(p) - torch.log1p(-p)).sum(dim=1)
    return u, log_det


def logit_inverse(u: torch.Tensor, alpha: float = 0.05) -> torch.Tensor:
    """The inverse of ``logit_transform``: pixels in [0, 1] (clamped) from u."""
    return ((torch.sigmoid(u) - alpha) / (1 - 2 * alpha)).clamp(0, 1)


def dequantize(
    levels: torch.Tensor, n_levels: int, generator: torch.Generator | None = None
):
    """Integer pixels 0..n_levels-1 -> x = (k + u) / n_levels with u ~ U(0, 1): a
    continuous density on x gives a lower bound on the probability of the integers
    (Theis et al., 2016), ``log P(k) >= E_u[log p(x)] - D log n_levels``."""
    noise = torch.rand(levels.shape, generator=generator).to(levels.device)
    return (levels.float() + noise) / n_levels


def image_log_prob(
    model: RealNVP, x: torch.Tensor, y: torch.Tensor | None = None, alpha: float = 0.05
) -> torch.Tensor:
    """log p(x) (B,) of dequantised pixels x (B, D) in (0, 1): the flow models the
    logit."""
    u, log_det = logit_transform(x, alpha)
    return model.log_prob(u, y) + log_det


def flow_loss(model: RealNVP, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Mean negative log-likelihood of a batch (x,) or (x, y) of real vectors."""
    x, y = labelled_batch(model, batch)
    return -model.log_prob(x, y).mean()


def image_flow_loss(
    model: RealNVP, batch: tuple[torch.Tensor, ...], n_levels: int = 17
) -> torch.Tensor:
    """Mean negative log-likelihood of integer pixels (B, D) (and labels), dequantised
    afresh at every call, so the flow never sees the same continuous point twice."""
    x, y = labelled_batch(model, batch)
    return -image_log_prob(model, dequantize(x, n_levels), y).mean()


def train_flow(
    model: RealNVP,
    x: torch.Tensor,
    config: TrainConfig,
    y: torch.Tensor | None = None,
    n_levels: int | None = None,
) -> History:
    """Maximum likelihood on x (N, D) with ``dlbook.train.fit``; batches follow
    config.seed. With ``n_levels``, x holds integer pixels, dequantised and
    logit-transformed per batch."""
    loss = (
        flow_loss if n_levels is None else partial(image_flow_loss, n_levels=n_levels)
    )
    return fit_tensors(model, x, y, loss, config, desc="flow")


def bits_per_dim(log_prob: torch.Tensor, dim: int) -> float:
    """Mean negative log-likelihood in bits per dimension: -log2 p / D."""
    return float(-log_prob.detach().mean() / (dim * math.log(2)))
