"""Denoising diffusion: noise schedules, the forward process, the noise-prediction loss,
DDPM and DDIM sampling, two small denoisers (an MLP for 2-D points, a U-Net for 8x8
digits) and a sliced Wasserstein distance to measure samples against data, and
``train_denoiser`` (through ``dlbook.train.fit``). Chapter 8's digit generator (its
recipe and checkpoint) is in ``dlbook.digits``.

Notation follows Ho et al. (2020): ``beta_t`` is the variance added at step t,
``alpha_t = 1 - beta_t`` and ``alpha_bar_t = prod_{s <= t} alpha_s``. The code indexes
steps 0, ..., T-1 where the paper writes 1, ..., T. A denoiser is any module called as
``model(x_t, t, y)`` that returns its estimate of the noise in ``x_t``; ``y`` holds
class labels (B,), with the label ``n_classes`` meaning "no label" for classifier-free
guidance, or prompts of tokens (B, L) (``dlbook.cross_attention``), where a prompt of
``n_classes`` tokens is the empty prompt.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from dlbook.train import History, Schedule, TrainConfig, fit
from dlbook.utils import (
    check_ids,
    check_int,
    check_positive_int,
    check_real,
    model_device,
)

SCHEDULES = ("linear", "cosine")


@dataclass(frozen=True)
class DiffusionConfig:
    """The forward process. Defaults are Ho et al. (2020): T = 1000, linear betas."""

    n_steps: int = 1000  # T, the number of noising steps
    # "linear" (Ho et al., 2020) or "cosine" (Nichol & Dhariwal, 2021)
    schedule: str = "linear"
    # linear: beta of the first step when T = 1000 (scaled by 1000 / T)
    beta_start: float = 1e-4
    # linear: beta of the last step when T = 1000 (scaled by 1000 / T)
    beta_end: float = 0.02
    cosine_s: float = 0.008  # cosine: offset that keeps the first betas from vanishing
    max_beta: float = 0.999  # cosine: clip, since the last beta of the raw formula is 1


def make_betas(config: DiffusionConfig) -> torch.Tensor:
    """The variances beta_0, ..., beta_{T-1} in float64, shape (T,).

    Linear: evenly spaced from beta_start to beta_end, both scaled by 1000 / T so that
    any T destroys the data about as completely (Nichol & Dhariwal, 2021, Sec. 3.2).
    Cosine: ``alpha_bar(t) = f(t) / f(0)`` with
    ``f(t) = cos^2((t / T + s) / (1 + s) * pi / 2)`` and
    ``beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}`` (their Eq. 17).
    """
    if not isinstance(config, DiffusionConfig):
        raise TypeError(
            f"config must be a DiffusionConfig, got {type(config).__name__}"
        )
    T = check_positive_int(config.n_steps, "n_steps")
    if config.schedule == "linear":
        scale = 1000 / T
        start, end = config.beta_start * scale, config.beta_end * scale
        if not 0 < start <= end < 1:
            raise ValueError(
                f"linear schedule needs 0 < beta_start <= beta_end and beta_end * 1000 "
                f"/ T < 1, "
                f"got beta_start={config.beta_start}, beta_end={config.beta_end}, T={T}"
            )
        return torch.linspace(start, end, T, dtype=torch.float64)
    if config.schedule == "cosine":
        if not 0 < config.max_beta < 1 or config.cosine_s < 0:
            raise ValueError(
                f"cosine schedule needs 0 < max_beta < 1 and cosine_s >= "
                f"0, got "
                f"max_beta={config.max_beta}, cosine_s={config.cosine_s}"
            )
        steps = torch.arange(T + 1, dtype=torch.float64) / T
        f = (
            torch.cos((steps + config.cosine_s) / (1 + config.cosine_s) * math.pi / 2)
            ** 2
        )
        alpha_bar = f / f[0]  # (T + 1,), alpha_bar[0] = 1 is "before the first step"
        return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=config.max_beta)
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {config.schedule!r}")


@dataclass(frozen=True)
class NoiseSchedule:
    """beta_t, alpha_t and alpha_bar_t as float32 tensors of shape (T,), on one
    device."""

    betas: torch.Tensor
    alphas: torch.Tensor
    alpha_bar: torch.Tensor

    @classmethod
    def from_config(cls, config: DiffusionConfig, device=None) -> NoiseSchedule:
        """Compute in float64 (the cumulative product of 1000 factors loses digits in
        float32), then store in float32."""
        betas = make_betas(config)
        alphas = 1 - betas
        alpha_bar = torch.cumprod(alphas, dim=0)
        return cls(
            *(
                v.to(device=device, dtype=torch.float32)
                for v in (betas, alphas, alpha_bar)
            )
        )

    @property
    def n_steps(self) -> int:
        return self.betas.shape[0]

    def to(self, device) -> NoiseSchedule:
        moved = (v.to(device) for v in (self.betas, self.alphas, self.alpha_bar))
        return NoiseSchedule(*moved)


def _check_steps(t: torch.Tensor, batch: int, n_steps: int) -> None:
    if not isinstance(t, torch.Tensor) or t.dtype != torch.int64 or t.shape != (batch,):
        got = (
            (t.dtype, tuple(t.shape))
            if isinstance(t, torch.Tensor)
            else type(t).__name__
        )
        raise ValueError(f"t must be an int64 tensor of shape ({batch},), got {got}")
    if batch and (t.min() < 0 or t.max() >= n_steps):
        raise ValueError(
            f"t must lie in [0, {n_steps - 1}], got values in "
            f"[{t.min().item()}, {t.max().item()}]"
        )


def _per_sample(values: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """values[t] reshaped to broadcast over x: (B, 1, ..., 1), on x's device."""
    return values.to(x.device)[t].view(-1, *([1] * (x.dim() - 1)))


