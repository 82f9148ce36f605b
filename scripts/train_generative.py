"""Train chapter 13's conditional VAE, GAN and flow on the 8x8 digits and save the checkpoint.

    python scripts/train_generative.py --out generative_digits.pt [--seed 0] [--scale 1.0]
        [--threads 1] [--force]

It trains the three generators of ``dlbook.scoreboard.GenerativeRecipe`` on the training split
(minutes on one CPU core) and writes ``--out`` atomically with
``dlbook.scoreboard.save_generators``. An existing file is refused unless ``--force``.
``--scale`` multiplies every number of training steps (a quick check uses 0.01). The book ships
the result as ``dlbook/checkpoints/generative_digits.pt`` (listed in its manifest).
"""

from __future__ import annotations

import dataclasses
import json

from dlbook.cli import parse_script_args
from dlbook.scoreboard import GenerativeRecipe, save_generators, train_generators

OPTIONS = {  # besides --out, --force and --threads (dlbook.cli)
    "--seed": dict(type=int, default=0, help="seeds the initialisations and data"),
    "--scale": dict(type=float, default=1.0, help="multiplies every step count"),
}


def scaled_recipe(seed: int, scale: float) -> GenerativeRecipe:
    """The default recipe with every step count multiplied by ``scale`` and every seed set."""
    recipe = GenerativeRecipe()

    def steps(n: int) -> int:
        return max(1, round(n * scale))

    return dataclasses.replace(
        recipe, seed=seed,
        vae_training=dataclasses.replace(recipe.vae_training, seed=seed,
                                         steps=steps(recipe.vae_training.steps)),
        gan_training=dataclasses.replace(recipe.gan_training, seed=seed,
                                         steps=steps(recipe.gan_training.steps)),
        flow_training=dataclasses.replace(recipe.flow_training, seed=seed,
                                          steps=steps(recipe.flow_training.steps)))


def main(argv: list[str] | None = None) -> None:
    """Train, save (refusing to overwrite unless --force), and print the training times."""
    args = parse_script_args(__doc__, OPTIONS, argv)
    trained = train_generators(scaled_recipe(args.seed, args.scale))
    save_generators(args.out, trained, force=args.force)
    print(json.dumps({k: v for k, v in trained.metrics.items() if k.endswith("seconds")}))


if __name__ == "__main__":
    main()
