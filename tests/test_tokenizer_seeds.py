"""Re-check dlbook/records/tokenizer_seeds.json, chapter 7's record of the BPE-versus-
characters comparison on three training seeds (``scripts/tokenizer_seeds.py``).

Seed 0 is the pair of shipped checkpoints: its numbers are re-measured here. Seeds 1 and 2
were trained by the command the record names; what chapter 7 says of the pair (the BPE
model loses on validation, memorizes its training text, is far ahead early and is passed
by the character model) is checked on each of them.
"""

import numpy as np
import pytest

from dlbook.bpe import BPECorpus, evaluate_per_char, load_bpe_lm
from dlbook.checkpoint import shipped_record
from dlbook.gpt import load_char_lm
from dlbook.text import CharCorpus, evaluate_char_lm

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def record() -> dict:
    record = shipped_record("tokenizer_seeds")
    assert record["command"].startswith("OMP_NUM_THREADS=1 python scripts/tokenizer_seeds.py")
    assert sorted(record["runs"]) == sorted(f"{s}/{t}" for s in SEEDS for t in ("char", "bpe"))
    for key, run in record["runs"].items():
        assert run["seed"] == int(key.split("/")[0]), key
    return record


def test_shipped_record_errors():
    with pytest.raises(ValueError, match="name must be one of .*tokenizer_seeds"):
        shipped_record("tokenizer_seed")
    with pytest.raises(TypeError, match="name must be a str"):
        shipped_record(0)


def _curves(record: dict, seed: int):
    char, bpe = record["runs"][f"{seed}/char"], record["runs"][f"{seed}/bpe"]
    assert char["curve_step"] == bpe["curve_step"]
    return (np.array(char["curve_step"]), np.array(char["curve_per_char"]),
            np.array(bpe["curve_per_char"]))


def test_seed_0_is_the_shipped_pair(record):
    corpus = CharCorpus.pydoc()
    char_model, _, _ = load_char_lm()
    bpe_model, tokenizer, _ = load_bpe_lm()
    bpe_corpus = BPECorpus.from_char_corpus(corpus, tokenizer=tokenizer)
    char_val = evaluate_char_lm(char_model, corpus.val, char_model.config.block_size)
    bpe_val = evaluate_per_char(bpe_model, bpe_corpus, bpe_model.config.block_size)
    assert record["runs"]["0/char"]["checkpoint"] == "shipped"
    assert abs(record["runs"]["0/char"]["val_per_char"] - char_val) < 1e-4
    assert abs(record["runs"]["0/bpe"]["val_per_char"] - bpe_val) < 1e-4


@pytest.mark.parametrize("seed", SEEDS)
def test_bpe_loses_on_validation_and_memorizes(record, seed):
    char, bpe = record["runs"][f"{seed}/char"], record["runs"][f"{seed}/bpe"]
    assert bpe["val_per_char"] > char["val_per_char"] + 0.1  # seeds 0-2: +0.155 to +0.158
    assert bpe["train_per_char"] < bpe["val_per_char"] - 0.7
    assert (bpe["val_per_char"] - bpe["train_per_char"]) > 3 * (
        char["val_per_char"] - char["train_per_char"]
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_bpe_is_ahead_early_then_passed(record, seed):
    steps, char, bpe = _curves(record, seed)
    assert np.interp(500, steps, bpe) < np.interp(500, steps, char) - 0.15
    best = int(np.argmin(bpe))
    assert 500 <= steps[best] <= 1500 and bpe[-1] > bpe[best] + 0.04
    assert bpe[best] > char[-1] + 0.05  # even its best estimate is above char's last
    ahead = char < bpe
    first = int(np.argmax(ahead))
    assert 1000 <= steps[first] <= 2000 and ahead[first:].all()  # and stays ahead
