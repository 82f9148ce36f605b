"""Variational autoencoders (Kingma & Welling, 2014; Rezende et al., 2014) on the 8x8
digits.

The encoder ``q(z | x)`` is a diagonal Gaussian, the prior ``p(z)`` is standard normal
and the decoder ``p(x | z)`` is a categorical distribution over the 17 grey levels (0,
..., 16) of each pixel of scikit-learn's digits, so the ELBO bounds the log-probability
of the discrete images themselves. With ``n_classes > 0`` encoder and decoder also see a
one-hot label: a conditional VAE. Also here: the Gaussian KL in closed form, the
reparameterised ELBO, the importance-weighted bound (Burda et al., 2016), the
score-function gradient estimator set against the reparameterised one, and the count of
active latent units (Burda et al., 2016, Sec. 5.2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

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

N_LEVELS = 17  # scikit-learn's digits store pixels as integers 0..16


@dataclass(frozen=True)
class VAEConfig:
    """An MLP VAE for flattened images; the paper's MNIST models used one hidden layer
    of 500."""

    n_pixels: int = 64  # input dimension D (8 x 8)
    n_levels: int = N_LEVELS  # grey levels per pixel in the categorical decoder
    latent_dim: int = 16  # d, the size of z
    hidden: int = 256  # width of the two hidden layers of encoder and decoder
    # > 0: encoder and decoder see a one-hot label (a conditional VAE)
    n_classes: int = 0
    # weight of the KL term (Higgins et al., 2017); 1 is the true ELBO
    beta: float = 1.0

    def __post_init__(self) -> None:
        for name in ("n_pixels", "latent_dim", "hidden"):
            check_positive_int(getattr(self, name), name)
        check_positive_int(self.n_levels, "n_levels", minimum=2)
        if not isinstance(self.n_classes, int) or self.n_classes < 0:
            raise ValueError(f"n_classes must be an int >= 0, got {self.n_classes!r}")
        check_real(self.beta, "beta", 0)


def to_levels(x: torch.Tensor, n_levels: int = N_LEVELS) -> torch.Tensor:
    """Pixels in [0, 1] (as ``load_digits`` gives them) to integer levels
    0..n_levels-1."""
    if x.min() < 0 or x.max() > 1:
        raise ValueError(
            f"x must hold pixels in [0, 1], got values in [{x.min():.3f}, "
            f"{x.max():.3f}]"
        )
    return (x * (n_levels - 1)).round().long()


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL( N(mu, diag(exp(logvar))) || N(0, I) ) per example, (B,), from (B, d):
    ``0.5 * sum(mu^2 + sigma^2 - 1 - log sigma^2)``
    (Kingma & Welling, 2014, Appendix B)."""
    if mu.shape != logvar.shape:
        raise ValueError(
            f"mu and logvar must have one shape, got "
            f"{tuple(mu.shape)} and {tuple(logvar.shape)}"
        )
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(dim=-1)


def reparameterize(
    mu: torch.Tensor, logvar: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """z = mu + sigma * eps with eps ~ N(0, I): the sample is a differentiable function
    of (mu, sigma), so gradients flow through it to the encoder."""
    if noise.shape != mu.shape:
        raise ValueError(
            f"noise must have the shape of mu {tuple(mu.shape)}, "
            f"got {tuple(noise.shape)}"
        )
    return mu + (0.5 * logvar).exp() * noise


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, n_out),
    )