def q_sample(
    x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor
) -> torch.Tensor:
    """Jump straight to step t of the forward process (Ho et al., 2020, Eq. 4):
    ``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise``.

    Args:
        x0: clean data, shape (B, ...). t: int64 steps, shape (B,).
        noise: standard normal, the shape of x0. alpha_bar: the schedule's (T,) tensor.
    """
    if noise.shape != x0.shape:
        raise ValueError(
            f"noise must have the shape of x0 {tuple(x0.shape)}, "
            f"got {tuple(noise.shape)}"
        )
    _check_steps(t, x0.shape[0], alpha_bar.shape[0])
    ab = _per_sample(alpha_bar, t, x0)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def q_step(
    x_prev: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, betas: torch.Tensor
) -> torch.Tensor:
    """One step of the forward process (Eq. 2):
    ``x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) noise``. Same shapes as
    ``q_sample``; iterating it from step 0 to t matches ``q_sample``."""
    if noise.shape != x_prev.shape:
        raise ValueError(
            f"noise must have the shape of x_prev {tuple(x_prev.shape)}, "
            f"got {tuple(noise.shape)}"
        )
    _check_steps(t, x_prev.shape[0], betas.shape[0])
    beta = _per_sample(betas, t, x_prev)
    return (1 - beta).sqrt() * x_prev + beta.sqrt() * noise


def _randn(shape, generator: torch.Generator | None, device) -> torch.Tensor:
    """Standard normal noise drawn on the generator's device, then moved to ``device``,
    so a CPU generator gives the same numbers whatever device the model is on."""
    where = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=where).to(device)


def _check_loss_inputs(x0, y, p_uncond: float, weighting: str) -> None:
    """diffusion_loss's arguments: a batch x0 (B, ...), labels or prompts y with B rows
    or None, a probability p_uncond and a known weighting."""
    check_real(p_uncond, "p_uncond", 0.0, 1.0)
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if not isinstance(x0, torch.Tensor) or x0.dim() < 2:
        raise ValueError(
            f"x0 must be a (B, ...) tensor, got {getattr(x0, 'shape', x0)!r}"
        )
    if y is not None and (
        not isinstance(y, torch.Tensor) or tuple(y.shape[:1]) != x0.shape[:1]
    ):
        raise ValueError(
            f"y must be a ({x0.shape[0]},) tensor of labels (or ({x0.shape[0]}, L) of "
            f"prompt tokens) like x0's batch, got "
            f"{tuple(getattr(y, 'shape', ())) or type(y).__name__}"
        )


