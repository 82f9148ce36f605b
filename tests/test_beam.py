"""Tests of dlbook.beam: beam search against exhaustive search and greedy decoding."""

import itertools

import pytest
import torch

from dlbook.beam import beam_search, sequence_log_prob, strip
from dlbook.seq2seq import Seq2Seq, Seq2SeqConfig
from dlbook.text import EOS, N_SPECIAL


def _model(seed):
    torch.manual_seed(seed)
    return Seq2Seq(Seq2SeqConfig(vocab_size=N_SPECIAL + 2, embed_dim=4, hidden_size=8)).eval()


@pytest.mark.parametrize("seed", range(4))
def test_beam_one_is_greedy(seed):
    model = _model(seed)
    src, src_len = torch.tensor([[3, 4, 3]]), torch.tensor([3])
    greedy = strip(model.greedy_decode(src, src_len, 5)[0])
    assert beam_search(model, src, src_len, beam_size=1, max_len=5) == greedy


@pytest.mark.parametrize("seed", range(4))
def test_wide_beam_is_exhaustive_search(seed):
    model = _model(seed)
    src, src_len = torch.tensor([[3, 4]]), torch.tensor([2])
    # every output of at most 3 tokens that ends with EOS: 1 + 4 + 16 of them. A beam of 128
    # keeps every prefix (at most 16 x 5 = 80 extensions per step), so it must find the best.
    others = [t for t in range(N_SPECIAL + 2) if t != EOS]
    outputs = [list(prefix) + [EOS] for n in range(3) for prefix in
               itertools.product(others, repeat=n)]
    scores = {tuple(o): sequence_log_prob(model, src, src_len, o) for o in outputs}
    found = beam_search(model, src, src_len, beam_size=128, max_len=3)
    assert found[-1] == EOS
    assert scores[tuple(found)] == pytest.approx(max(scores.values()), abs=1e-5)
    greedy = strip(model.greedy_decode(src, src_len, 3)[0])
    assert sequence_log_prob(model, src, src_len, found) >= \
        sequence_log_prob(model, src, src_len, greedy) - 1e-5


def test_beam_search_checks_arguments():
    model = _model(0)
    with pytest.raises(ValueError, match="one source"):
        beam_search(model, torch.tensor([[3], [4]]), torch.tensor([1, 1]), 2, 3)
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(model, torch.tensor([[3]]), torch.tensor([1]), 0, 3)
