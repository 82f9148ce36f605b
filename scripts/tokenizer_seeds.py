"""Record chapter 7's BPE-versus-characters comparison over three training seeds.

    OMP_NUM_THREADS=1 python scripts/tokenizer_seeds.py --seeds 0 1 2 --shipped \
        --workdir runs --out dlbook/records/tokenizer_seeds.json

For every seed and tokenizer it trains the chapter's GPT with ``scripts/train_gpt.py
--tokenizer {char,bpe} --eval_every 100 --seed S`` (the recipe of the shipped checkpoints,
one thing changed: the seed, which moves the initialization, the training windows and the
dropout masks),
writing ``WORKDIR/gpt_{char,bpe}_seed{S}.pt``; a checkpoint already there is read, not
re-trained (each run took 17-19 CPU minutes at one thread). With ``--shipped``, seed 0
is read from the package's own ``gpt_char_pydoc.pt`` and ``gpt_bpe_pydoc.pt``, which were
trained by exactly that command with ``--seed 0``.

Each run's record holds what chapter 7 says of the pair, measured the chapter's way: the
loss per character on the whole validation split (the BPE model's loss per token spread over
the split's characters), on 64 evenly spaced training windows, and the validation estimates
made during training (per character), from which the best step and the step where the
character model passes the BPE model follow. The record ships in the package
(``dlbook/records/``), so chapter 7 reads it on Colab too; ``tests/test_tokenizer_seeds.py``
checks the chapter's statements on every seed of it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

import torch

from dlbook.bpe import BPECorpus, load_bpe_lm, per_char_loss
from dlbook.gpt import load_char_lm
from dlbook.text import CharCorpus, evaluate_char_lm

HERE = Path(__file__).resolve().parent
TOKENIZERS = ("char", "bpe")


def _train_gpt_main():
    """``main`` of scripts/train_gpt.py (scripts are not a package)."""
    spec = importlib.util.spec_from_file_location("train_gpt", HERE / "train_gpt.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def train_command(tokenizer: str, seed: int, out: Path) -> list[str]:
    """The arguments of scripts/train_gpt.py for one run."""
    return ["--out", str(out), "--tokenizer", tokenizer, "--eval_every", "100",
            "--seed", str(seed)]


def measure(tokenizer: str, path: Path | None, char_corpus: CharCorpus) -> dict:
    """Validation and training loss per character and the per-character validation
    curve of one checkpoint (``path=None``: the shipped one)."""
    if tokenizer == "char":
        model, _, record = load_char_lm(path)
        corpus, chars_per_token = char_corpus, 1.0
        val = evaluate_char_lm(model, corpus.val, model.config.block_size)
        train = evaluate_char_lm(
            model, corpus.train, model.config.block_size, record["eval_windows"]
        )
    else:
        model, tokenizer_, record = load_bpe_lm(path)
        corpus = BPECorpus.from_char_corpus(char_corpus, tokenizer=tokenizer_)
        chars_per_token = corpus.chars_per_token
        val = per_char_loss(
            evaluate_char_lm(model, corpus.val, model.config.block_size),
            len(corpus.val), corpus.val_chars,
        )
        train = per_char_loss(
            evaluate_char_lm(
                model, corpus.train, model.config.block_size, record["eval_windows"]
            ),
            len(corpus.train), corpus.train_chars,
        )
    history = record["history"]
    return {
        "seed": record["train_config"]["lm"]["training"]["seed"],
        "val_per_char": val,
        "train_per_char": train,
        "chars_per_token": chars_per_token,
        "cpu_seconds": record["cpu_seconds"],
        "curve_step": list(history["step"]),
        "curve_per_char": [v / chars_per_token for v in history["val_loss"]],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--shipped", action="store_true",
                        help="seed 0: read the shipped checkpoints instead of training")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.force:
        raise SystemExit(f"{args.out} exists; pass --force to replace it")
    torch.set_num_threads(1)
    args.workdir.mkdir(parents=True, exist_ok=True)
    char_corpus = CharCorpus.pydoc()
    runs = {}
    for seed in args.seeds:
        for tokenizer in TOKENIZERS:
            path = None
            if not (args.shipped and seed == 0):
                path = args.workdir / f"gpt_{tokenizer}_seed{seed}.pt"
                if not path.exists():
                    _train_gpt_main()(train_command(tokenizer, seed, path))
            run = measure(tokenizer, path, char_corpus)
            if run["seed"] != seed:
                raise ValueError(f"{path} was trained with seed {run['seed']}, not {seed}")
            run["checkpoint"] = "shipped" if path is None else path.name
            runs[f"{seed}/{tokenizer}"] = run
            print(f"seed {seed} {tokenizer}: val {run['val_per_char']:.4f}, "
                  f"train {run['train_per_char']:.4f} nats/char", flush=True)
    record = {
        "command": "OMP_NUM_THREADS=1 python scripts/tokenizer_seeds.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "train_command": "python scripts/train_gpt.py "
        + " ".join(train_command("{char,bpe}", "S", Path("WORKDIR/gpt_{char,bpe}_seedS.pt"))),
        "threads": 1,
        "torch": torch.__version__,
        "runs": runs,
    }
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, args.out)
    return record


if __name__ == "__main__":
    main()
