"""Seed and thread spread of chapter 8's cross-attention experiment (the chapter's cells,
its quantities and one more: the unseen prompt with classifier-free guidance w = 3).

Run from the repository root, for THREADS in 1 2 4 and OFFSET in 0 1 2:
    OMP_NUM_THREADS=1 .venv/bin/python scripts/check_cross_attention.py THREADS OFFSET
"""

import sys
import time

import torch
from moons_setup import moons_config, moons_schedule, threads_and_offset

from dlbook import set_seed
from dlbook.cross_attention import (
    PromptDenoiser,
    PromptDenoiserConfig,
    grid_centres,
    grid_mixture,
    grid_prompts,
    nearest_cell,
)
from dlbook.diffusion import ddim_sample, q_sample, train_denoiser

threads, offset = threads_and_offset(sys.argv[1:])
schedule_2d = moons_schedule()
held_out = (2, 2)
cells = [(c, r) for r in range(3) for c in range(3) if (c, r) != held_out]
grid_x, grid_y = grid_mixture(cells, 250, torch.Generator().manual_seed(0))
set_seed(0)
prompted = PromptDenoiser(PromptDenoiserConfig(hidden=64, n_blocks=3, n_heads=2))
config_prompt = moons_config(steps=500, batch_size=256)  # p_uncond 0.1, the default
tic = time.process_time()
train_denoiser(prompted, grid_x, schedule_2d, config_prompt, y=grid_y)
train_cpu = time.process_time() - tic
all_cells = [(c, r) for r in range(3) for c in range(3)]
n_per = 100
asked = grid_prompts(
    torch.tensor([c for c, _ in all_cells]).repeat_interleave(n_per),
    torch.tensor([r for _, r in all_cells]).repeat_interleave(n_per),
)


def draw(y, w=1.0):
    return ddim_sample(
        prompted,
        (len(asked), 2),
        schedule_2d,
        50,
        y=y,
        guidance=w,
        generator=torch.Generator().manual_seed(3),
    )


samples = {"prompt": draw(asked), "empty prompt": draw(None), "w=3": draw(asked, 3.0)}
target = grid_centres(asked)
hit = {
    name: ((x - target).norm(dim=1) < 1.0).view(9, n_per).float().mean(1)
    for name, x in samples.items()
}
unseen = all_cells.index(held_out)
seen = [i for i in range(9) if i != unseen]
landed = nearest_cell(samples["prompt"][unseen * n_per : (unseen + 1) * n_per])
right, top = (landed[:, 0] == 2).float().mean(), (landed[:, 1] == 5).float().mean()
shares = ((landed[:, 0] == 2) | (landed[:, 1] == 5)).float().mean().item()
with torch.no_grad():
    steps = torch.full((len(asked),), 100)
    x_mid = q_sample(
        samples["prompt"],
        steps,
        torch.randn(asked.shape, generator=torch.Generator().manual_seed(8)),
        schedule_2d.alpha_bar,
    )
    _, layer_weights = prompted.with_weights(x_mid, steps, asked)
on_column = torch.cat([w[:, :, 0].view(9, n_per, -1).mean(1) for w in layer_weights], 1)
sharp = ((on_column < 0.1) | (on_column > 0.9)).float().mean().item()
fixed = int(((on_column > 0.5).all(0) | (on_column < 0.5).all(0)).sum())
print(
    f"threads {threads} offset {offset} train {train_cpu:.1f} s CPU | seen "
    f"{hit['prompt'][seen].mean():.3f} (min {hit['prompt'][seen].min():.2f}) | empty "
    f"{hit['empty prompt'][seen].mean():.3f} | unseen {hit['prompt'][unseen]:.2f}, "
    f"w=3 {hit['w=3'][unseen]:.2f} | shares {shares:.2f} (right {right:.2f}, "
    f"top {top:.2f}) | sharp {sharp:.2f} fixed heads {fixed}",
    flush=True,
)
