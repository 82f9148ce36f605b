"""Measures of generated text: repeated n-grams and words outside a vocabulary."""

import pytest

from dlbook.sampling import repeated_ngram_rate, unknown_word_rate


def test_repeated_ngrams_count_every_earlier_occurrence():
    assert repeated_ngram_rate(["abcd"], n=2) == 0.0
    # "abab": ab, ba, ab -> the second "ab" repeats: 1 of 3
    assert repeated_ngram_rate(["abab"], n=2) == pytest.approx(1 / 3)
    # pooled over texts; repeats are counted within a text only
    assert repeated_ngram_rate(["abab", "ab"], n=2) == pytest.approx(1 / 4)
    assert repeated_ngram_rate(["x" * 100], n=8) == pytest.approx(92 / 93)


def test_unknown_words_skip_the_cut_ends():
    known = {"the", "for", "statement"}
    assert unknown_word_rate(["xx the for statemnt yy"], known) == pytest.approx(1 / 3)
    assert unknown_word_rate(["a the b", "c for statement d"], known) == 0.0


def test_bad_inputs():
    with pytest.raises(TypeError, match="list of str"):
        repeated_ngram_rate("abc")
    with pytest.raises(ValueError, match="at least one text"):
        repeated_ngram_rate(["ab"], n=3)
    with pytest.raises(ValueError, match="no words"):
        unknown_word_rate(["one two"], set())
