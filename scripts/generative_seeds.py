"""Re-train chapter 13's scoreboard generators on other training seeds and score them.

    OMP_NUM_THREADS=1 python scripts/generative_seeds.py --seeds 1 2 \
        --out scripts/generative_seeds.json [--scale 1.0]

The shipped checkpoint (``dlbook/checkpoints/generative_digits.pt``) is training seed 0.
For each seed given, this script trains the conditional VAE, GAN and flow with
``scripts/train_generative.py``'s recipe (``scaled_recipe``; about 8 CPU-minutes a seed at
one thread), samples and judges them exactly as the chapter's scoreboard does (sampling
seed 1, 360 digits, the same judges), and adds the shipped seed-0 models and chapter 8's
diffusion model (which does not depend on these seeds) for comparison. It writes one JSON
file: per training seed and family, the intended-digit accuracy, the Fréchet distance,
the memorisation ratio and the held-out bits per pixel where the family has one. The
chapter's margins on the scoreboard are set from this spread. ``--scale 0.01`` is a quick
check of the script, not a result.

    OMP_NUM_THREADS=1 python scripts/generative_seeds.py --ring --seeds 0 1 2 \
        --out scripts/ring_seeds.json [--threads T]

re-runs the chapter's mode-collapse test instead (``dlbook.gan.ring_gan``): the plain
GAN, the same GAN with the minibatch-standard-deviation feature, the plain GAN with
equal learning rates (the control: ``lr_d=None``, both 1e-3) and exercise 5's PacGAN
(``pack=4``), on each seed given, with the wall-clock and CPU seconds (``process_time``)
of each run, and adds the result under the key ``threads=T`` to ``--out`` (T: the threads
torch used; ``--threads`` sets it with ``torch.set_num_threads``, since OMP_NUM_THREADS
above the core count can give torch fewer threads than asked). The JSON's ``command``
lists the thread counts actually run. On a busy machine, add OMP_WAIT_POLICY=PASSIVE
for T > 1, or the threads' spin-waits make a run take many minutes; it changes the
speed, not the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripts/ for its recipe
from train_generative import scaled_recipe  # noqa: E402

from dlbook.data import load_digits  # noqa: E402
from dlbook.digits import load_trained_digits  # noqa: E402
from dlbook.gan import RING_TRAINING, ring_gan  # noqa: E402
from dlbook.scoreboard import (  # noqa: E402
    FAMILIES,
    TrainedGenerators,
    heldout_bits_per_dim,
    load_generators,
    sample_digits,
    score_generator,
    train_generators,
)

SAMPLE_SEED = 1  # the chapter's sampling seed (1 + DLBOOK_SEED_OFFSET, offset 0)


def score_all(trained: TrainedGenerators, diffusion, families=FAMILIES) -> dict:
    """The chapter's scoreboard rows for ``families``: 36 digits of each class."""
    digits = load_digits()
    x_train, _ = digits.train.tensors
    x_val, _ = digits.val.tensors
    x_test, y_test = digits.test.tensors
    labels = torch.arange(10).repeat(36)
    rows = {}
    for family in families:
        images = sample_digits(family, labels, trained, diffusion, seed=SAMPLE_SEED)
        rows[family] = score_generator(
            images, labels, diffusion.classifier, x_test, x_train, x_val
        )
        if family in ("VAE", "flow"):
            rows[family]["bits"] = heldout_bits_per_dim(family, trained, x_test, y_test)
    return rows


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line: which seeds, where to write, the step scale."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=Path("scripts/generative_seeds.json"))
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every step count")
    parser.add_argument("--ring", action="store_true",
                        help="run the mode-collapse test instead of the scoreboard")
    parser.add_argument("--threads", type=int, default=None,
                        help="--ring only: torch.set_num_threads(T) before the runs")
    return parser.parse_args(argv)


# the chapter's ring runs and exercise 5's: name -> ring_gan's keyword arguments
RING_RUNS = {
    "plain": {},
    "minibatch std": {"batch_std": True},
    "plain, equal rates": {"config": replace(RING_TRAINING, lr_d=None)},
    "pack 4": {"pack": 4},
}


def ring_seeds(seeds: list[int], out: Path) -> None:
    """The chapter's mode-collapse runs (``RING_RUNS``) on each seed at this thread
    count, merged into ``out`` under the key ``threads=T``."""
    result = json.loads(out.read_text()) if out.exists() else {}
    runs = {}
    for seed in seeds:
        for name, kwargs in RING_RUNS.items():
            start, cpu = time.perf_counter(), time.process_time()
            points, cover = ring_gan(seed=seed, **kwargs)
            runs[f"seed {seed}, {name}"] = {
                **cover,
                "spread": points.std(dim=0).mean().item(),
                "seconds": time.perf_counter() - start,
                "cpu_seconds": time.process_time() - cpu,
            }
            print(seed, name, json.dumps(runs[f"seed {seed}, {name}"]), flush=True)
    # the threads torch used, which can be fewer than OMP_NUM_THREADS asks for
    result[f"threads={torch.get_num_threads()}"] = runs
    run = sorted(k.split("=")[1] for k in result if k.startswith("threads="))
    result["command"] = (
        "OMP_NUM_THREADS=1 python scripts/generative_seeds.py --ring --seeds 0 1 2 "
        "--out scripts/ring_seeds.json --threads T; run with T = " + ", ".join(run)
    )
    out.write_text(json.dumps(result, indent=1))


def main(argv: list[str] | None = None) -> None:
    """Train each seed, score it, and write the JSON after every seed (so a long run
    that is stopped keeps what it finished)."""
    args = parse(argv)
    if args.ring:
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        ring_seeds(args.seeds, args.out)
        return
    diffusion = load_trained_digits()
    result = {
        "command": f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} "
        "python scripts/generative_seeds.py " + " ".join(sys.argv[1:]),
        "scale": args.scale,
        "sample_seed": SAMPLE_SEED,
        "seeds": {"0 (shipped)": score_all(load_generators(), diffusion)},
    }
    for seed in args.seeds:
        start = time.perf_counter()
        trained = train_generators(scaled_recipe(seed, args.scale))
        rows = score_all(trained, diffusion, families=("VAE", "GAN", "flow"))
        rows["diffusion"] = result["seeds"]["0 (shipped)"]["diffusion"]
        rows["seconds"] = time.perf_counter() - start
        result["seeds"][str(seed)] = rows
        args.out.write_text(json.dumps(result, indent=1))
        print(seed, json.dumps(rows), flush=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