def diffusion_loss(
    model: nn.Module,
    x0: torch.Tensor,
    schedule: NoiseSchedule,
    y: torch.Tensor | None = None,
    p_uncond: float = 0.0,
    generator: torch.Generator | None = None,
    prediction: str = "eps",
    weighting: str = "uniform",
    gamma: float = 5.0,
) -> torch.Tensor:
    """The denoising loss: by default the simplified objective (Ho et al., 2020,
    Eq. 14), ``E || eps - eps_theta(x_t, t) ||^2`` with t uniform and x_t from
    ``q_sample``; ``prediction`` changes the target and ``weighting`` the weight of
    each step.

    Args:
        x0: clean data, shape (B, ...). y: labels (B,), prompt tokens (B, L) or None.
        p_uncond: probability of replacing a label with the null label
            ``model.config.n_classes``, which trains the unconditional model used by
            classifier-free guidance.
        prediction: the network's target, "eps" (the default), "x0" or "v"
            (``prediction_target``).
        weighting: "uniform" (every step's squared error counts alike, L_simple) or
            "min_snr", each example's error times ``min_snr_weight`` with ``gamma``.
    """
    _check_loss_inputs(x0, y, p_uncond, weighting)
    B, device = x0.shape[0], x0.device
    where = generator.device if generator is not None else device
    t = torch.randint(0, schedule.n_steps, (B,), generator=generator, device=where).to(
        device
    )
    noise = _randn(x0.shape, generator, device)
    if y is not None and p_uncond > 0:
        drop = torch.rand(B, generator=generator, device=where).to(device) < p_uncond
        drop = drop.view(B, *([1] * (y.dim() - 1)))  # a whole prompt at once
        y = torch.where(drop, torch.full_like(y, model.config.n_classes), y)
    x_t = q_sample(x0, t, noise, schedule.alpha_bar)
    ab = _per_sample(schedule.alpha_bar, t, x0)  # (B, 1, ..., 1)
    target = prediction_target(x0, noise, ab, prediction)
    if weighting == "uniform":
        return F.mse_loss(model(x_t, t, y), target)
    weight = min_snr_weight(ab, prediction, gamma)
    return (weight * (model(x_t, t, y) - target) ** 2).mean()


PREDICTIONS = ("eps", "x0", "v")
WEIGHTINGS = ("uniform", "min_snr")


def _check_gamma(gamma: object, name: str) -> None:
    """Min-SNR's cap: a positive number, where infinity means no cap."""
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma > 0:
        raise ValueError(
            f"{name} must be a positive number (inf: no cap), got {gamma!r}"
        )


def min_snr_weight(ab: torch.Tensor, prediction: str, gamma: float) -> torch.Tensor:
    """Min-SNR-gamma (Hang et al., 2023): weight each step's error in x0 by
    ``min(SNR, gamma)`` with ``SNR = ab / (1 - ab)``, where the plain x0, eps and v
    losses weight it by 1, SNR and SNR + 1 (``prediction_target``). So the squared
    error of the network's own target is multiplied by ``min(SNR, gamma)`` for x0,
    ``min(SNR, gamma) / SNR`` for eps and ``min(SNR, gamma) / (SNR + 1)`` for v, as in
    the authors' code (``min_snr_`` and ``vmin_snr_`` in their
    ``gaussian_diffusion.py``). ab: the alpha_bar of each example's step, any shape.
    """
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
    _check_gamma(gamma, "gamma")
    snr = ab / (1 - ab)
    capped = snr.clamp(max=gamma)
    if prediction == "x0":
        return capped
    return capped / snr if prediction == "eps" else capped / (snr + 1)


def prediction_target(
    x0: torch.Tensor, noise: torch.Tensor, ab: torch.Tensor, prediction: str
) -> torch.Tensor:
    """What the network regresses: the noise ``eps`` (Ho et al., 2020), the clean data
    ``x0``, or ``v = sqrt(ab) eps - sqrt(1 - ab) x0`` (Salimans & Ho, 2022), with ab
    the alpha_bar of each example's step, broadcastable to x0."""
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
    if prediction == "eps":
        return noise
    if prediction == "x0":
        return x0
    return ab.sqrt() * noise - (1 - ab).sqrt() * x0


class NoiseFromPrediction(nn.Module):
    """A network that predicts x0 or v, read as a noise predictor for the samplers:
    ``eps = (x_t - sqrt(ab) x0_hat) / sqrt(1 - ab)`` or
    ``eps = sqrt(ab) v_hat + sqrt(1 - ab) x_t``."""

    def __init__(self, model: nn.Module, alpha_bar: torch.Tensor, prediction: str):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(
                f"prediction must be one of {PREDICTIONS}, got {prediction!r}"
            )
        self.model, self.prediction = model, prediction
        # on the model's device, where the samplers put t
        self.register_buffer("alpha_bar", alpha_bar.detach().to(model_device(model)))
        self.config = model.config

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None):
        """eps_theta(x_t, t, y) (B, ...) from the wrapped network's prediction."""
        out = self.model(x, t, y)
        ab = _per_sample(self.alpha_bar, t, x)
        if self.prediction == "eps":
            return out
        if self.prediction == "x0":
            return (x - ab.sqrt() * out) / (1 - ab).sqrt()
        return ab.sqrt() * out + (1 - ab).sqrt() * x


