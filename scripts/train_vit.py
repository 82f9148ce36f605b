"""Train chapter 11's ViT for its attention maps and position embeddings, and save it.

    python scripts/train_vit.py --out vit_digits.pt [--steps 2000] [--no-augment] [--seed 0]

It runs ``dlbook.vit.bias_run`` (the chapter's ViT, AdamW, warm-up and cosine decay) with
random shifts of up to one pixel unless ``--no-augment``, prints the test accuracy and the
mean cosine similarity of the position embeddings of neighbouring and of distant patches,
and writes the ViT's weights with ``dlbook.checkpoint.save_checkpoint`` (kind
``"vit_digits"``). The book ships ``--seed 0`` as ``dlbook/checkpoints/vit_digits.pt``; other
seeds, and ``--steps 300 --no-augment`` (the chapter's live run), measure the spread.
"""

from __future__ import annotations

import dataclasses
import json

from dlbook.checkpoint import save_checkpoint
from dlbook.cli import parse_script_args
from dlbook.data import load_digits
from dlbook.vit import BiasRunConfig, bias_run, near_far_similarity, position_similarity

OPTIONS = {  # besides --out, --force and --threads (dlbook.cli)
    "--steps": dict(type=int, default=2000),
    "--no-augment": dict(action="store_true", help="train without shifts"),
    "--seed": dict(type=int, default=0),
}


def main(argv: list[str] | None = None) -> None:
    """Train, measure, save."""
    args = parse_script_args(__doc__, OPTIONS, argv)
    data = load_digits(as_images=True)
    config = BiasRunConfig(model="vit", augment=not args.no_augment, steps=args.steps,
                           seed=args.seed)
    model, accuracy = bias_run(config, data)
    vit = model[1] if config.augment else model  # drop the augmentation layer
    near, far = near_far_similarity(position_similarity(vit))
    metrics = {"accuracy": accuracy, "near": near, "far": far}
    print(json.dumps(metrics))
    save_checkpoint(args.out, kind="vit_digits", config=dataclasses.asdict(config),
                    state_dict=vit.state_dict(), extra={"metrics": metrics}, force=args.force)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
