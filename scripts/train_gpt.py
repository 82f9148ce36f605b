"""Train chapter 7's character-level GPT (or chapter 5's LSTM) for longer and save a checkpoint.

    python scripts/train_gpt.py --out gpt.pt [--model lstm] [--steps 3000] [--force] ...

It trains on ``CharCorpus.pydoc()``'s training split with ``dlbook.gpt.train_gpt``: AdamW, a
linear warm-up and a cosine decay of the learning rate over ``--steps`` steps (the schedule
depends on the step only, so a run repeats), optionally stopped early by ``--max_minutes`` of
training time. It writes ``--out`` atomically with ``dlbook.gpt.save_char_lm``: the weights in
float16, the configurations, the vocabulary, the history (the loss of every step) and the
validation loss measured with exactly the weights saved. An existing file is refused unless
``--force``. ``--help`` lists the options; their defaults are the recipe of the shipped
``gpt_char_pydoc.pt`` and ``lstm_char_pydoc.pt``.

``--tokenizer bpe`` trains the same GPT with the same recipe on BPE tokens instead of
characters (``gpt_bpe_pydoc.pt``): a ``--vocab_size``-token BPE (chapter 7's 512) is
learned on the training split only, both splits are encoded with it, ``--block_size``
counts tokens, and ``dlbook.bpe.save_bpe_lm`` saves the merges with the weights and
records the validation loss per token and per character.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from dlbook.bpe import BPE_VOCAB_SIZE, BPECorpus, save_bpe_lm
from dlbook.gpt import (
    SHIPPED_LM_TRAINING,
    GPTConfig,
    TrainGPTConfig,
    count_parameters,
    save_char_lm,
    train_gpt,
)
from dlbook.rnn import CharLSTMConfig
from dlbook.text import CharCorpus
from dlbook.train import Schedule

TRAINING = SHIPPED_LM_TRAINING.training
OPTIONS = {  # name: (type, default, help)
    "model": (str, "gpt", "gpt, or lstm for chapter 5's CharLSTM as a baseline"),
    "tokenizer": (str, "char", "char, or bpe (GPT only) for BPE tokens"),
    "vocab_size": (int, BPE_VOCAB_SIZE, "BPE: tokens, learned on the training split"),
    "steps": (int, TRAINING.steps, "optimizer steps; the cosine decay ends at the last one"),
    "max_minutes": (float, None, "also stop after this much training time (wall clock)"),
    "n_layers": (int, 4, "GPT: Transformer blocks"),
    "n_heads": (int, 4, "GPT: attention heads per block"),
    "d_model": (int, 128, "GPT: width of the token vectors"),
    "dropout": (float, 0.1, "GPT: residual and embedding dropout"),
    "hidden_size": (int, 256, "LSTM: size of h and c"),
    "block_size": (int, 128, "context length in tokens (the GPT's block_size)"),
    "batch_size": (int, TRAINING.batch_size, "windows per step"),
    "lr": (float, TRAINING.lr, "peak AdamW learning rate"),
    "min_lr": (float, TRAINING.lr * TRAINING.schedule.min_ratio, "rate at the last step"),
    "warmup_steps": (int, TRAINING.schedule.warmup_steps, "linear warm-up from 0 to lr"),
    "weight_decay": (float, TRAINING.weight_decay, "AdamW decay of matrices (p.dim() >= 2)"),
    "grad_clip": (float, TRAINING.grad_clip, "max gradient norm"),
    "eval_every": (int, TRAINING.eval_every, "steps between validation estimates"),
    "eval_windows": (int, SHIPPED_LM_TRAINING.eval_windows, "validation windows per estimate"),
    "seed": (int, TRAINING.seed, "model initialization, training windows, dropout masks"),
    "threads": (int, 1, "CPU threads; 1 is fastest when other jobs share the cores"),
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line: ``--out`` (required), ``--force``, and the options above."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True,
                        help="where to save; an existing file is refused unless --force")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    for name, (kind, default, text) in OPTIONS.items():
        parser.add_argument(f"--{name}", type=kind, default=default, help=text)
    args = parser.parse_args(argv)
    if args.model not in ("gpt", "lstm"):
        parser.error(f"--model must be gpt or lstm, got {args.model!r}")
    if args.tokenizer not in ("char", "bpe"):
        parser.error(f"--tokenizer must be char or bpe, got {args.tokenizer!r}")
    if args.tokenizer == "bpe" and args.model != "gpt":
        parser.error("--tokenizer bpe trains a GPT only, got --model lstm")
    return args


def make_config(args: argparse.Namespace, vocab_size: int) -> TrainGPTConfig:
    """The nested config the options describe: the model's config and the training loop's."""
    max_seconds = None if args.max_minutes is None else 60 * args.max_minutes
    training = dataclasses.replace(
        TRAINING, steps=args.steps, max_seconds=max_seconds, batch_size=args.batch_size,
        lr=args.lr, weight_decay=args.weight_decay, grad_clip=args.grad_clip,
        eval_every=args.eval_every, seed=args.seed,
        schedule=Schedule(warmup_steps=args.warmup_steps, min_ratio=args.min_lr / args.lr))
    lm = dataclasses.replace(SHIPPED_LM_TRAINING, training=training,
                             eval_windows=args.eval_windows)
    if args.model == "lstm":  # the LSTM has no context length of its own
        model = CharLSTMConfig(vocab_size=vocab_size, embed_dim=32, hidden_size=args.hidden_size)
        return TrainGPTConfig(model=model, lm=dataclasses.replace(lm, block_size=args.block_size))
    model = GPTConfig(vocab_size=vocab_size, block_size=args.block_size, n_layers=args.n_layers,
                      n_heads=args.n_heads, d_model=args.d_model, dropout=args.dropout)
    return TrainGPTConfig(model=model, lm=lm)


def main(argv: list[str] | None = None) -> dict:
    """Train, save (refusing to overwrite unless --force), report; returns the saved record."""
    args = parse(argv)
    if args.out.exists() and not args.force:  # fail before the training, not after
        raise SystemExit(f"{args.out} exists; pass --force to replace it")
    torch.set_num_threads(args.threads)
    corpus = CharCorpus.pydoc()
    if args.tokenizer == "bpe":  # learned on the training split only
        corpus = BPECorpus.from_char_corpus(corpus, args.vocab_size)
        print(f"{corpus.vocab}: {corpus}", flush=True)
    config = make_config(args, len(corpus.vocab))
    print(f"{config}", flush=True)
    cpu_start = time.process_time()
    model, history = train_gpt(config, corpus)
    summary = {"steps": len(history.step_loss), "seconds": history.elapsed[-1],
               "wall_seconds": history.seconds, "cpu_seconds": time.process_time() - cpu_start,
               "history": dataclasses.asdict(history)}
    save = save_char_lm
    if args.tokenizer == "bpe":
        save = save_bpe_lm
        summary.update(tokenizer="bpe", vocab_size=args.vocab_size)
    record = save(args.out, model, corpus, block_size=config.block_size,
                  eval_windows=config.lm.eval_windows, train_config=config,
                  summary=summary, force=args.force)
    per_char = (f", {record['val_loss_per_char']:.4f} per character"
                if "val_loss_per_char" in record else "")
    print(f"saved {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): "
          f"{count_parameters(model):,} parameters, {summary['steps']} steps in "
          f"{summary['wall_seconds'] / 60:.1f} min, val loss {record['val_loss']:.4f} "
          f"(subset {record['val_loss_subset']:.4f}){per_char}", flush=True)
    return record


if __name__ == "__main__":
    main()
