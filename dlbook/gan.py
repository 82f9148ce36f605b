"""Generative adversarial networks (Goodfellow et al., 2014): the losses, a DCGAN-style
pair for the 8x8 digits (Radford et al., 2016), small MLP pairs for 2-D data, the
gradient penalty of WGAN-GP (Gulrajani et al., 2017) and the alternating training loop.

The discriminator returns a logit ``l`` with ``D(x) = sigmoid(l)``. Generators return
data in the range their data uses (``tanh``: [-1, 1] for the digits). Every module is
called as ``model(inputs, y)``, with ``y`` the class labels of a conditional GAN or
None.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dlbook.conditioning import one_hot_labels
from dlbook.utils import (
    check_positive_int,
    check_real,
    model_device,
    seed_offset,
    set_seed,
)

GAN_LOSSES = ("minimax", "non_saturating", "wgan_gp")


def discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor
) -> torch.Tensor:
    """-[log D(x) + log(1 - D(G(z)))], averaged: the discriminator's side of the game
    (Goodfellow et al., 2014, Eq. 1), as binary cross-entropy on logits."""
    return F.binary_cross_entropy_with_logits(
        real_logits, torch.ones_like(real_logits)
    ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def generator_loss(
    fake_logits: torch.Tensor, kind: str = "non_saturating"
) -> torch.Tensor:
    """The generator's loss on D's logits l for its samples, averaged.

    ``"minimax"``: minimize log(1 - D(G(z))) = -softplus(l), the game as written; its
    gradient vanishes when D rejects the samples confidently, as early in training.
    ``"non_saturating"``: minimize -log D(G(z)) = softplus(-l)
    (Goodfellow et al., 2014, Sec. 3).
    ``"wgan_gp"``: minimize -l, the critic's score (Gulrajani et al., 2017, Alg. 1).
    """
    if kind == "minimax":
        return -F.softplus(fake_logits).mean()
    if kind == "non_saturating":
        return F.softplus(-fake_logits).mean()
    if kind == "wgan_gp":
        return -fake_logits.mean()
    raise ValueError(f"kind must be one of {GAN_LOSSES}, got {kind!r}")


def gradient_penalty(
    critic: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    y: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """E[(||grad_x critic(x_hat)|| - 1)^2] at random points x_hat between real and fake
    samples (Gulrajani et al., 2017, Sec. 4): a soft version of the 1-Lipschitz
    constraint."""
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    mix = torch.rand(shape, generator=generator).to(real.device)
    x_hat = (mix * real + (1 - mix) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat, y).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


@dataclass(frozen=True)
class DCGANConfig:
    """A DCGAN-style pair for 8x8 images: strided (transposed) convolutions, batch norm,
    ReLU in the generator and LeakyReLU(0.2) in the discriminator, tanh output (Radford
    et al., 2016)."""

    latent_dim: int = 32  # size of z
    width: int = 32  # channels of the 8x8 stage; the 4x4 stage has twice as many
    # > 0: a conditional GAN (Mirza & Osindero, 2014); 0: unconditional
    n_classes: int = 10

    def __post_init__(self) -> None:
        check_positive_int(self.latent_dim, "latent_dim")
        check_positive_int(self.width, "width")
        if not isinstance(self.n_classes, int) or self.n_classes < 0:
            raise ValueError(f"n_classes must be an int >= 0, got {self.n_classes!r}")


class DCGANGenerator(nn.Module):
    """z (B, latent_dim) [+ label] -> Linear -> (2w, 4, 4) -> ConvTranspose ->
    (w, 8, 8) -> a 3x3 convolution and tanh -> image (B, 1, 8, 8)."""

    def __init__(self, config: DCGANConfig | None = None):
        super().__init__()
        self.config = c = config or DCGANConfig()
        self.project = nn.Sequential(
            nn.Linear(c.latent_dim + c.n_classes, 2 * c.width * 16),
            nn.Unflatten(1, (2 * c.width, 4, 4)),  # (B, 2w, 4, 4)
            nn.BatchNorm2d(2 * c.width),
            nn.ReLU(),
        )
        self.up = nn.Sequential(
            nn.ConvTranspose2d(2 * c.width, c.width, 4, stride=2, padding=1),  # 8x8
            nn.BatchNorm2d(c.width),
            nn.ReLU(),
            nn.Conv2d(c.width, 1, 3, padding=1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        label = one_hot_labels(y, self.config.n_classes, z.shape[0], "generator")
        h = z if label is None else torch.cat([z, label], dim=1)
        return self.up(self.project(h))  # (B, 1, 8, 8) in [-1, 1]


class DCGANDiscriminator(nn.Module):
    """image (B, 1, 8, 8) [+ label maps] -> strided convs to (2w, 2, 2) -> one logit."""

    def __init__(self, config: DCGANConfig | None = None):
        super().__init__()
        self.config = c = config or DCGANConfig()
        self.net = nn.Sequential(
            nn.Conv2d(1 + c.n_classes, c.width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(c.width, 2 * c.width, 4, stride=2, padding=1),
            nn.BatchNorm2d(2 * c.width),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(2 * c.width * 4, 1),
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        label = one_hot_labels(y, self.config.n_classes, x.shape[0], "discriminator")
        if label is not None:  # the label as constant feature maps, one per class
            x = torch.cat(
                [x, label[:, :, None, None].expand(-1, -1, *x.shape[2:])], dim=1
            )
        return self.net(x).squeeze(1)  # (B,) logits


class MLPGenerator(nn.Module):
    """z (B, latent_dim) -> a point (B, dim), for 2-D toy data."""

    def __init__(self, latent_dim: int = 2, hidden: int = 128, dim: int = 2):
        super().__init__()
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, dim),
        )

    def forward(self, z: torch.Tensor, y: None = None) -> torch.Tensor:
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """Points (B, dim) -> logits (B / pack,), for 2-D toy data.

    With ``pack = m > 1`` the discriminator judges m samples at once, concatenated
    (PacGAN, Lin et al., 2018): a set of m near-identical samples is easy to tell from m
    real ones, so a generator that drops modes is penalized. Real and fake batches are
    packed alike.

    With ``batch_std=True`` it also sees one number about the whole batch: the standard
    deviation of each coordinate over the batch, averaged over the coordinates, appended
    to every row (the *minibatch standard deviation* of Karras et al., 2018, Sec. 3, a
    simple form of the minibatch discrimination of Salimans et al., 2016). A collapsed
    batch has a small spread and is told from a real one by that number alone.
    """

    def __init__(
        self, hidden: int = 128, dim: int = 2, pack: int = 1, batch_std: bool = False
    ):
        super().__init__()
        self.pack = check_positive_int(pack, "pack")
        self.batch_std = batch_std
        self.net = nn.Sequential(
            nn.Linear(dim * pack + batch_std, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor, y: None = None) -> torch.Tensor:
        if x.shape[0] % self.pack:
            raise ValueError(
                f"the batch ({x.shape[0]}) must be a multiple of pack ({self.pack})"
            )
        h = x.reshape(x.shape[0] // self.pack, -1)  # (B / pack, dim * pack)
        # one feature: the spread of the whole batch, the same for every row
        if self.batch_std:
            spread = x.std(dim=0).mean().expand(h.shape[0], 1)
            h = torch.cat([h, spread], dim=1)
        return self.net(h).squeeze(1)  # (B / pack,)


@dataclass(frozen=True)
class GANTrainConfig:
    """Alternating updates. Defaults follow DCGAN: Adam, lr 2e-4, beta_1 = 0.5."""

    steps: int = 2000  # generator updates
    batch_size: int = 64  # real and fake examples per update
    lr: float = 2e-4  # Adam's learning rate: G's, and D's unless lr_d is set
    lr_d: float | None = None  # the discriminator's learning rate; None: the same as lr
    # Adam's decay rates (WGAN-GP used (0, 0.9))
    betas: tuple[float, float] = (0.5, 0.999)
    loss: str = "non_saturating"  # one of GAN_LOSSES
    n_critic: int = 1  # discriminator updates per generator update (WGAN-GP used 5)
    gp_weight: float = 10.0  # lambda of the gradient penalty ("wgan_gp" only)
    seed: int = 0  # seeds the noise and the real batches

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "n_critic"):
            check_positive_int(getattr(self, name), name)
        check_real(self.lr, "lr", 0, low_open=True)
        if self.lr_d is not None:
            check_real(self.lr_d, "lr_d", 0, low_open=True)
        check_real(self.gp_weight, "gp_weight", 0)
        if self.loss not in GAN_LOSSES:
            raise ValueError(f"loss must be one of {GAN_LOSSES}, got {self.loss!r}")


@dataclass
class GANHistory:
    """One entry per generator update."""

    d_loss: list[float] = field(default_factory=list)  # discriminator (critic) loss
    g_loss: list[float] = field(default_factory=list)  # generator loss
    # mean D(x) on real data (logit for WGAN)
    d_real: list[float] = field(default_factory=list)
    d_fake: list[float] = field(default_factory=list)  # mean D(G(z)) (logit for WGAN)
    seconds: float = 0.0


def _discriminator_step(
    G, D, opt_d, real, y, config, gen
) -> tuple[float, torch.Tensor, torch.Tensor]:
    z = torch.randn(real.shape[0], z_dim(G), generator=gen).to(real.device)
    with torch.no_grad():
        fake = G(z, y)
    real_logits, fake_logits = D(real, y), D(fake, y)
    if config.loss == "wgan_gp":  # the critic maximizes E[D(x)] - E[D(G(z))]
        loss = (
            fake_logits.mean()
            - real_logits.mean()
            + config.gp_weight * gradient_penalty(D, real, fake, y, gen)
        )
    else:
        loss = discriminator_loss(real_logits, fake_logits)
    opt_d.zero_grad(set_to_none=True)
    loss.backward()
    opt_d.step()
    return loss.item(), real_logits.detach(), fake_logits.detach()


def train_gan(
    G: nn.Module,
    D: nn.Module,
    sample_real: Callable[[int, torch.Generator], tuple],
    config: GANTrainConfig,
) -> GANHistory:
    """Alternate ``n_critic`` discriminator updates and one generator update, ``steps``
    times.

    A GAN is two models with two optimizers and two losses, so it is not one ``fit``
    call; this loop is the book's one exception for adversarial training.
    ``sample_real(batch_size, generator)`` returns real data (B, ...) and labels (B,) or
    None.
    """
    if not isinstance(config, GANTrainConfig):
        raise TypeError(f"config must be a GANTrainConfig, got {type(config).__name__}")
    device = model_device(G)
    gen = torch.Generator().manual_seed(config.seed)
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr, betas=config.betas)
    lr_d = config.lr if config.lr_d is None else config.lr_d
    opt_d = torch.optim.Adam(D.parameters(), lr=lr_d, betas=config.betas)
    history, start = GANHistory(), time.perf_counter()
    to_prob = (lambda v: v) if config.loss == "wgan_gp" else torch.sigmoid
    G.train()
    D.train()
    for _ in range(config.steps):
        for _ in range(config.n_critic):
            real, y = sample_real(config.batch_size, gen)
            real, y = real.to(device), None if y is None else y.to(device)
            d_loss, real_logits, fake_logits = _discriminator_step(
                G, D, opt_d, real, y, config, gen
            )
        z = torch.randn(config.batch_size, z_dim(G), generator=gen).to(device)
        g_loss = generator_loss(D(G(z, y), y), config.loss)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()  # also fills D's .grad; opt_d zeroes it before its next step
        opt_g.step()
        history.d_loss.append(d_loss)
        history.g_loss.append(g_loss.item())
        history.d_real.append(to_prob(real_logits).mean().item())
        history.d_fake.append(to_prob(fake_logits).mean().item())
    G.eval()
    D.eval()
    history.seconds = time.perf_counter() - start
    return history


def z_dim(G: nn.Module) -> int:
    """The latent size of a generator of this module."""
    return G.config.latent_dim if hasattr(G, "config") else G.latent_dim


def ring_of_gaussians(
    n: int,
    generator: torch.Generator,
    n_modes: int = 8,
    radius: float = 2.0,
    std: float = 0.02,
) -> torch.Tensor:
    """n points (n, 2) from an equal mixture of Gaussians on a circle (Metz et al.,
    2017)."""
    check_positive_int(n, "n")
    centers = ring_centers(n_modes, radius)
    which = torch.randint(0, n_modes, (n,), generator=generator)
    return centers[which] + std * torch.randn(n, 2, generator=generator)


def ring_centers(n_modes: int = 8, radius: float = 2.0) -> torch.Tensor:
    """The (n_modes, 2) centres of ``ring_of_gaussians``."""
    check_positive_int(n_modes, "n_modes")
    angles = 2 * math.pi * torch.arange(n_modes) / n_modes
    return radius * torch.stack([angles.cos(), angles.sin()], dim=1)


def modes_covered(
    samples: torch.Tensor,
    centers: torch.Tensor,
    radius: float,
    min_fraction: float = 0.02,
) -> dict:
    """Which modes the samples cover. A sample is *good* if it lies within ``radius`` of
    a centre (Srivastava et al., 2017, use three standard deviations); a mode is
    *covered* if at least ``min_fraction`` of all samples are good samples of it.
    Returns the number of covered modes and the fraction of good samples."""
    check_real(radius, "radius", 0, low_open=True)
    check_real(min_fraction, "min_fraction", 0, 1)
    distance, nearest = torch.cdist(samples, centers).min(dim=1)
    good = distance < radius
    per_mode = torch.bincount(nearest[good], minlength=len(centers)).float() / len(
        samples
    )
    return {
        "covered": int((per_mode >= min_fraction).sum()),
        "good_fraction": good.float().mean().item(),
    }


# Chapter 13's mode-collapse test: the generator is the faster player (D learns at a
# tenth of G's rate), which lets it chase the discriminator from one spot to the next.
RING_TRAINING = GANTrainConfig(steps=1000, batch_size=256, lr=1e-3, lr_d=1e-4)


def ring_gan(
    batch_std: bool = False,
    pack: int = 1,
    std: float = 0.1,
    config: GANTrainConfig = RING_TRAINING,
    seed: int = 0,
    n_samples: int = 2000,
) -> tuple[torch.Tensor, dict]:
    """Train an MLP GAN (2-D noise, two hidden layers of 128 in both players) on
    ``ring_of_gaussians(std=std)`` and count the modes its samples cover.

    Only the discriminator's input depends on ``batch_std`` and ``pack``: the
    generator's initial weights (``set_seed(seed)``), the data, the noise and the
    recipe are the same, so two calls that differ in them compare one thing. Returns
    ``n_samples`` samples (n_samples, 2) and ``modes_covered`` at radius 3 std.
    """
    check_real(std, "std", 0, low_open=True)
    set_seed(seed)
    G = MLPGenerator(latent_dim=2, hidden=128)
    D = MLPDiscriminator(hidden=128, pack=pack, batch_std=batch_std)
    train_gan(
        G,
        D,
        lambda n, gen: (ring_of_gaussians(n, gen, std=std), None),
        replace(config, seed=seed + seed_offset()),
    )
    with torch.no_grad():
        z = torch.randn(n_samples, 2, generator=torch.Generator().manual_seed(5))
        points = G(z)
    return points, modes_covered(points, ring_centers(), radius=3 * std)
