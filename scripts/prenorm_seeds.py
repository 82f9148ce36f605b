"""Re-run chapter 6's pre-LN / post-LN measurements on other seeds and record the spread.

    OMP_NUM_THREADS=1 python scripts/prenorm_seeds.py --seeds 0 1 2 --out scripts/prenorm_seeds.json

For each seed offset (the ``DLBOOK_SEED_OFFSET`` that ``booktools.spread`` sets, so every
``set_seed`` of the chapter's cells shifts, and so does every data seed, through
``dlbook.utils.make_generator``) it repeats what the chapter's section "Pre-LN or
post-LN: a measurement" computes: the gradient norm of each block's second MLP matrix at
initialization for 3, 6, 12 and 24 blocks (mean over ten initializations and two batches),
and the four 200-step trainings of a 6-block tagger on string reversal (post-LN without and
with warm-up, pre-LN, pre-LN with label smoothing 0.1), scored on 1,000 new strings. It prints
the ratios the chapter asserts and writes them, per seed, to ``--out`` (JSON). The chapter's
margins are set from this spread.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path

import torch

from dlbook.prenorm import (
    Tagger,
    TaggerConfig,
    TagTrainConfig,
    ffn_grad_norms,
    reverse_batches,
    tagger_scores,
    train_tagger,
)
from dlbook.utils import set_seed

DEPTHS = (3, 6, 12, 24)
RUNS = (("post", False, 0, 0.0), ("post+wu", False, 60, 0.0), ("pre", True, 0, 0.0),
        ("pre+ls", True, 0, 0.1))


def measure(offset: int) -> dict:
    """The section's numbers for one seed offset."""
    os.environ["DLBOOK_SEED_OFFSET"] = str(offset)
    probe = list(itertools.islice(reverse_batches(10, 12, 32, seed=0), 2))
    grad_norms = {}
    for norm_first, n_layers in itertools.product((False, True), DEPTHS):
        runs = []
        for init in range(10):
            set_seed(init)
            model = Tagger(TaggerConfig(n_layers=n_layers, norm_first=norm_first))
            runs.append(ffn_grad_norms(model, probe))
        grad_norms[norm_first, n_layers] = torch.stack(runs).mean(0)
    last = {k: v[-1].item() for k, v in grad_norms.items()}
    post24, pre24 = grad_norms[False, 24], grad_norms[True, 24]
    out = {
        "pre3_over_pre24": last[True, 3] / last[True, 24],
        "post24_over_pre24": last[False, 24] / last[True, 24],
        "post24_over_post3": last[False, 24] / last[False, 3],
        "post24_last_over_first": (post24[-1] / post24[0]).item(),
        "pre24_last_over_first": (pre24[-1] / pre24[0]).item(),
    }
    x_test = next(reverse_batches(10, 8, 1000, seed=10_000))[0]
    for name, norm_first, warmup, smoothing in RUNS:
        set_seed(0)
        tagger = Tagger(TaggerConfig(n_layers=6, norm_first=norm_first))
        config = TagTrainConfig(steps=200, lr=3e-3, warmup_steps=warmup, smoothing=smoothing,
                                length=8)
        history = train_tagger(tagger, config)
        out[name] = {"loss": sum(history.step_loss[-10:]) / 10,
                     **tagger_scores(tagger, x_test)}
    return out


def main(argv: list[str] | None = None) -> None:
    """Measure every seed offset given and write the JSON record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    record = {"command": "OMP_NUM_THREADS=1 python scripts/prenorm_seeds.py --seeds "
                         + " ".join(map(str, args.seeds)) + f" --out {args.out}",
              "threads": torch.get_num_threads(), "seeds": {}}
    for offset in args.seeds:
        start = time.perf_counter()
        record["seeds"][str(offset)] = measure(offset)
        print(f"seed offset {offset} ({time.perf_counter() - start:.0f} s):",
              json.dumps(record["seeds"][str(offset)]), flush=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
