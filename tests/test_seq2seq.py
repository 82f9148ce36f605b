"""Tests for dlbook.seq2seq: the LSTM encoder-decoder and how it is trained and scored."""

import dataclasses

import pytest
import torch

from dlbook.seq2seq import (
    Seq2Seq,
    Seq2SeqConfig,
    Seq2SeqTrainConfig,
    accuracy_by_length,
    seq2seq_vocab_size,
    task_batches,
    teacher_forcing_step,
    train_seq2seq,
)
from dlbook.text import EOS, PAD, make_seq2seq_data
from dlbook.train import TrainConfig


def test_seq2seq_overfits_and_decodes():
    torch.manual_seed(0)
    n_symbols = 4
    model = Seq2Seq(Seq2SeqConfig(seq2seq_vocab_size(n_symbols), embed_dim=16, hidden_size=64))
    training = TrainConfig(steps=250, batch_size=64, lr=1e-2, grad_clip=1.0, progress=False)
    config = Seq2SeqTrainConfig(training=training, min_len=1, max_len=4, n_symbols=n_symbols)
    with pytest.raises(ValueError, match="min_len <= max_len"):
        dataclasses.replace(config, min_len=5)
    with pytest.raises(ValueError, match="task must be one of"):
        dataclasses.replace(config, task="rotate")
    with pytest.raises(ValueError, match="training.steps must be set"):
        dataclasses.replace(config, training=TrainConfig())
    losses = train_seq2seq(model, config).step_loss
    assert len(losses) == 250
    assert losses[-1] < 0.1 * losses[0]
    accuracy = accuracy_by_length(model, [1, 2, 3, 4], n_per_length=100, n_symbols=n_symbols)
    assert min(accuracy.values()) > 0.9, accuracy
    data = make_seq2seq_data(5, 3, 3, n_symbols, generator=torch.Generator().manual_seed(0))
    pred = model.greedy_decode(data.src, data.src_len, max_len=8)
    assert pred.shape[0] == 5 and pred.shape[1] <= 8
    assert bool((pred[:, 3] == EOS).all()) and bool((pred[:, 4:] == PAD).all())


def test_teacher_forcing_step_learns_a_batch_and_checks_its_input():
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(seq2seq_vocab_size(4), embed_dim=8, hidden_size=32))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    data = make_seq2seq_data(16, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    losses = [teacher_forcing_step(model, opt, data, grad_clip=1.0) for _ in range(60)]
    assert losses[-1] < 0.2 * losses[0], losses
    with pytest.raises(TypeError, match="data must be a Seq2SeqData"):
        teacher_forcing_step(model, opt, (data.src, data.tgt), grad_clip=None)


def test_seq2seq_padding_does_not_change_the_context():
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(seq2seq_vocab_size(5), hidden_size=8)).eval()
    src = torch.tensor([[3, 4, 5, PAD, PAD]])
    h, c = model.encode(src, torch.tensor([3]))
    h_short, c_short = model.encode(src[:, :3], torch.tensor([3]))
    torch.testing.assert_close(h, h_short)
    torch.testing.assert_close(c, c_short)
    with pytest.raises(ValueError, match="src must be \\(B, S\\)"):
        model.encode(src, torch.tensor([3, 3]))


def test_task_batches_bucket_lengths_or_mix_them():
    config = Seq2SeqTrainConfig(training=TrainConfig(steps=1, batch_size=32), min_len=2,
                                max_len=9)
    for _, data in zip(range(5), task_batches(config, one_length=True), strict=False):
        assert len(set(data.src_len.tolist())) == 1
    mixed = next(task_batches(config, one_length=False))
    assert len(set(mixed.src_len.tolist())) > 1
    one, two = (next(task_batches(config, one_length=False)) for _ in range(2))
    assert torch.equal(one.src, two.src)  # seeded by config.training.seed
