"""Flow matching (Lipman et al., 2023; rectified flow, Liu et al., 2023): learn the
velocity of a straight path from noise to data, and sample by integrating it.

A noise point ``x_0 ~ N(0, I)`` and a data point ``x_1`` are joined by the line
``x_t = (1 - t) x_0 + t x_1``, t in [0, 1], whose velocity is ``x_1 - x_0``. A network
``v_theta(x_t, t)`` regresses that velocity; its minimizer is the mean velocity of the
lines through ``x_t``, the vector field of an ODE ``dx/dt = v(x, t)`` that carries the
noise distribution to the data distribution. Sampling integrates it from t = 0 to 1 by
Euler steps. The networks are the chapter's denoisers: t is passed to them as
``t * time_scale``, the range of the diffusion steps their embedding was built for.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlbook.diffusion import DenoiserTrainConfig, random_indices
from dlbook.train import History, fit
from dlbook.utils import check_positive_int, check_real, make_generator, model_device

TIME_SCALE = 199.0  # t = 1 enters the network as the last of 200 diffusion steps


def flow_path(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The point at time t (B,) on the straight line from x0 to x1 (B, ...):
    ``(1 - t) x0 + t x1``."""
    if x0.shape != x1.shape or t.shape != x0.shape[:1]:
        raise ValueError(
            f"need x0, x1 of equal shape (B, ...) and t (B,), got {tuple(x0.shape)}, "
            f"{tuple(x1.shape)}, {tuple(t.shape)}"
        )
    t = t.view(-1, *([1] * (x0.dim() - 1)))  # (B, 1, ...)
    return (1 - t) * x0 + t * x1


def flow_matching_loss(
    model: nn.Module,
    x1: torch.Tensor,
    generator: torch.Generator | None = None,
    time_scale: float = TIME_SCALE,
) -> torch.Tensor:
    """Conditional flow matching: ``|| v_theta(x_t, t) - (x1 - x0) ||^2``, averaged,
    with x0 ~ N(0, I) and t ~ U(0, 1) drawn for each data point of x1 (B, ...)."""
    x0 = torch.randn(x1.shape, generator=generator).to(x1)  # dtype and device of x1
    t = torch.rand(x1.shape[0], generator=generator).to(x1)
    target = x1 - x0  # the velocity of the line
    return F.mse_loss(model(flow_path(x0, x1, t), t * time_scale), target)


@torch.no_grad()
def flow_sample(
    model: nn.Module,
    shape: tuple[int, ...],
    n_steps: int,
    generator: torch.Generator | None = None,
    time_scale: float = TIME_SCALE,
) -> torch.Tensor:
    """Integrate ``dx/dt = v_theta(x, t)`` from noise at t = 0 to t = 1 with
    ``n_steps`` Euler steps (one network call each): ``x <- x + v_theta(x, t) / n``."""
    check_positive_int(n_steps, "n_steps")
    check_real(time_scale, "time_scale", 0.0, low_open=True)
    device = model_device(model)
    model.eval()
    x = torch.randn(shape, generator=generator).to(device)
    for i in range(n_steps):
        t = torch.full((shape[0],), i / n_steps, device=device)
        x = x + model(x, t * time_scale) / n_steps
    return x


def train_flow_matching(
    model: nn.Module,
    x1: torch.Tensor,
    config: DenoiserTrainConfig | None = None,
) -> History:
    """Minimize ``flow_matching_loss`` on data x1 (N, ...) with ``dlbook.train.fit``,
    with the batches, steps and optimizer of ``config`` (as ``train_denoiser`` does for
    the noise-prediction loss; None: its defaults). Returns the History."""
    config = DenoiserTrainConfig() if config is None else config
    if not isinstance(config, DenoiserTrainConfig):
        raise TypeError(
            f"config must be a DenoiserTrainConfig, got {type(config).__name__}"
        )
    device = model_device(model)
    x1 = x1.to(device)
    gen = make_generator(config.training.seed)  # batches, noise and times

    def loss(model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
        return flow_matching_loss(model, x1[idx], generator=gen)

    batches = random_indices(x1.shape[0], config.training.batch_size, gen, device)
    history = fit(model, batches, loss, config.training, desc="flow matching")
    model.eval()
    return history