def predict_noise(
    model: nn.Module,
    x: torch.Tensor,
    t: torch.Tensor,
    y: torch.Tensor | None = None,
    guidance: float = 1.0,
) -> torch.Tensor:
    """eps_theta(x_t, t), with classifier-free guidance when ``guidance != 1`` (Ho &
    Salimans, 2022, Eq. 6 written with w = guidance - 1):
    ``eps_uncond + guidance (eps_cond - eps_uncond)``.
    """
    check_real(guidance, "guidance", 0.0)
    if y is None or guidance == 1.0:
        return model(x, t, y)
    null = torch.full_like(y, model.config.n_classes)
    # (2B, ...)
    both = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null]))
    eps_cond, eps_uncond = both.chunk(2)
    return eps_uncond + guidance * (eps_cond - eps_uncond)


def _check_sampling(model, shape, schedule, y, guidance) -> torch.device:
    if not isinstance(shape, tuple) or not shape:
        raise ValueError(
            f"shape must be a tuple of positive ints (B, ...), got {shape!r}"
        )
    for n in shape:
        check_positive_int(n, "every size in shape")
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(
            f"schedule must be a NoiseSchedule, got {type(schedule).__name__}"
        )
    if y is not None and (y.dtype != torch.int64 or tuple(y.shape[:1]) != shape[:1]):
        raise ValueError(
            f"y must be an int64 tensor of shape ({shape[0]},) (labels) or "
            f"({shape[0]}, L) (prompt tokens), got {y.dtype} {tuple(y.shape)}"
        )
    if y is not None and getattr(model.config, "n_classes", None) is None:
        raise ValueError("labels y were given, but the model is not class-conditional")
    check_real(guidance, "guidance", 0.0)
    return model_device(model)


def _x0_from_eps(x, eps, ab, clip):
    """Invert q_sample for x_0; optionally clip it to [-clip, clip] and recompute
    eps."""
    x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
    if clip is not None:
        x0 = x0.clamp(-clip, clip)
        eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
    return x0, eps


