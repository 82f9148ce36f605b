r"""Train chapter 8's moons denoiser with L_simple and with Min-SNR-5 weighting and record
how each samples, on several seeds and thread counts.

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python scripts/min_snr_seeds.py \
        --seeds 0 1 2 --threads 1 2 4 --out dlbook/records/min_snr_seeds.json

(the shipped record was made in three parts, joined with ``--merge``; its "command" says
how. ``OMP_WAIT_POLICY=PASSIVE`` keeps the 2- and 4-thread runs from spinning on a busy
machine; it does not change the numbers.)

For each thread count (``torch.set_num_threads``) and seed offset (``DLBOOK_SEED_OFFSET``:
it shifts the initialization through ``set_seed``, and the script adds it to the training
seed, which draws the batches, steps and noise), it trains the chapter's 2-D denoiser
(``MLPDenoiser``, hidden 64, 3 blocks; 700 AdamW steps of 1,024 points at 1e-2 with a
cosine decay to 0, T = 200, linear schedule; ``moons_setup``) twice from the same initial
weights and on the same batches, changing one thing: ``DenoiserTrainConfig.weighting``,
"uniform" (L_simple, the chapter's model) or "min_snr" (Hang et al., 2023, gamma = 5). It
also trains both for 200 steps (the same recipe, decayed to 0 over 200 steps), since the
paper's claim is faster convergence. Each model is scored by the sliced Wasserstein
distance of 2,000 DDPM samples (and of 2,000 DDIM samples, 10 steps) to the 2,000
held-out points, and by its noise error on the held-out points at every other step.
Chapter 8 reads the record, and ``tests/test_min_snr.py`` re-trains one run and compares
it with the record.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import torch
from moons_setup import moons, moons_config, moons_schedule

from dlbook.diffusion import (
    WEIGHTINGS,
    MLPDenoiser,
    MLPDenoiserConfig,
    ddim_sample,
    ddpm_sample,
    q_sample,
    sliced_wasserstein,
    train_denoiser,
)
from dlbook.utils import seed_offset, set_seed

ERROR_STEPS = list(range(0, 200, 2))  # where the noise error is measured


def train_and_score(weighting: str, steps: int) -> dict:
    """One chapter model trained with ``weighting`` for ``steps`` steps, and its scores."""
    moons_train, moons_test = moons()
    schedule = moons_schedule()
    # the training seed (batches, steps, noise) moves with the offset, 0 at offset 0
    config = replace(moons_config(steps=steps, seed=seed_offset()), weighting=weighting)
    set_seed(0)  # the chapter's denoiser_2d starts from these weights
    net = MLPDenoiser(MLPDenoiserConfig(hidden=64, n_blocks=3))
    tic = time.perf_counter()
    history = train_denoiser(net, moons_train, schedule, config)
    seconds = time.perf_counter() - tic

    def sw(points: torch.Tensor) -> float:
        return sliced_wasserstein(
            points, moons_test, 500, generator=torch.Generator().manual_seed(0)
        )

    drawn = ddpm_sample(
        net, (2000, 2), schedule, generator=torch.Generator().manual_seed(3)
    )
    drawn_ddim = ddim_sample(
        net, (2000, 2), schedule, 10, generator=torch.Generator().manual_seed(3)
    )
    gen, eps_mse = torch.Generator().manual_seed(7), []
    with torch.no_grad():
        for t in ERROR_STEPS:  # the chapter's error-by-step measurement
            eps = torch.randn(moons_test.shape, generator=gen)
            steps_t = torch.full((len(moons_test),), t)
            x_t = q_sample(moons_test, steps_t, eps, schedule.alpha_bar)
            eps_mse.append(((net(x_t, steps_t) - eps) ** 2).mean().item())
    return {
        "sw_ddpm": sw(drawn),
        "sw_ddim10": sw(drawn_ddim),
        "eps_mse": eps_mse,
        "loss": sum(history.step_loss[-50:]) / 50,
        "seconds": seconds,
    }


def merge(paths: list[Path], out: Path) -> None:
    """Join records made by separate invocations (e.g. one per thread count) into one,
    with every command that made them."""
    records = [json.loads(path.read_text()) for path in paths]
    merged = {
        "command": " && ".join(r["command"] for r in records)
        + " && python scripts/min_snr_seeds.py --merge "
        + " ".join(path.name for path in paths)
        + f" --out {out}",
        "error_steps": records[0]["error_steps"],
        "runs": {},
    }
    for r in records:
        if r["error_steps"] != merged["error_steps"]:
            raise ValueError("records measured at different steps cannot be merged")
        merged["runs"].update(r["runs"])
    out.write_text(json.dumps(merged, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    """Train every (threads, seed offset, steps, weighting) and write the JSON record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--steps", type=int, nargs="+", default=[700, 200])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--merge", type=Path, nargs="+", help="only join these records into --out"
    )
    args = parser.parse_args(argv)
    if args.merge:
        merge(args.merge, args.out)
        return
    record = {
        "command": "OMP_NUM_THREADS=1 python scripts/min_snr_seeds.py --seeds "
        + " ".join(map(str, args.seeds))
        + " --threads "
        + " ".join(map(str, args.threads))
        + " --steps "
        + " ".join(map(str, args.steps))
        + f" --out {args.out}",
        "error_steps": ERROR_STEPS,
        "runs": {},
    }
    for threads in args.threads:
        torch.set_num_threads(threads)
        for offset in args.seeds:
            os.environ["DLBOOK_SEED_OFFSET"] = str(offset)
            for steps in args.steps:
                for weighting in WEIGHTINGS:
                    key = f"{threads}/{offset}/{steps}/{weighting}"
                    run = train_and_score(weighting, steps)
                    record["runs"][key] = run
                    short = {k: v for k, v in run.items() if k != "eps_mse"}
                    print(key, json.dumps(short), flush=True)
                    # written after every run, so an interrupted job leaves what it did
                    args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
