"""Train chapter 8's digit generator and its LeNet scorer, measure them, and save the checkpoint.

    python scripts/train_diffusion.py --out digits.pt [--steps 3000] [--threads 2] [--force]

It trains a class-conditional ``TinyUNet`` on the training split of the 8x8 digits (a few
minutes on two CPU cores) and a ``LeNet`` on the same split, scores generated digits with that
LeNet (``dlbook.digits.train_digits``), and writes ``--out`` atomically with
``dlbook.digits.save_trained_digits``. An existing file is refused unless ``--force``. The
book ships the result as ``dlbook/checkpoints/diffusion_digits.pt`` (listed in its manifest).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from dlbook.digits import DigitsRecipe, save_trained_digits, train_digits


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line: where to write, how many denoiser steps, how many threads."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True,
                        help="checkpoint path; an existing file is refused unless --force")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    parser.add_argument("--steps", type=int, default=DigitsRecipe().training.training.steps,
                        help="optimizer steps of the denoiser")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Train, save (refusing to overwrite unless --force), and print the metrics."""
    args = parse(argv)
    if args.out.exists() and not args.force:  # fail before minutes of training, not after
        raise SystemExit(f"{args.out} exists; pass --force to replace it")
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = DigitsRecipe()
    training = dataclasses.replace(recipe.training.training, steps=args.steps)
    recipe = dataclasses.replace(
        recipe, training=dataclasses.replace(recipe.training, training=training))
    trained = train_digits(recipe)
    save_trained_digits(args.out, model=trained.model, classifier=trained.classifier,
                        recipe=recipe, metrics=trained.metrics, force=args.force)
    print(json.dumps(trained.metrics, indent=2))


if __name__ == "__main__":
    main()
