"""Retrain chapter 11's digit CLIP on other seeds and record the spread of its claims.

    python scripts/clip_seeds.py --out scripts/results/clip_seeds.json [--seeds 1 2]
        [--steps 1000] [--threads 1] [--force]

For each seed it trains the shipped recipe (``CLIPTrainConfig`` with that seed, as
``scripts/train_clip.py --seed N`` does), and records ``evaluate_clip`` on the test digits
(zero-shot accuracy, each held-out template alone, recall@1 and @5 both ways) and
``caption_hubs`` of the captions' first images, with the exact command, in a small JSON
file. The shipped checkpoint is seed 0; chapter 11 measures it live and sets its margins
from this file (``tests/test_clip.py`` checks that every recorded seed meets them).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time

from dlbook.cli import parse_script_args
from dlbook.clip import (
    CLIPTrainConfig,
    caption_hubs,
    evaluate_clip,
    retrieval_similarity,
    train_clip,
)
from dlbook.data import load_digits

OPTIONS = {  # besides --out, --force and --threads (dlbook.cli)
    "--seeds": dict(type=int, nargs="+", default=[1, 2]),
    "--steps": dict(type=int, default=CLIPTrainConfig().steps, help="optimizer steps"),
}
OUT_HELP = "JSON path; an existing file is refused unless --force"


def main(argv: list[str] | None = None) -> None:
    """Train each seed, measure it, write the JSON record."""
    args = parse_script_args(__doc__, OPTIONS, argv, out_help=OUT_HELP)
    data = load_digits(as_images=True)
    images, labels = data.test.tensors
    recipe = dataclasses.asdict(CLIPTrainConfig(steps=args.steps))
    recipe.pop("seed")  # each entry of "seeds" is one seed
    command = " ".join(sys.argv[1:] if argv is None else argv)
    record = {"command": f"python scripts/clip_seeds.py {command}", "recipe": recipe,
              "seeds": {}}
    for seed in args.seeds:
        start = time.process_time()
        config = CLIPTrainConfig(steps=args.steps, seed=seed)
        model, _ = train_clip(config, *data.train.tensors)
        metrics = evaluate_clip(model, images, labels)
        sim, text_labels = retrieval_similarity(model, images)
        metrics.update(caption_hubs(sim.T, text_labels))
        metrics["cpu_seconds"] = time.process_time() - start
        record["seeds"][str(seed)] = metrics
        print(seed, json.dumps(metrics), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
