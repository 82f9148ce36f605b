"""Sequence to sequence: an LSTM encoder-decoder (Sutskever et al., 2014) and how
chapter 5's and chapter 6's encoder-decoders are trained and scored on generated string
tasks.

``Seq2Seq`` squeezes the whole source into the encoder's final state. ``train_seq2seq``
trains it with teacher forcing through ``dlbook.train.fit`` on freshly generated batches
of one length each; ``dlbook.transformer.train_transformer`` uses the same loss on
batches of mixed lengths. ``accuracy_by_length`` scores greedy decoding by exact match.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from dlbook.text import (
    BOS,
    EOS,
    N_SPECIAL,
    PAD,
    SEQ2SEQ_TASKS,
    Seq2SeqData,
    make_seq2seq_data,
    sequence_matches,
)
from dlbook.train import History, TrainConfig, fit, train_step
from dlbook.utils import check_ids, check_positive_int, make_generator


@dataclass(frozen=True)
class Seq2SeqConfig:
    """Sizes of an LSTM encoder-decoder (Sutskever et al., 2014) without attention."""

    vocab_size: int  # tokens of source and target, special tokens included
    embed_dim: int = 32  # size of each token's embedding
    # H: the whole input must fit into the final (h, c) of this size
    hidden_size: int = 128
    n_layers: int = 1  # LSTM layers in the encoder and in the decoder


class Seq2Seq(nn.Module):
    """The encoder reads the source; its final state, a fixed-size context, starts the
    decoder."""

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = config
        c = config
        self.src_embed = nn.Embedding(c.vocab_size, c.embed_dim, padding_idx=PAD)
        self.tgt_embed = nn.Embedding(c.vocab_size, c.embed_dim, padding_idx=PAD)
        self.encoder = nn.LSTM(c.embed_dim, c.hidden_size, c.n_layers, batch_first=True)
        self.decoder = nn.LSTM(c.embed_dim, c.hidden_size, c.n_layers, batch_first=True)
        self.head = nn.Linear(c.hidden_size, c.vocab_size)

    def encode(
        self, src: torch.Tensor, src_len: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """src (B, S) padded, src_len (B,) -> the final (h, c), each (n_layers, B, H).

        Packing makes the LSTM stop at each row's own length, so padding never enters
        the state.
        """
        if src.dim() != 2 or src_len.shape != (src.shape[0],):
            raise ValueError(
                f"src must be (B, S) and src_len (B,), got "
                f"{tuple(src.shape)} "
                f"and {tuple(src_len.shape)}"
            )
        check_ids(src, self.config.vocab_size, "src")
        embedded = self.src_embed(src)  # (B, S, E)
        # no padding: the faster unpacked kernel
        if bool((src_len == src.shape[1]).all()):
            _, state = self.encoder(embedded)
        else:
            packed = pack_padded_sequence(
                embedded, src_len.cpu(), batch_first=True, enforce_sorted=False
            )
            _, state = self.encoder(packed)
        return state

    def forward(
        self, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor
    ) -> torch.Tensor:
        """Teacher forcing: the decoder reads the true previous tokens tgt_in (B, L),
        starting with BOS, and returns logits (B, L, V) for the next target token at
        each step."""
        check_ids(tgt_in, self.config.vocab_size, "tgt_in")
        # (B, L, H)
        hs, _ = self.decoder(self.tgt_embed(tgt_in), self.encode(src, src_len))
        return self.head(hs)

    @torch.no_grad()
    def greedy_decode(
        self, src: torch.Tensor, src_len: torch.Tensor, max_len: int
    ) -> torch.Tensor:
        """Decode by feeding back the most likely token; returns (B, max_len) ids, PAD
        after EOS."""
        state = self.encode(src, src_len)
        token = torch.full((src.shape[0], 1), BOS, dtype=torch.long, device=src.device)
        done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        out = []
        for _ in range(max_len):
            hs, state = self.decoder(self.tgt_embed(token), state)  # (B, 1, H)
            token = self.head(hs).argmax(dim=-1)  # (B, 1)
            out.append(token[:, 0].masked_fill(done, PAD))
            done |= token[:, 0] == EOS
            if bool(done.all()):
                break
        return torch.stack(out, dim=1)


@dataclass(frozen=True)
class Seq2SeqTrainConfig:
    """How to train an encoder-decoder on freshly generated examples (none is seen
    twice)."""

    training: TrainConfig = TrainConfig(
        steps=1000, batch_size=64, lr=3e-3, grad_clip=1.0
    )
    # the loop: steps, examples per batch, Adam, clipping (Pascanu et al., 2013), seed
    min_len: int = 1  # shortest training input
    max_len: int = 16  # longest training input
    n_symbols: int = 10  # letters the strings are made of
    task: str = "reverse"  # "reverse", "copy" or "sort"

    def __post_init__(self):
        if not isinstance(self.training, TrainConfig):
            raise TypeError(
                f"training must be a TrainConfig, got {type(self.training).__name__}"
            )
        if self.training.steps is None:
            raise ValueError(
                "training.steps must be set: batches are generated without end"
            )
        for name in ("min_len", "max_len", "n_symbols"):
            value = getattr(self, name)
            check_positive_int(value, name)
        if self.min_len > self.max_len:
            raise ValueError(
                f"need min_len <= max_len, got {self.min_len} > {self.max_len}"
            )
        if self.task not in SEQ2SEQ_TASKS:
            raise ValueError(f"task must be one of {SEQ2SEQ_TASKS}, got {self.task!r}")


def task_batches(config: Seq2SeqTrainConfig, one_length: bool) -> Iterator[Seq2SeqData]:
    """An endless stream of new batches, seeded by ``config.training.seed`` (plus the
    book's seed offset, ``dlbook.utils.make_generator``).

    With ``one_length`` every batch holds inputs of one length, drawn uniformly from
    ``min_len..max_len`` ("bucketing": no padding, so the LSTM wastes no steps);
    otherwise every batch mixes all lengths and is padded.
    """
    gen = make_generator(config.training.seed)
    for _ in itertools.count():
        low, high = config.min_len, config.max_len
        if one_length:
            low = high = int(torch.randint(low, high + 1, (1,), generator=gen))
        yield make_seq2seq_data(
            config.training.batch_size,
            low,
            high,
            config.n_symbols,
            config.task,
            generator=gen,
        )


def teacher_forcing_loss(model: nn.Module, data: Seq2SeqData) -> torch.Tensor:
    """Cross-entropy of an encoder-decoder ``model(src, src_len, tgt_in)`` on a batch:
    the decoder reads the true previous tokens and is scored on every next one (padding
    ignored). Shared by chapter 5's ``Seq2Seq`` and chapter 6's ``Transformer``."""
    if not isinstance(data, Seq2SeqData):
        raise TypeError(
            f"data must be a Seq2SeqData (see make_seq2seq_data), "
            f"got {type(data).__name__}"
        )
    device = next(model.parameters()).device
    src, src_len, tgt = (
        data.src.to(device),
        data.src_len.to(device),
        data.tgt.to(device),
    )
    logits = model(src, src_len, tgt[:, :-1])  # (B, L, V)
    return nn.functional.cross_entropy(
        logits.flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=PAD
    )


def teacher_forcing_step(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    data: Seq2SeqData,
    grad_clip: float | None,
) -> float:
    """One update of ``model`` on one batch with ``teacher_forcing_loss``; returns the
    loss."""
    return train_step(
        model, opt, [data], teacher_forcing_loss, grad_clip=grad_clip
    ).item()


def train_seq2seq(model: nn.Module, config: Seq2SeqTrainConfig) -> History:
    """Train with teacher forcing on batches of one input length each; returns the
    History (``step_loss`` holds the loss of every step)."""
    if not isinstance(config, Seq2SeqTrainConfig):
        raise TypeError(
            f"config must be a Seq2SeqTrainConfig, got {type(config).__name__}"
        )
    batches = task_batches(config, one_length=True)
    return fit(model, batches, teacher_forcing_loss, config.training, desc="seq2seq")


def accuracy_by_length(
    model: Seq2Seq,
    lengths: list[int],
    n_per_length: int = 200,
    n_symbols: int = 10,
    task: str = "reverse",
    seed: int = 1,
) -> dict[int, float]:
    """Exact-match accuracy of greedy decoding on ``n_per_length`` new inputs of each
    length."""
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    accuracy = {}
    for length in lengths:
        data = make_seq2seq_data(
            n_per_length, length, length, n_symbols, task, generator=gen
        )
        pred = model.greedy_decode(
            data.src.to(device), data.src_len.to(device), length + 1
        )
        accuracy[length] = (
            sequence_matches(pred.cpu(), data.tgt[:, 1:]).float().mean().item()
        )
    return accuracy


def seq2seq_vocab_size(n_symbols: int) -> int:
    """Tokens a task over ``n_symbols`` letters needs: the letters plus PAD, BOS and
    EOS."""
    return N_SPECIAL + n_symbols
