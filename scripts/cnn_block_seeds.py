"""Re-run chapter 4's comparison of a small ResNet, DenseNet and ConvNeXt on other seeds
and thread counts, and record the spread.

    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2 python scripts/cnn_block_seeds.py \
        --seeds 0 1 2 --threads 1 2 4 --steps 120 --out scripts/cnn_block_seeds.json

(PASSIVE keeps idle OpenMP threads from spinning, which on a loaded 2-core machine made
the 2- and 4-thread runs some thirty times slower; it does not change the arithmetic.)

For each seed offset (the ``DLBOOK_SEED_OFFSET`` that ``booktools.spread`` sets) and thread
count it repeats what chapter 4 computes in its section "Three families on the digits": the
three networks at their default configs, trained without augmentation with the chapter's
recipe (``fit``: AdamW, batches of 128, cosine decay to a tenth; 120 steps asked, which
``fit`` rounds to 13 epochs, 117 steps) from ``set_seed(0)``, and scored on the 359 test
digits. It prints test accuracy, training loss, parameters and milliseconds per step, and
writes them to ``--out`` (JSON). The chapter's margins are set from this spread.
"""

from __future__ import annotations

import argparse
import json
import math
import os

import torch

from dlbook.cnn import ResNet
from dlbook.convblocks import ConvNeXt, DenseNet
from dlbook.data import load_digits
from dlbook.train import Schedule, TrainConfig, evaluate, train
from dlbook.utils import count_parameters, set_seed

NETWORKS = {"ResNet": ResNet, "DenseNet": DenseNet, "ConvNeXt": ConvNeXt}


def fit(model, dataset, steps=270, lr=3e-3, batch_size=128):
    """The chapter's ``fit``, unchanged."""
    epochs = max(3, round(steps / math.ceil(len(dataset) / batch_size)))
    config = TrainConfig(
        epochs=epochs, batch_size=batch_size, lr=lr, optimizer="adamw",
        weight_decay=1e-4, schedule=Schedule(min_ratio=0.1), progress=False, seed=0,
    )  # fmt: skip
    return train(model, dataset, config, device=torch.device("cpu"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    digits = load_digits(as_images=True)
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)  # a script, not a chapter: this is allowed
        for seed in args.seeds:
            os.environ["DLBOOK_SEED_OFFSET"] = str(seed)
            for name, make in NETWORKS.items():
                set_seed(0)
                model = make()
                history = fit(model, digits.train, steps=args.steps)
                acc = evaluate(model, digits.test)["accuracy"]
                row = dict(threads=threads, seed=seed, steps=args.steps, network=name, test_acc=acc,
                           errors=round((1 - acc) * len(digits.test)),
                           train_loss=history.train_loss[-1],
                           params=count_parameters(model),
                           ms_per_step=1e3 * history.seconds / history.step[-1])
                rows.append(row)
                print(row, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
