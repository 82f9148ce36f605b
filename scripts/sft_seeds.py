"""Seed and thread spread of chapter 7's supervised fine-tuning cells.

    OMP_NUM_THREADS=1 python scripts/sft_seeds.py --seeds 0 1 2 --threads 1 2 4

For each seed offset (``DLBOOK_SEED_OFFSET``, which shifts the batch order through
``dlbook.utils.make_generator``) and each thread count (``torch.set_num_threads``, since
PyTorch caps OMP_NUM_THREADS at the core count), it repeats the chapter's cells: the shipped
character GPT fine-tuned on ``instruction_pairs`` of the training split (15 steps of 8, Adam
at 3e-4), then the held-out response loss, the share of greedy replies in the answer format,
the loss on ordinary validation text, and the counts the chapter's asserts use. One JSON line
per run.
"""

from __future__ import annotations

import argparse
import json
import os

import torch

from dlbook.gpt import load_char_lm
from dlbook.sft import (
    SFTConfig,
    encode_pairs,
    follows_format,
    greedy_reply,
    instruction_pairs,
    masked_lm_loss,
    supervised_finetune,
)
from dlbook.text import CharCorpus, evaluate_char_lm


def run() -> dict:
    corpus = CharCorpus.pydoc()
    vocab = corpus.vocab
    model, _, _ = load_char_lm()
    model.eval()
    train = instruction_pairs(vocab.decode(corpus.train))
    asked = {p.prompt for p in train}
    test = [p for p in instruction_pairs(vocab.decode(corpus.val)) if p.prompt not in asked]
    ids, mask = encode_pairs(train, vocab)
    test_ids, test_mask = encode_pairs(test, vocab)
    tuned, _ = supervised_finetune(model, ids, mask, SFTConfig(steps=15, batch_size=8, lr=3e-4))
    out = {"n_train": len(train), "n_test": len(test)}
    form = torch.zeros_like(test_mask)  # the format's characters: "A: " and the newline
    for i, p in enumerate(test):
        form[i, len(p.prompt) - 1 : len(p.prompt) + 2] = True
        form[i, len(p.text) - 2] = True
    for name, m in (("base", model), ("sft", tuned)):
        with torch.no_grad():
            out[f"{name}_response_loss"] = masked_lm_loss(m, test_ids, test_mask).item()
            out[f"{name}_format_chars"] = masked_lm_loss(m, test_ids, form).item()
            out[f"{name}_sentence_chars"] = masked_lm_loss(
                m, test_ids, test_mask & ~form
            ).item()
        out[f"{name}_ordinary"] = evaluate_char_lm(m, corpus.val, 64, 32)
        replies = [
            greedy_reply(m, vocab, p.prompt, m.config.block_size - len(p.prompt)) for p in test
        ]
        out[f"{name}_in_format"] = sum(map(follows_format, replies)) / len(test)
        out[f"{name}_exact"] = sum(r == p.response for r, p in zip(replies, test))
        out[f"{name}_dictionary"] = sum("dictionar" in r for r in replies)
        out[f"{name}_circles"] = sum("of the string of the string" in r for r in replies)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    args = parser.parse_args()
    for threads in args.threads:
        torch.set_num_threads(threads)
        for seed in args.seeds:
            os.environ["DLBOOK_SEED_OFFSET"] = str(seed)
            result = {k: round(v, 4) for k, v in run().items()}
            print(json.dumps({"seed": seed, "threads": threads, **result}), flush=True)


if __name__ == "__main__":
    main()
