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

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from dlbook.checkpoint import save_checkpoint
from dlbook.data import load_digits
from dlbook.vit import BiasRunConfig, bias_run, near_far_similarity, position_similarity


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True,
                        help="checkpoint path; an existing file is refused unless --force")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--no-augment", action="store_true", help="train without shifts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Train, measure, save."""
    args = parse(argv)
    if args.out.exists() and not args.force:
        raise SystemExit(f"{args.out} exists; pass --force to replace it")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
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