@torch.no_grad()
def ddpm_steps(
    model: nn.Module,
    shape: tuple,
    schedule: NoiseSchedule,
    *,
    generator: torch.Generator | None = None,
    y: torch.Tensor | None = None,
    guidance: float = 1.0,
    clip: float | None = None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Ancestral sampling (Ho et al., 2020, Algorithm 2), yielding ``(t, x_t)`` from
    ``(T, x_T ~ N(0, I))`` down to ``(0, x_0)``.

    Each step draws x_{t-1} from the Gaussian posterior q(x_{t-1} | x_t, x_0) with x_0
    replaced by the model's estimate (Eqs. 6-7), variance
    ``beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t``. ``clip`` bounds
    that estimate, e.g. 1 for data in [-1, 1].
    """
    device = _check_sampling(model, shape, schedule, y, guidance)
    s = schedule.to(device)
    x = _randn(shape, generator, device)
    yield s.n_steps, x
    for i in reversed(range(s.n_steps)):
        t = torch.full((shape[0],), i, dtype=torch.int64, device=device)
        ab, beta = s.alpha_bar[i], s.betas[i]
        ab_prev = s.alpha_bar[i - 1] if i > 0 else torch.ones_like(ab)
        x0, _ = _x0_from_eps(x, predict_noise(model, x, t, y, guidance), ab, clip)
        # the posterior mean at the last step is x0 itself: return it, no noise
        if i == 0:
            yield 0, x0
            return
        x = (ab_prev.sqrt() * beta * x0 + s.alphas[i].sqrt() * (1 - ab_prev) * x) / (
            1 - ab
        )
        x = x + ((1 - ab_prev) / (1 - ab) * beta).sqrt() * _randn(
            shape, generator, device
        )
        yield i, x


@torch.no_grad()
def ddim_steps(
    model: nn.Module,
    shape: tuple,
    schedule: NoiseSchedule,
    n_steps: int,
    *,
    generator: torch.Generator | None = None,
    y: torch.Tensor | None = None,
    guidance: float = 1.0,
    clip: float | None = None,
    eta: float = 0.0,
) -> Iterator[tuple[int, torch.Tensor]]:
    """DDIM sampling (Song et al., 2021, Eq. 12) on ``n_steps`` evenly spaced steps of
    the T-step schedule, yielding ``(t, x_t)`` as ``ddpm_steps`` does.

    ``x_prev = sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev - sigma^2) eps_hat + sigma z``
    with ``sigma = eta sqrt((1 - ab_prev) / (1 - ab)) sqrt(1 - ab / ab_prev)``: eta = 0
    is deterministic given x_T; eta = 1 matches DDPM's variance.
    """
    device = _check_sampling(model, shape, schedule, y, guidance)
    check_int(n_steps, "n_steps", 1, schedule.n_steps)
    check_real(eta, "eta", 0.0)
    s = schedule.to(device)
    times = (
        torch.linspace(s.n_steps - 1, 0, n_steps, dtype=torch.float64)
        .round()
        .long()
        .tolist()
    )
    x = _randn(shape, generator, device)
    yield s.n_steps, x
    for i, prev in zip(times, times[1:] + [-1]):
        t = torch.full((shape[0],), i, dtype=torch.int64, device=device)
        ab = s.alpha_bar[i]
        ab_prev = s.alpha_bar[prev] if prev >= 0 else torch.ones_like(ab)
        x0, eps = _x0_from_eps(x, predict_noise(model, x, t, y, guidance), ab, clip)
        sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).sqrt()
        x = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps
        if eta > 0 and prev >= 0:
            x = x + sigma * _randn(shape, generator, device)
        # x has the noise level of alpha_bar[prev]: the paper's step prev + 1
        yield prev + 1, x


def ddpm_sample(
    model: nn.Module, shape: tuple, schedule: NoiseSchedule, **kwargs
) -> torch.Tensor:
    """The final x_0 of ``ddpm_steps`` (same arguments), shape ``shape``."""
    return deque(ddpm_steps(model, shape, schedule, **kwargs), maxlen=1)[0][1]


def ddim_sample(
    model: nn.Module, shape: tuple, schedule: NoiseSchedule, n_steps: int, **kwargs
) -> torch.Tensor:
    """The final x_0 of ``ddim_steps`` (same arguments), shape ``shape``."""
    return deque(ddim_steps(model, shape, schedule, n_steps, **kwargs), maxlen=1)[0][1]


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of the step, as the Transformer's positions (Vaswani et al.,
    2017): ``[sin(t w_k), cos(t w_k)]`` with ``w_k = 10000^(-k / (dim / 2))``. t: (B,)
    -> (B, dim)."""
    check_positive_int(dim, "dim", minimum=2)
    if dim % 2:
        raise ValueError(f"dim must be even, got {dim}")
    if not isinstance(t, torch.Tensor) or t.dim() != 1:
        raise ValueError(
            f"t must be a (B,) tensor of steps, got {getattr(t, 'shape', t)!r}"
        )
    freqs = torch.exp(
        -math.log(10000) * torch.arange(dim // 2, device=t.device) / (dim // 2)
    )
    angles = t.float()[:, None] * freqs[None]  # (B, dim / 2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def _check_denoiser_steps(t: torch.Tensor, x: torch.Tensor) -> None:
    """A denoiser's steps t must be one per example: shape (B,) for x (B, ...)."""
    if not isinstance(t, torch.Tensor) or tuple(t.shape) != x.shape[:1]:
        raise ValueError(
            f"t must be a ({x.shape[0]},) tensor of steps, one per "
            f"example of x, "
            f"got {tuple(getattr(t, 'shape', ())) or type(t).__name__}"
        )


@dataclass(frozen=True)
class MLPDenoiserConfig:
    """A residual MLP that predicts the noise added to low-dimensional points."""

    data_dim: int = 2  # dimension of a data point
    hidden: int = 128  # width of every hidden layer
    n_blocks: int = 3  # residual blocks (Linear, SiLU, Linear)
    time_dim: int = 32  # size of the sinusoidal step embedding
    # unconditional; kept for the common denoiser interface
    n_classes: int | None = None

    def __post_init__(self) -> None:
        for name in ("data_dim", "hidden", "n_blocks", "time_dim"):
            check_positive_int(getattr(self, name), name)
        if self.time_dim % 2:
            raise ValueError(f"time_dim must be even, got {self.time_dim}")


def _config_or_default(config: Any, config_class: type) -> Any:
    """``config``, or ``config_class()`` for None; anything else is a TypeError."""
    if config is None:
        return config_class()
    if not isinstance(config, config_class):
        raise TypeError(
            f"config must be {config_class.__name__} or None, "
            f"got {type(config).__name__}"
        )
    return config


def embed_points_and_steps(config: Any) -> tuple[nn.Linear, nn.Sequential]:
    """The input layers of the 2-D denoisers (``MLPDenoiser`` and
    ``dlbook.cross_attention.PromptDenoiser``): ``embed_x`` maps points (B, data_dim)
    to (B, hidden); ``embed_t`` maps the steps' sinusoidal features (B, time_dim)
    through a small MLP to (B, hidden). ``config`` is either denoiser's config (any
    object with ``data_dim``, ``hidden`` and ``time_dim``)."""
    h = config.hidden
    embed_x = nn.Linear(config.data_dim, h)
    embed_t = nn.Sequential(nn.Linear(config.time_dim, h), nn.SiLU(), nn.Linear(h, h))
    return embed_x, embed_t


def residual_blocks(config: Any) -> nn.ModuleList:
    """The 2-D denoisers' ``n_blocks`` residual branches, each (SiLU, Linear, SiLU,
    Linear) at width ``hidden``; the caller adds each branch's output to its input.
    ``config`` is either denoiser's config (``hidden`` and ``n_blocks`` are read)."""
    h = config.hidden
    return nn.ModuleList(
        nn.Sequential(nn.SiLU(), nn.Linear(h, h), nn.SiLU(), nn.Linear(h, h))
        for _ in range(config.n_blocks)
    )


class MLPDenoiser(nn.Module):
    """eps_theta(x, t) for points: the step embedding is added to the input of every
    block."""

    def __init__(self, config: MLPDenoiserConfig | None = None):
        super().__init__()
        self.config = config = _config_or_default(config, MLPDenoiserConfig)
        self.embed_x, self.embed_t = embed_points_and_steps(config)
        self.blocks = residual_blocks(config)
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(config.hidden, config.data_dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None):
        """Points (B, data_dim) and steps (B,) -> predicted noise (B, data_dim)."""
        if x.dim() != 2 or x.shape[1] != self.config.data_dim:
            raise ValueError(
                f"x must have shape (B, {self.config.data_dim}), got {tuple(x.shape)}"
            )
        _check_denoiser_steps(t, x)
        if y is not None:
            raise ValueError("MLPDenoiser is unconditional; y must be None")
        temb = self.embed_t(timestep_embedding(t, self.config.time_dim))  # (B, hidden)
        h = self.embed_x(x)
        for block in self.blocks:
            h = h + block(h + temb)
        return self.out(h)


@dataclass(frozen=True)
class UNetConfig:
    """A two-level U-Net (Ronneberger et al., 2015) with residual blocks, as in DDPM,
    shrunk for 8x8 images."""

    in_channels: int = 1  # grey-scale images
    image_size: int = 8  # height and width, divisible by 2
    channels: tuple[int, int] = (32, 64)  # feature maps at full and at half resolution
    emb_dim: int = 64  # size of the step (and class) embedding
    groups: int = 8  # GroupNorm groups; must divide both channel counts
    # None for unconditional; label n_classes means "no label"
    n_classes: int | None = 10

    def __post_init__(self) -> None:
        for name in ("in_channels", "image_size", "emb_dim", "groups"):
            check_positive_int(getattr(self, name), name)
        if len(self.channels) != 2:
            raise ValueError(f"channels must be a pair of ints, got {self.channels!r}")
        for value in self.channels:
            check_positive_int(value, "channels")
        if self.emb_dim % 2:
            raise ValueError(f"emb_dim must be even, got {self.emb_dim}")
        if self.n_classes is not None:
            check_positive_int(self.n_classes, "n_classes")


class ResBlock(nn.Module):
    """``x + conv(act(norm(conv(act(norm(x))) + W emb))))`` (1x1 convolution on the
    shortcut when the width changes): the embedding shifts every channel by a learned
    amount."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int):
        super().__init__()
        self.norm1, self.conv1 = (
            nn.GroupNorm(groups, c_in),
            nn.Conv2d(c_in, c_out, 3, padding=1),
        )
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2, self.conv2 = (
            nn.GroupNorm(groups, c_out),
            nn.Conv2d(c_out, c_out, 3, padding=1),
        )
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        # (B, C_out, 1, 1) broadcast over H, W
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class TinyUNet(nn.Module):
    """eps_theta(x, t, y) for small images: a block at full resolution, a strided
    convolution down, a block at half resolution, then back up with skip connections
    (concatenated)."""

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        config = UNetConfig() if config is None else config
        if not isinstance(config, UNetConfig):
            raise TypeError(
                f"config must be a UNetConfig or None, got {type(config).__name__}"
            )
        c1, c2 = config.channels
        if c1 % config.groups or c2 % config.groups or config.image_size % 2:
            raise ValueError(
                f"groups must divide channels and image_size must be "
                f"even, got "
                f"groups={config.groups}, channels={config.channels}, "
                f"image_size={config.image_size}"
            )
        self.config, e = config, config.emb_dim
        self.embed_t = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        self.embed_y = (
            None if config.n_classes is None else nn.Embedding(config.n_classes + 1, e)
        )
        self.stem = nn.Conv2d(config.in_channels, c1, 3, padding=1)
        self.down1 = ResBlock(c1, c1, e, config.groups)
        self.downsample = nn.Conv2d(c1, c1, 3, stride=2, padding=1)
        self.down2 = ResBlock(c1, c2, e, config.groups)
        self.mid = ResBlock(c2, c2, e, config.groups)
        self.up2 = ResBlock(2 * c2, c2, e, config.groups)
        self.up1 = ResBlock(c2 + c1, c1, e, config.groups)
        self.out = nn.Sequential(
            nn.GroupNorm(config.groups, c1),
            nn.SiLU(),
            nn.Conv2d(c1, config.in_channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None):
        """Images (B, C, H, W), steps (B,), labels (B,) or None -> predicted noise (B,
        C, H, W). Without labels a conditional model uses the null label."""
        c, n = self.config, self.config.image_size
        if x.dim() != 4 or tuple(x.shape[1:]) != (c.in_channels, n, n):
            raise ValueError(
                f"x must have shape (B, {c.in_channels}, {n}, {n}), "
                f"got {tuple(x.shape)}"
            )
        _check_denoiser_steps(t, x)
        if y is not None and self.embed_y is not None:
            # label n_classes is the null label
            check_ids(y, c.n_classes + 1, "y", dim=1)
        emb = self.embed_t(timestep_embedding(t, c.emb_dim))  # (B, emb_dim)
        if self.embed_y is not None:
            emb = emb + self.embed_y(
                torch.full_like(t, c.n_classes) if y is None else y
            )
        elif y is not None:
            raise ValueError(
                "this TinyUNet is unconditional (n_classes=None); y must be None"
            )
        h1 = self.down1(self.stem(x), emb)  # (B, c1, H, W)
        h2 = self.down2(self.downsample(h1), emb)  # (B, c2, H/2, W/2)
        # (B, c2, H/2, W/2)
        h = self.up2(torch.cat([self.mid(h2, emb), h2], dim=1), emb)
        h = F.interpolate(h, scale_factor=2, mode="nearest")  # (B, c2, H, W)
        return self.out(self.up1(torch.cat([h, h1], dim=1), emb))


def sliced_wasserstein(
    a: torch.Tensor,
    b: torch.Tensor,
    n_projections: int = 256,
    generator: torch.Generator | None = None,
) -> float:
    """The sliced 2-Wasserstein distance between two point clouds (Bonneel et al.,
    2015): project both on random unit directions, where the 1-D distance compares
    sorted values (quantiles), and average the squared distances over directions before
    the square root.

    Args:
        a: points (N, D). b: points (M, D); with N != M both are compared at min(N, M)
            quantiles.
    """
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"a and b must be (N, D) and (M, D) with the same D, got "
            f"{tuple(a.shape)} and {tuple(b.shape)}"
        )
    check_positive_int(n_projections, "n_projections")
    a, b = a.double(), b.double().to(a.device)
    dirs = _randn((a.shape[1], n_projections), generator, a.device).double()
    dirs = dirs / dirs.norm(dim=0, keepdim=True)  # unit columns: (D, P)
    n = min(a.shape[0], b.shape[0])
    levels = (torch.arange(n, dtype=torch.float64, device=a.device) + 0.5) / n
    # quantiles: (n, P)
    qa = (a @ dirs).sort(dim=0).values[(levels * a.shape[0]).long()]
    qb = (b @ dirs).sort(dim=0).values[(levels * b.shape[0]).long()]
    return ((qa - qb) ** 2).mean().sqrt().item()


# ----- training a denoiser


@dataclass(frozen=True)
class DenoiserTrainConfig:
    """Minibatch training of a denoiser: AdamW and a cosine decay of the learning rate
    to 0."""

    training: TrainConfig = TrainConfig(
        steps=2000,
        batch_size=256,
        lr=2e-3,
        optimizer="adamw",
        schedule=Schedule(min_ratio=0.0),
    )
    # the loop: steps, examples per step (drawn with replacement), AdamW, schedule, seed
    # label dropout for classifier-free guidance (ignored without labels)
    p_uncond: float = 0.1
    # "uniform" (L_simple, Ho et al.) or "min_snr" (Hang et al., 2023), see
    # diffusion_loss; snr_gamma is min_snr's cap (their default 5)
    weighting: str = "uniform"
    snr_gamma: float = 5.0

    def __post_init__(self):
        if not isinstance(self.training, TrainConfig):
            raise TypeError(
                f"training must be a TrainConfig, got {type(self.training).__name__}"
            )
        if self.training.steps is None:
            raise ValueError(
                "training.steps must be set: examples are drawn without end"
            )
        if not 0.0 <= self.p_uncond <= 1.0:
            raise ValueError(f"p_uncond must be in [0, 1], got {self.p_uncond!r}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(
                f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}"
            )
        _check_gamma(self.snr_gamma, "snr_gamma")


def random_indices(
    n: int, batch_size: int, generator: torch.Generator, device: torch.device
) -> Iterator[torch.Tensor]:
    """An endless stream of ``batch_size`` example indices in [0, n), drawn with
    replacement."""
    while True:
        yield torch.randint(0, n, (batch_size,), generator=generator).to(device)


def with_ema(batches: Iterator, model: nn.Module, ema: AveragedModel) -> Iterator:
    """Pass ``batches`` on, updating ``ema`` from ``model`` before each one is used.

    ``fit`` takes one batch per step (``accum`` batches with accumulation, which then
    update ``accum`` times per step), so the k-th update sees the weights after k - 1
    steps; the caller makes the last update after training.
    """
    for batch in batches:
        ema.update_parameters(model)
        yield batch


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of ``model``'s weights (Ho et al., 2020, appendix
    B, use decay 0.9999): ``ema <- decay * ema + (1 - decay) * weights`` at every
    update."""
    check_real(decay, "decay", 0.0, 1.0, high_open=True)
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))


