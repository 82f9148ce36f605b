"""Tests of dlbook.bpe: round trips, the greedy merge rule, and errors."""

from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook.bpe import BPETokenizer, chunks, learn_merges, merge_pair

TEXT = ("def add(a, b):\n    return a + b\n\nThe function add returns the sum of its two "
        "arguments; the_sum = add(1, 22) gives 23.\n" * 3 + "Ünïcode “quotes” — and tabs\t.\n")


@pytest.fixture(scope="module")
def tokenizer():
    return BPETokenizer.train(TEXT, 80)


@settings(max_examples=25, deadline=None)
@given(st.text(max_size=60))
def test_chunks_cover_any_text(text):
    assert "".join(chunks(text)) == text


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_encode_decode_round_trip(tokenizer, data):
    text = data.draw(st.text(alphabet=sorted(set(TEXT)), max_size=80))
    ids = tokenizer.encode(text)
    assert ids.dtype == torch.long and ids.dim() == 1
    assert tokenizer.decode(ids) == text
    assert tokenizer.decode(ids.tolist()) == text
    assert len(ids) <= len(text)


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_encoding_replays_the_merges_in_order(tokenizer, data):
    text = data.draw(st.text(alphabet=sorted(set(TEXT)), max_size=80))
    pieces = [list(c) for c in chunks(text)]
    for pair in tokenizer.merges:
        pieces = [merge_pair(p, pair) for p in pieces]
    assert tokenizer.tokenize(text) == [t for p in pieces for t in p]


def test_each_merge_is_the_most_frequent_pair():
    merges = learn_merges(TEXT, 40)
    pieces = Counter(chunks(TEXT))
    seqs = {c: list(c) for c in pieces}
    for pair in merges:  # recount every pair from scratch before each merge
        counts = Counter()
        for c, seq in seqs.items():
            for p in zip(seq, seq[1:]):
                counts[p] += pieces[c]
        assert counts[pair] == max(counts.values()) >= 2
        seqs = {c: merge_pair(seq, pair) for c, seq in seqs.items()}


def test_training_sizes_and_compression(tokenizer):
    assert len(tokenizer) == 80 == len(tokenizer.chars) + len(tokenizer.merges)
    assert len(tokenizer.encode(TEXT)) < 0.5 * len(TEXT)
    assert "add" in tokenizer.tokens or " add" in tokenizer.tokens
    # no merge crosses a chunk boundary, so no token joins a letter to a following space
    assert not any(t[:-1].strip() and t.endswith(" ") for t in tokenizer.tokens)
    # a prefix of the merges is the tokenizer trained for a smaller vocabulary
    smaller = BPETokenizer.train(TEXT, 60)
    assert smaller.merges == tokenizer.merges[:len(smaller.merges)]


def test_stops_when_no_pair_repeats():
    assert len(BPETokenizer.train("abcd", 100)) == 4
    assert merge_pair(list("aaa"), ("a", "a")) == ["aa", "a"]


def test_errors(tokenizer):
    with pytest.raises(ValueError, match=r"not in the vocabulary: \['Q', 'z'\]"):
        tokenizer.encode("Quiz")
    with pytest.raises(TypeError, match="expects a str"):
        tokenizer.encode(b"add")
    with pytest.raises(ValueError, match=r"ids must be ints in \[0, 80\)"):
        tokenizer.decode([3, 80])
    with pytest.raises(ValueError, match="1-D"):
        tokenizer.decode(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="vocab_size must be an int >="):
        BPETokenizer.train(TEXT, 5)
    with pytest.raises(ValueError, match="non-empty str"):
        BPETokenizer.train("", 10)


def test_decode_rejects_ids_outside_the_vocabulary(tokenizer):
    with pytest.raises(ValueError, match=rf"ids must be ints in \[0, {len(tokenizer)}\)"):
        tokenizer.decode([0, len(tokenizer)])
    with pytest.raises(ValueError, match="ids must be 1-D"):
        tokenizer.decode(torch.zeros(2, 2, dtype=torch.long))
