"""Tests for dlbook.text: the character corpus, batching, and the generated seq2seq task."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook.text import (
    BOS,
    EOS,
    N_SPECIAL,
    PAD,
    CharCorpus,
    CharVocab,
    exact_match,
    get_batch,
    make_seq2seq_data,
    pydoc_text,
    sequence_matches,
    tokens_to_string,
)


def test_pydoc_text_is_the_shipped_snapshot():
    text = pydoc_text()
    assert len(text) == 465_048 and len(set(text)) == 103
    assert text.startswith('The "assert" statement\n')
    assert text == pydoc_text()


@settings(max_examples=25, deadline=None)
@given(text=st.text(min_size=1, max_size=60))
def test_vocab_round_trip(text):
    vocab = CharVocab.from_text(text)
    ids = vocab.encode(text)
    assert ids.dtype == torch.long and ids.shape == (len(text),)
    assert vocab.decode(ids) == text
    assert vocab.decode(ids.tolist()) == text
    assert len(vocab) == len(set(text))
    assert list(vocab.chars) == sorted(vocab.chars)


def test_vocab_errors():
    vocab = CharVocab.from_text("hello")
    with pytest.raises(ValueError, match="not in the vocabulary: \\['x', 'z'\\]"):
        vocab.encode("hxzz")
    with pytest.raises(ValueError, match="ids must be ints in \\[0, 4\\)"):
        vocab.decode([0, 4])
    with pytest.raises(ValueError, match="ids must be 1-D"):
        vocab.decode(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="encode expects a str"):
        vocab.encode(3)
    with pytest.raises(ValueError, match="non-empty str"):
        CharVocab.from_text("")


def test_corpus_split_is_contiguous_and_fixed():
    text = "abcdefghij" * 10
    corpus = CharCorpus.from_text(text, val_fraction=0.2)
    assert len(corpus.train) == 80 and len(corpus.val) == 20
    assert corpus.vocab.decode(torch.cat([corpus.train, corpus.val])) == text
    with pytest.raises(ValueError, match="val_fraction must be in \\(0, 1\\)"):
        CharCorpus.from_text(text, val_fraction=1.0)


def test_pydoc_corpus():
    corpus = CharCorpus.pydoc()
    n = len(corpus.train) + len(corpus.val)
    assert n == len(pydoc_text())
    assert abs(len(corpus.val) / n - 0.1) < 1e-4
    assert 80 <= len(corpus.vocab) <= 130
    assert "pydoc" not in repr(corpus) and "vocab=" in repr(corpus)


def test_corpus_from_file(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("to be or not to be\n" * 5, encoding="utf-8")
    corpus = CharCorpus.from_file(path)
    assert corpus.vocab.decode(corpus.train).startswith("to be or not")
    with pytest.raises(ValueError, match="existing text file"):
        CharCorpus.from_file(tmp_path / "missing.txt")


@settings(max_examples=25, deadline=None)
@given(n=st.integers(5, 200), block=st.integers(1, 16), batch=st.integers(1, 8),
       seed=st.integers(0, 10_000))
def test_get_batch_windows_are_shifted_by_one(n, block, batch, seed):
    data = torch.arange(n + block, dtype=torch.long)  # ids equal positions, so windows show
    x, y = get_batch(data, block, batch, generator=torch.Generator().manual_seed(seed))
    assert x.shape == y.shape == (batch, block)
    assert x.dtype == y.dtype == torch.long
    assert torch.equal(y[:, :-1], x[:, 1:])
    assert torch.equal(y[:, -1], x[:, -1] + 1)
    assert torch.equal(x[:, 1:] - x[:, :-1], torch.ones(batch, block - 1, dtype=torch.long))
    assert int(y.max()) < len(data)


def test_get_batch_is_reproducible_and_covers_data():
    data = torch.arange(50, dtype=torch.long)
    a = get_batch(data, 4, 1000, generator=torch.Generator().manual_seed(3))
    b = get_batch(data, 4, 1000, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    starts = a[0][:, 0]
    assert int(starts.min()) == 0 and int(starts.max()) == 50 - 4 - 1  # every start is possible


def test_get_batch_errors():
    data = torch.arange(10, dtype=torch.long)
    with pytest.raises(ValueError, match="1-D int64"):
        get_batch(data.float(), 4, 2)
    with pytest.raises(ValueError, match="block_size must be a positive int"):
        get_batch(data, 0, 2)
    with pytest.raises(ValueError, match="needs more than block_size=10"):
        get_batch(data, 10, 2)


@pytest.mark.parametrize("task", ["reverse", "copy", "sort"])
def test_seq2seq_data(task):
    data = make_seq2seq_data(200, 2, 9, n_symbols=5, task=task,
                             generator=torch.Generator().manual_seed(0))
    assert data.src.shape == (200, 9) and data.tgt.shape == (200, 11) and len(data) == 200
    assert int(data.src_len.min()) >= 2 and int(data.src_len.max()) <= 9
    assert bool((data.tgt[:, 0] == BOS).all())
    for src, length, tgt in zip(data.src, data.src_len.tolist(), data.tgt):
        assert bool((src[:length] >= N_SPECIAL).all()) and bool((src[length:] == PAD).all())
        assert int(tgt[length + 1]) == EOS and bool((tgt[length + 2:] == PAD).all())
        s, t = tokens_to_string(src), tokens_to_string(tgt)
        expected = {"reverse": s[::-1], "copy": s, "sort": "".join(sorted(s))}[task]
        assert t == expected and set(s) <= set("abcde")


def test_seq2seq_errors():
    with pytest.raises(ValueError, match="min_len <= max_len"):
        make_seq2seq_data(4, 5, 3)
    with pytest.raises(ValueError, match="task must be one of"):
        make_seq2seq_data(4, 1, 3, task="rotate")


def test_exact_match():
    target = torch.tensor([[5, 4, EOS, PAD], [3, EOS, PAD, PAD], [6, 6, 6, EOS]])
    pred = torch.tensor([[5, 4, EOS, 7, 7],  # right, junk after EOS is ignored
                         [3, 3, EOS, PAD, PAD],  # too long
                         [6, 6, 6, 6, 6]])  # never stops
    assert sequence_matches(pred, target).tolist() == [True, False, False]
    assert exact_match(pred, target) == pytest.approx(1 / 3)
    assert exact_match(target, target) == 1.0
    early = torch.tensor([[5, EOS], [3, EOS], [6, EOS]])
    assert sequence_matches(early, target).tolist() == [False, True, False]
    with pytest.raises(ValueError, match="contain EOS"):
        exact_match(pred[:, :2], pred[:, :2])