def train_denoiser(
    model: nn.Module,
    x0: torch.Tensor,
    schedule: NoiseSchedule,
    config: DenoiserTrainConfig = DenoiserTrainConfig(),
    y: torch.Tensor | None = None,
    ema: AveragedModel | None = None,
    prediction: str = "eps",
) -> History:
    """Minimize ``diffusion_loss`` on data x0 (N, ...) with labels y (N,) or None, on
    the model's device, with ``dlbook.train.fit``. Returns the History (``step_loss``:
    every step). With ``ema`` (from :func:`make_ema`), it is updated once per step and
    after the last. ``prediction`` is the network's target (see ``diffusion_loss``)."""
    if not isinstance(config, DenoiserTrainConfig):
        raise TypeError(
            f"config must be a DenoiserTrainConfig, got {type(config).__name__}"
        )
    if y is not None and (y.shape[:1] != x0.shape[:1] or y.dtype != torch.int64):
        raise ValueError(
            f"y must be an int64 tensor of shape ({x0.shape[0]},) (labels) or "
            f"({x0.shape[0]}, L) (prompt tokens), got {y.dtype} {tuple(y.shape)}"
        )
    device = next(model.parameters()).device
    x0, y, schedule = (
        x0.to(device),
        None if y is None else y.to(device),
        schedule.to(device),
    )
    # batches, steps and noise
    gen = torch.Generator().manual_seed(config.training.seed)

    def loss(model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
        # a random step and fresh noise for every example: one Monte Carlo term of
        # L_simple each
        return diffusion_loss(
            model,
            x0[idx],
            schedule,
            None if y is None else y[idx],
            config.p_uncond,
            generator=gen,
            prediction=prediction,
            weighting=config.weighting,
            gamma=config.snr_gamma,
        )

    batches = random_indices(x0.shape[0], config.training.batch_size, gen, device)
    if ema is not None:
        batches = with_ema(batches, model, ema)
    history = fit(model, batches, loss, config.training, desc="denoiser")
    if ema is not None:
        ema.update_parameters(model)  # include the last step
        ema.eval()
    model.eval()
    return history
