"""Train chapter 8's digit generator and its LeNet scorer, measure them, and save the checkpoint.

    python scripts/train_diffusion.py --out digits.pt [--steps 3000] [--threads 2] [--force]

It trains a class-conditional ``TinyUNet`` on the training split of the 8x8 digits (a few
minutes on two CPU cores) and a ``LeNet`` on the same split, scores generated digits with that
LeNet (``dlbook.digits.train_digits``), and writes ``--out`` atomically with
``dlbook.digits.save_trained_digits``. An existing file is refused unless ``--force``. The
book ships the result as ``dlbook/checkpoints/diffusion_digits.pt`` (listed in its manifest).
"""

from __future__ import annotations

import dataclasses
import json

from dlbook.cli import parse_script_args
from dlbook.digits import DigitsRecipe, save_trained_digits, train_digits

OPTIONS = {  # besides --out, --force and --threads (dlbook.cli)
    "--steps": dict(type=int, default=DigitsRecipe().training.training.steps,
                    help="optimizer steps of the denoiser"),
}


def main(argv: list[str] | None = None) -> None:
    """Train, save (refusing to overwrite unless --force), and print the metrics."""
    args = parse_script_args(__doc__, OPTIONS, argv)
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
