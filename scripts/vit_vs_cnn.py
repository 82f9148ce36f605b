"""Measure chapter 11's ViT-against-ResNet grid (training-set sizes x augmentation x seeds).

    python scripts/vit_vs_cnn.py --out vit_vs_cnn.pt [--seeds 0 1 2] [--threads 1] [--force]

Every cell is ``dlbook.vit.bias_run`` with ``BiasRunConfig``'s defaults (same steps, batch
size and schedule for both models). The test accuracies, shape (model, size, augment, seed),
are written with ``dlbook.checkpoint.save_checkpoint`` (kind ``"vit_vs_cnn"``). The book ships
the result as ``dlbook/checkpoints/vit_vs_cnn.pt``; chapter 11 plots it and re-runs one cell.
"""

from __future__ import annotations

import dataclasses
import time

import torch

from dlbook.checkpoint import save_checkpoint
from dlbook.cli import parse_script_args
from dlbook.data import load_digits
from dlbook.vit import BiasRunConfig, bias_run

MODELS = ("vit", "resnet")
SIZES = (100, 300, 1079)  # 1079: the whole training split
AUGMENT = (False, True)


OPTIONS = {"--seeds": dict(type=int, nargs="+", default=[0, 1, 2])}  # and dlbook.cli's
OUT_HELP = "result path; an existing file is refused unless --force"


def main(argv: list[str] | None = None) -> None:
    """Run every cell, print it, and save the accuracies."""
    args = parse_script_args(__doc__, OPTIONS, argv, out_help=OUT_HELP)
    data = load_digits(as_images=True)
    acc = torch.zeros(len(MODELS), len(SIZES), len(AUGMENT), len(args.seeds), dtype=torch.float64)
    start = time.perf_counter()
    for i, model in enumerate(MODELS):
        for j, n in enumerate(SIZES):
            for k, augment in enumerate(AUGMENT):
                for s, seed in enumerate(args.seeds):
                    config = BiasRunConfig(model=model, n_train=n, augment=augment, seed=seed)
                    acc[i, j, k, s] = bias_run(config, data)[1]
                    print(f"{model:6s} n={n:4d} augment={augment!s:5s} seed={seed}: "
                          f"{acc[i, j, k, s]:.4f} ({time.perf_counter() - start:.0f} s)",
                          flush=True)
    base = dataclasses.asdict(BiasRunConfig())
    config = {"models": list(MODELS), "sizes": list(SIZES), "augment": list(AUGMENT),
              "seeds": list(args.seeds), "run": {k: v for k, v in base.items()
                                                 if k not in ("model", "n_train", "augment",
                                                              "seed")}}
    save_checkpoint(args.out, kind="vit_vs_cnn", config=config, state_dict={"accuracy": acc},
                    force=args.force)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