class VAE(nn.Module):
    """Encoder x -> (mu, log sigma^2) and decoder z -> logits over grey levels, per
    pixel."""

    def __init__(self, config: VAEConfig | None = None):
        super().__init__()
        config = VAEConfig() if config is None else config
        if not isinstance(config, VAEConfig):
            raise TypeError(f"config must be a VAEConfig, got {type(config).__name__}")
        self.config = config
        c = config
        self.encoder = _mlp(c.n_pixels + c.n_classes, c.hidden, 2 * c.latent_dim)
        self.decoder = _mlp(
            c.latent_dim + c.n_classes, c.hidden, c.n_pixels * c.n_levels
        )

    def _with_label(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        label = one_hot_labels(y, self.config.n_classes, h.shape[0], "VAE")
        return h if label is None else torch.cat([h, label.to(h.dtype)], dim=1)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None):
        """Pixels (B, D) in [0, 1] -> mu, logvar, each (B, d)."""
        mu, logvar = self.encoder(self._with_label(x, y)).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Latents (B, d) -> logits (B, D, n_levels) of p(x | z)."""
        logits = self.decoder(self._with_label(z, y))
        # (B, D, L)
        return logits.view(z.shape[0], self.config.n_pixels, self.config.n_levels)

    def mean_image(
        self, z: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The decoder's expected pixel values E[x | z], (B, D) in [0, 1]."""
        levels = torch.linspace(0, 1, self.config.n_levels, device=z.device)
        return self.decode(z, y).softmax(dim=-1) @ levels

    @torch.no_grad()
    def sample(
        self,
        n: int,
        y: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """n images (n, D): z from the prior, shown as the decoder's mean image."""
        z = base_noise(n, self.config.latent_dim, generator, model_device(self))
        return self.mean_image(z, y)


def log_likelihood(logits: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """log p(x | z) per example, (B,): the sum over pixels of the log-probability of
    each pixel's grey level under the categorical logits (B, D, L)."""
    # (B, D)
    log_p = logits.log_softmax(dim=-1).gather(-1, levels.unsqueeze(-1)).squeeze(-1)
    return log_p.sum(dim=1)


def elbo(
    model: VAE,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> dict:
    """One-sample reparameterised ELBO terms per example (Kingma & Welling, 2014,
    Sec. 2.4): ``reconstruction = log p(x | z)`` with ``z = mu + sigma * eps`` and
    ``kl = KL(q || p)``; the ELBO is ``reconstruction - kl``.
    x: pixels (B, D) in [0, 1]; noise: eps, (B, d)."""
    mu, logvar = model.encode(x, y)
    if noise is None:
        noise = torch.randn_like(mu)
    z = reparameterize(mu, logvar, noise)
    levels = to_levels(x, model.config.n_levels)  # (B, D) integer grey levels
    reconstruction = log_likelihood(model.decode(z, y), levels)
    kl = gaussian_kl(mu, logvar)
    return {"reconstruction": reconstruction, "kl": kl, "elbo": reconstruction - kl}


def vae_loss(model: VAE, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The negative beta-ELBO averaged over a batch (x,) or (x, y): what training
    minimizes."""
    x, y = labelled_batch(model, batch)
    terms = elbo(model, x.flatten(1), y)
    return -(terms["reconstruction"] - model.config.beta * terms["kl"]).mean()


def train_vae(
    model: VAE, x: torch.Tensor, config: TrainConfig, y: torch.Tensor | None = None
) -> History:
    """Minimize ``vae_loss`` on pixels x (N, ...) in [0, 1] (and labels y for a
    conditional VAE) with ``dlbook.train.fit``; the batch order and the noise follow
    ``config.seed``."""
    return fit_tensors(model, x, y, vae_loss, config, desc="VAE")


@torch.no_grad()
def iwae_bound(
    model: VAE,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    k: int = 100,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The importance-weighted bound (Burda et al., 2016, Sec. 3) per example, (B,):
    ``log (1/k) sum_i p(x, z_i) / q(z_i | x)`` with z_1..z_k from q. k = 1 is the ELBO;
    the bound rises towards log p(x) as k grows."""
    check_positive_int(k, "k")
    mu, logvar = model.encode(x, y)  # (B, d)
    B, d = mu.shape
    eps = torch.randn(k, B, d, generator=generator).to(mu.device)
    z = mu + (0.5 * logvar).exp() * eps  # (k, B, d)
    levels = to_levels(x, model.config.n_levels).repeat(k, 1)  # (k * B, D)
    ys = None if y is None else y.repeat(k)
    log_px_z = log_likelihood(model.decode(z.flatten(0, 1), ys), levels).view(k, B)
    log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)  # (k, B)
    log_qz = -0.5 * (eps.pow(2) + logvar + math.log(2 * math.pi)).sum(-1)  # (k, B)
    return torch.logsumexp(log_px_z + log_pz - log_qz, dim=0) - math.log(k)


@torch.no_grad()
def active_units(
    model: VAE, x: torch.Tensor, y: torch.Tensor | None = None, threshold: float = 0.01
) -> int:
    """Latent dimensions whose posterior mean varies with x:
    ``Cov_x(E_q[z_j | x]) > threshold`` (Burda et al., 2016, Sec. 5.2). A collapsed
    dimension copies the prior for every input."""
    mu, _ = model.encode(x, y)
    return int((mu.var(dim=0) > threshold).sum())


def gradient_estimates(
    f: Callable[[torch.Tensor], torch.Tensor],
    mu: float,
    sigma: float,
    n: int,
    generator: torch.Generator,
) -> dict:
    """n one-sample estimates of d/d mu E_{z ~ N(mu, sigma^2)}[f(z)], by two estimators.

    Score function (REINFORCE): ``f(z) d/dmu log q(z) = f(z) (z - mu) / sigma^2``;
    it needs only values of f. Reparameterisation: ``z = mu + sigma eps`` and
    ``d f(z) / d mu = f'(z)``, computed by autograd. Both are unbiased; returns each
    estimator's n values, shape (n,).
    """
    check_positive_int(n, "n")
    check_real(sigma, "sigma", 0, low_open=True)
    eps = torch.randn(n, generator=generator, dtype=torch.float64)
    z = mu + sigma * eps
    score = f(z) * (z - mu) / sigma**2
    z_r = (mu + sigma * eps).requires_grad_(True)
    (reparameterised,) = torch.autograd.grad(f(z_r).sum(), z_r)  # f'(z_i); dz/dmu = 1
    return {"score_function": score, "reparameterised": reparameterised}
