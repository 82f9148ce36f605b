"""Seed and thread spread of chapter 8's comparison of prediction targets (eps, x0, v)
on the moons: the noise error at t = 1, the x0 error at t = T and the sliced
Wasserstein distance of DDPM samples (and of DDIM with 5 and 50 steps).

Run from the repository root, for THREADS in 1 2 4 and OFFSET in 0 1 2:
    OMP_NUM_THREADS=1 .venv/bin/python scripts/check_prediction_targets.py THREADS OFFSET
"""

import sys

import torch
from moons_setup import moons, moons_config, moons_schedule, threads_and_offset

from dlbook import set_seed
from dlbook.diffusion import (
    MLPDenoiser,
    MLPDenoiserConfig,
    NoiseFromPrediction,
    ddim_sample,
    ddpm_sample,
    q_sample,
    sliced_wasserstein,
    train_denoiser,
)

threads_and_offset(sys.argv[1:])
moons_train, moons_test = moons()
schedule = moons_schedule()
config = moons_config()


def sw(pts):
    return sliced_wasserstein(
        pts, moons_test, n_projections=500, generator=torch.Generator().manual_seed(0)
    )


for prediction in ("eps", "x0", "v"):
    set_seed(0)
    net = MLPDenoiser(MLPDenoiserConfig(hidden=64, n_blocks=3))
    train_denoiser(net, moons_train, schedule, config, prediction=prediction)
    model = NoiseFromPrediction(net, schedule.alpha_bar, prediction)
    gen = torch.Generator().manual_seed(7)
    eps_error, x0_error = [], []
    with torch.no_grad():
        for t in (0, 5, 190, 199):
            eps = torch.randn(moons_test.shape, generator=gen)
            steps = torch.full((2000,), t)
            x_t = q_sample(moons_test, steps, eps, schedule.alpha_bar)
            ab = schedule.alpha_bar[t].item()
            error = ((model(x_t, steps) - eps) ** 2).mean().item()
            eps_error.append(round(error, 4))
            x0_error.append(round(error * (1 - ab) / ab, 3))
    quality = {
        f"ddim{k}": round(
            sw(
                ddim_sample(
                    model,
                    (2000, 2),
                    schedule,
                    k,
                    generator=torch.Generator().manual_seed(3),
                )
            ),
            3,
        )
        for k in (5, 50)
    }
    quality["ddpm"] = round(
        sw(
            ddpm_sample(
                model, (2000, 2), schedule, generator=torch.Generator().manual_seed(3)
            )
        ),
        3,
    )
    print(
        prediction,
        "eps error t=1,6,191,200",
        eps_error,
        "x0 error",
        x0_error,
        quality,
        flush=True,
    )
