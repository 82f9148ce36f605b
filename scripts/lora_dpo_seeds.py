"""Seed and thread spread of chapter 7's LoRA and DPO cells.

    OMP_NUM_THREADS=1 python scripts/lora_dpo_seeds.py --seeds 0 1 2 --threads 1 2 4 \
        --out scripts/lora_dpo_seeds.json

For each thread count (``torch.set_num_threads``, since PyTorch caps OMP_NUM_THREADS at the
core count) and each seed offset (``DLBOOK_SEED_OFFSET``, which shifts every ``set_seed`` and,
through ``dlbook.utils.make_generator``, the preference pairs and DPO's batch order) it repeats
the chapter's two cells on the shipped character GPT:

- LoRA: rank 4, alpha 8 adapters (``add_lora``) trained 25 steps of 8 windows of 64 characters
  (AdamW at 2e-2, clip 1) on the capitalized text; the loss on capitalized and ordinary
  validation text before and after, the merged-vs-unmerged logit difference, and the share of
  capitals among the letters of a 60-character sample. (``train_char_lm`` draws its windows
  from ``TrainConfig.seed``, which the offset does not shift, so here the offset changes the
  adapters' initialization and the dropout masks.)
- DPO: 256 training and 128 held-out quote-swap pairs (``swap_pairs``, seeds 0 and 1), tuned
  10 steps of 8 at 5e-4 with the DPO loss and with the SFT loss; the held-out gap
  log p(chosen) - log p(rejected) before and after, and the DPO loss's first and last values.

It records every quantity the chapter's asserts in those two sections use, one entry per
"seed/threads" in ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import torch

from dlbook.dpo import PreferenceConfig, preference_gap, swap_pairs, tune_on_preferences
from dlbook.gpt import load_char_lm
from dlbook.lora import LoRALinear, add_lora, merge_lora, trainable_parameters
from dlbook.text import CharCorpus, LMTrainConfig, evaluate_char_lm, train_char_lm
from dlbook.train import TrainConfig
from dlbook.utils import count_parameters, set_seed


def lora_run(model: torch.nn.Module, corpus: CharCorpus) -> dict:
    """The chapter's LoRA cell: capitals with rank-4 adapters, 25 steps."""
    vocab = corpus.vocab
    capitals = {c: c.upper() for c in vocab.chars if c.upper() in set(vocab.chars)}

    def shout(ids: torch.Tensor) -> torch.Tensor:
        return vocab.encode("".join(capitals.get(c, c) for c in vocab.decode(ids)))

    shouting = CharCorpus(
        vocab=vocab, train=shout(corpus.train[:50_000]), val=shout(corpus.val[:20_000])
    )
    set_seed(0)
    tuned = add_lora(copy.deepcopy(model), rank=4, alpha=8.0)
    out = {"capitals_before": evaluate_char_lm(tuned, shouting.val, 64, 32)}
    training = LMTrainConfig(
        training=TrainConfig(steps=25, batch_size=8, lr=2e-2, optimizer="adamw",
                             grad_clip=1.0, eval_every=25, progress=False),
        block_size=64,
        eval_windows=32,
    )
    train_char_lm(tuned, shouting, training)
    tuned.eval()
    out["capitals_after"] = evaluate_char_lm(tuned, shouting.val, 64, 32)
    out["ordinary_after"] = evaluate_char_lm(tuned, corpus.val, 64, 32)
    out["ordinary_before"] = evaluate_char_lm(model, corpus.val, 64, 32)
    merged = merge_lora(copy.deepcopy(tuned)).eval()
    probe = corpus.val[:128][None]
    with torch.no_grad():
        out["merge_diff"] = (merged(probe) - tuned(probe)).abs().max().item()
    gen = torch.Generator().manual_seed(0)
    shouted = vocab.decode(merged.generate(vocab.encode("The ")[None], 60, generator=gen)[0])
    letters = [c for c in shouted[4:] if c.isalpha()]
    out["upper_share"] = sum(c.isupper() for c in letters) / len(letters)
    out["sample"] = shouted
    out["trainable"] = trainable_parameters(tuned)
    out["expected_trainable"] = 2 * model.config.n_layers * 2 * 4 * model.config.d_model
    out["share_percent"] = 100 * trainable_parameters(tuned) / count_parameters(model)
    out["lora_layers"] = sum(isinstance(m, LoRALinear) for m in tuned.modules())
    out["expected_lora_layers"] = 2 * model.config.n_layers
    return out


def dpo_run(model: torch.nn.Module, corpus: CharCorpus) -> dict:
    """The chapter's DPO cell: quote-swap pairs, DPO and SFT, 10 steps each."""
    vocab = corpus.vocab
    quote_ratio = (corpus.train == vocab.encode('"')[0]).sum() / (
        corpus.train == vocab.encode("'")[0]
    ).sum()
    prompt_len, response_len = 32, 16
    train_pairs = swap_pairs(corpus.train, vocab, 256, prompt_len, response_len, seed=0)
    test_pairs = swap_pairs(corpus.val, vocab, 128, prompt_len, response_len, seed=1)
    gaps = {"before": preference_gap(model, *test_pairs, prompt_len)}
    out = {"quote_ratio": quote_ratio.item()}
    for loss in ("dpo", "sft"):
        config = PreferenceConfig(loss=loss, steps=10, batch_size=8, lr=5e-4)
        tuned, losses = tune_on_preferences(model, *train_pairs, prompt_len, config)
        gaps[loss] = preference_gap(tuned, *test_pairs, prompt_len)
        if loss == "dpo":
            out["dpo_loss_first"], out["dpo_loss_last"] = losses[0], losses[-1]
    for name, gap in gaps.items():
        out[f"gap_{name}"] = gap.mean().item()
        out[f"acc_{name}"] = (gap > 0).float().mean().item()
    return out


def run() -> dict:
    """Both sections' numbers at the current seed offset and thread count."""
    corpus = CharCorpus.pydoc()
    model, _, _ = load_char_lm()
    model.eval()
    return {"lora": lora_run(model, corpus), "dpo": dpo_run(model, corpus)}


def main(argv: list[str] | None = None) -> None:
    """Measure every thread count and seed offset given and write the JSON record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    record = {
        "command": "OMP_NUM_THREADS=1 python scripts/lora_dpo_seeds.py --seeds "
        + " ".join(map(str, args.seeds)) + " --threads "
        + " ".join(map(str, args.threads)) + f" --out {args.out}",
        "runs": {},
    }
    total = time.perf_counter()
    for threads in args.threads:
        torch.set_num_threads(threads)
        for seed in args.seeds:
            os.environ["DLBOOK_SEED_OFFSET"] = str(seed)
            start = time.perf_counter()
            result = run()
            result["seconds"] = round(time.perf_counter() - start, 1)
            record["runs"][f"{seed}/{threads}"] = result
            print(f"seed {seed}, {threads} threads:", json.dumps(result), flush=True)
    record["seconds"] = round(time.perf_counter() - total, 1)
    args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
