"""Train chapter 11's digit CLIP and save it.

    python scripts/train_clip.py --out clip_digits.pt [--steps 1000] [--seed 0] [--threads 1]

It trains ``dlbook.clip.CLIP`` on the training split of the 8x8 digits with captions written
in ``TRAIN_TEMPLATES`` (``dlbook.clip.train_clip``), prints ``evaluate_clip`` on the test
split, and writes ``--out`` with ``dlbook.checkpoint.save_checkpoint`` (kind ``"clip_digits"``).
The book ships the seed-0 result as ``dlbook/checkpoints/clip_digits.pt``; other seeds measure
the spread of the chapter's claims.
"""

from __future__ import annotations

import dataclasses
import json

from dlbook.checkpoint import save_checkpoint
from dlbook.cli import parse_script_args
from dlbook.clip import CLIPTrainConfig, evaluate_clip, train_clip
from dlbook.data import load_digits

OPTIONS = {  # besides --out, --force and --threads (dlbook.cli)
    "--steps": dict(type=int, default=CLIPTrainConfig().steps),
    "--seed": dict(type=int, default=0),
}


def main(argv: list[str] | None = None) -> None:
    """Train, evaluate, save."""
    args = parse_script_args(__doc__, OPTIONS, argv)
    data = load_digits(as_images=True)
    config = CLIPTrainConfig(steps=args.steps, seed=args.seed)
    model, history = train_clip(config, *data.train.tensors)
    model.eval()
    metrics = evaluate_clip(model, *data.test.tensors)
    print(json.dumps(metrics))
    save_checkpoint(args.out, kind="clip_digits", config=dataclasses.asdict(config),
                    state_dict=model.state_dict(),
                    extra={"metrics": metrics, "step_loss": history.step_loss},
                    force=args.force)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
