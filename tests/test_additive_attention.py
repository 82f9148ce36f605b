"""Tests of dlbook.additive_attention: the score formula, masking, decoding, learning."""

import math

import pytest
import torch
from torch import nn

from dlbook.additive_attention import AttentionSeq2Seq, AttentionSeq2SeqConfig, additive_attention
from dlbook.seq2seq import Seq2SeqTrainConfig, accuracy_by_length, seq2seq_vocab_size, train_seq2seq
from dlbook.text import PAD, make_seq2seq_data
from dlbook.train import TrainConfig


def test_additive_attention_matches_the_formula():
    torch.manual_seed(0)
    B, S, H, A = 2, 5, 4, 3
    W_q, W_k, v = nn.Linear(H, A, bias=False), nn.Linear(H, A), nn.Linear(A, 1, bias=False)
    W_q, W_k, v = W_q.double(), W_k.double(), v.double()
    query, keys = torch.randn(B, H, dtype=torch.float64), torch.randn(B, S, H, dtype=torch.float64)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    context, weights = additive_attention(query, keys, W_q, W_k, v, mask)
    for b in range(B):
        scores = []
        for j in range(S):
            e = (v.weight @ torch.tanh(W_q.weight @ query[b] + W_k.weight @ keys[b, j]
                                       + W_k.bias)).item()
            scores.append(e if mask[b, j] else -math.inf)
        alpha = torch.softmax(torch.tensor(scores, dtype=torch.float64), 0)
        torch.testing.assert_close(weights[b], alpha)
        torch.testing.assert_close(context[b], alpha @ keys[b])
    assert torch.all(weights[1, 3:] == 0)
    with pytest.raises(ValueError, match="query"):
        additive_attention(query[0], keys, W_q, W_k, v)


def test_padding_does_not_change_the_output():
    torch.manual_seed(1)
    model = AttentionSeq2Seq(AttentionSeq2SeqConfig(vocab_size=13, hidden_size=16)).eval()
    src = torch.tensor([[5, 6, 7]])
    padded = torch.tensor([[5, 6, 7, PAD, PAD]])
    tgt_in = torch.tensor([[1, 7, 6]])
    a = model(src, torch.tensor([3]), tgt_in)
    b = model(padded, torch.tensor([3]), tgt_in)
    torch.testing.assert_close(a, b)


def test_greedy_decode_agrees_with_teacher_forcing():
    torch.manual_seed(2)
    model = AttentionSeq2Seq(AttentionSeq2SeqConfig(vocab_size=13, hidden_size=16)).eval()
    data = make_seq2seq_data(4, 3, 3, 10, generator=torch.Generator().manual_seed(0))
    out = model.greedy_decode(data.src, data.src_len, 4)  # (4, 4)
    assert out.shape == (4, 4)
    tgt_in = torch.cat([torch.ones(4, 1, dtype=torch.long), out[:, :3]], dim=1)
    logits, maps = model(data.src, data.src_len, tgt_in, need_weights=True)
    first = logits.argmax(-1)[:, 0]
    assert torch.equal(first, out[:, 0])
    torch.testing.assert_close(maps.sum(-1), torch.ones(4, 4))


def test_learns_to_reverse_short_strings():
    torch.manual_seed(0)
    n_symbols = 5
    model = AttentionSeq2Seq(AttentionSeq2SeqConfig(seq2seq_vocab_size(n_symbols), hidden_size=32))
    config = Seq2SeqTrainConfig(training=TrainConfig(steps=150, batch_size=32, lr=1e-2,
                                                     grad_clip=1.0),
                                min_len=1, max_len=4, n_symbols=n_symbols, task="reverse")
    train_seq2seq(model, config)
    accuracy = accuracy_by_length(model, [2, 3, 4], n_per_length=50, n_symbols=n_symbols)
    assert min(accuracy.values()) > 0.8, accuracy
