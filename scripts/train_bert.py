"""Pre-train chapter 10's character-level BERT by masked language modelling and save it.

    python scripts/train_bert.py --out bert.pt [--steps 4000] [--threads 1] [--force]

It trains a ``BertForMLM`` (``dlbook.bert``) on windows of the first 90% of the book's corpus
(``dlbook.corpus``, Python 3.11.7's documentation topics), measures the MLM loss on windows of
the last 10%, and writes ``--out`` with ``dlbook.bert.save_bert``; an existing file is refused
unless ``--force``. The book ships the result as ``dlbook/checkpoints/bert_mlm_pydoc.pt``
(listed in its manifest with the exact command).
"""

from __future__ import annotations

import json
import sys

from dlbook.bert import (
    N_SPECIAL,
    BertConfig,
    BertForMLM,
    mlm_validation_loss,
    pydoc_tokens,
    pydoc_vocab,
    save_bert,
    train_mlm,
)
from dlbook.cli import parse_script_args
from dlbook.train import Schedule, TrainConfig
from dlbook.utils import set_seed

MODEL = dict(max_len=128, d_model=64, n_heads=4, n_layers=2, d_ff=256)  # BertConfig's sizes


OPTIONS = {  # besides --out, --force and --threads (dlbook.cli)
    "--steps": dict(type=int, default=4000, help="optimizer steps"),
    "--batch_size": dict(type=int, default=32, help="windows per step"),
    "--lr": dict(type=float, default=2e-3, help="peak learning rate"),
}


def main(argv: list[str] | None = None) -> None:
    """Train, save (refusing to overwrite unless --force), and print the metrics."""
    args = parse_script_args(__doc__, OPTIONS, argv)
    set_seed(0)
    data = pydoc_tokens()
    n_train = round(0.9 * len(data))
    model = BertForMLM(BertConfig(vocab_size=N_SPECIAL + len(pydoc_vocab()), **MODEL))
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                         optimizer="adamw", weight_decay=0.01, grad_clip=1.0,
                         schedule=Schedule(warmup_steps=min(200, args.steps // 10),
                                           min_ratio=0.1),
                         eval_every=max(1, args.steps // 10), progress=False)
    history = train_mlm(model, data[:n_train], config)
    metrics = {"steps": len(history.step_loss),
               "train_loss_last_record": history.train_loss[-1],
               "val_mlm_loss": mlm_validation_loss(model, data[n_train:]),
               "train_seconds": history.seconds,
               "command": "python scripts/train_bert.py " + " ".join(
                   sys.argv[1:] if argv is None else argv)}
    save_bert(args.out, model, extra=metrics, force=args.force)
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
