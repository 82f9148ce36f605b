"""What chapter 8's seed-and-thread check scripts share: the command line THREADS OFFSET,
the chapter's standardized moons, its T = 200 schedule and its moons training recipe.

Imported by scripts/check_prediction_targets.py, scripts/check_cross_attention.py and
scripts/min_snr_seeds.py (scripts run as ``python scripts/NAME.py`` find it beside them).
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Sequence

import torch
from sklearn.datasets import make_moons

from dlbook.diffusion import DenoiserTrainConfig, DiffusionConfig, NoiseSchedule
from dlbook.train import Schedule, TrainConfig


def threads_and_offset(argv: Sequence[str]) -> tuple[int, int]:
    """Read ``THREADS OFFSET`` from a check script's arguments, set PyTorch's intra-op
    threads (a script may; a chapter must not) and ``DLBOOK_SEED_OFFSET``, which
    ``dlbook.set_seed`` adds to every seed."""
    if len(argv) != 2:
        raise SystemExit(f"usage: THREADS OFFSET, got {list(argv)}")
    threads, offset = int(argv[0]), int(argv[1])
    torch.set_num_threads(threads)
    os.environ["DLBOOK_SEED_OFFSET"] = str(offset)
    return threads, offset


def moons() -> tuple[torch.Tensor, torch.Tensor]:
    """The chapter's standardized moons: 2,000 training and 2,000 held-out points."""
    points, _ = make_moons(4000, noise=0.05, random_state=0)
    points = torch.tensor(points, dtype=torch.float32)
    points = (points - points.mean(0)) / points.std(0)
    return points[:2000], points[2000:]


def moons_schedule() -> NoiseSchedule:
    """The chapter's ``schedule_2d``: T = 200, linear."""
    return NoiseSchedule.from_config(DiffusionConfig(n_steps=200))


def moons_config(**changes) -> DenoiserTrainConfig:
    """The chapter's ``config_2d`` (700 AdamW steps of 1,024 points at 1e-2, cosine
    decay to 0), with ``changes`` to its ``TrainConfig`` (e.g. ``steps``, ``seed``)."""
    training = TrainConfig(
        steps=700,
        batch_size=1024,
        lr=1e-2,
        optimizer="adamw",
        schedule=Schedule(min_ratio=0.0),
        progress=False,
    )
    return DenoiserTrainConfig(training=replace(training, **changes))
