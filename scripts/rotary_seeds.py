r"""Train chapter 6's Transformer with sinusoidal and with rotary positions and record how
each scores on the training lengths and beyond.

    OMP_NUM_THREADS=1 python scripts/rotary_seeds.py --seeds 0 1 2 --steps 300 1000 \
        --out scripts/rotary_seeds.json

For each seed offset (the ``DLBOOK_SEED_OFFSET`` that ``booktools.spread`` sets: it shifts
the initialization through ``set_seed`` and the training strings through
``dlbook.utils.make_generator``) and each number of steps, it trains the chapter's
encoder-decoder Transformer (d_model 64, 4 heads, 2 + 2 blocks, Adam at 1e-3, batches of 64
strings of 1 to 12 letters) twice, changing one thing: ``TransformerConfig.positions``,
"sinusoidal" (added to the embeddings, the chapter's model) or "rotary" (RoPE in every
self-attention, nothing added). Each model is scored by greedy decoding on the chapter's
100 new strings of every length 1 to 16 (``accuracy_by_length``). The record (JSON) holds
the exact-match accuracy per length, the last 20 steps' mean loss and the training time.
Chapter 6 reads it, and ``tests/test_rotary_record.py`` re-trains seed 0 at 300 steps.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from dlbook.seq2seq import Seq2SeqTrainConfig, accuracy_by_length, seq2seq_vocab_size
from dlbook.train import TrainConfig
from dlbook.transformer import POSITIONS, Transformer, TransformerConfig, train_transformer
from dlbook.utils import set_seed

LENGTHS = list(range(1, 17))  # training lengths 1-12 and four longer ones


def train_and_score(positions: str, steps: int) -> dict:
    """One model of the chapter's recipe with the given positions, trained and scored."""
    vocab_size = seq2seq_vocab_size(10)
    training = TrainConfig(
        steps=steps, batch_size=64, lr=1e-3, grad_clip=1.0, seed=0, progress=False
    )
    config = Seq2SeqTrainConfig(
        training=training, min_len=1, max_len=12, n_symbols=10, task="reverse"
    )
    set_seed(0)
    model = Transformer(
        TransformerConfig(
            vocab_size, d_model=64, n_heads=4, n_layers=2, d_ff=256, positions=positions
        )
    )
    start = time.perf_counter()
    history = train_transformer(model, config)
    seconds = time.perf_counter() - start
    accuracy = accuracy_by_length(model, LENGTHS, n_per_length=100)
    return {
        "loss": sum(history.step_loss[-20:]) / 20,
        "seconds": seconds,
        "accuracy": {str(n): a for n, a in accuracy.items()},
    }


def main(argv: list[str] | None = None) -> None:
    """Train every (seed offset, steps, positions) and write the JSON record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, nargs="+", default=[300, 1000])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    record = {
        "command": "OMP_NUM_THREADS=1 python scripts/rotary_seeds.py --seeds "
        + " ".join(map(str, args.seeds))
        + " --steps "
        + " ".join(map(str, args.steps))
        + f" --out {args.out}",
        "threads": torch.get_num_threads(),
        "runs": {},
    }
    for steps in args.steps:
        for offset in args.seeds:
            os.environ["DLBOOK_SEED_OFFSET"] = str(offset)
            for positions in POSITIONS:
                key = f"{offset}/{steps}/{positions}"
                record["runs"][key] = train_and_score(positions, steps)
                print(key, json.dumps(record["runs"][key]), flush=True)
                # written after every run, so an interrupted job leaves what it did
                args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
