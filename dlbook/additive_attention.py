"""Additive attention (Bahdanau et al., 2015) on chapter 5's LSTM encoder-decoder
(chapter 6).

``AttentionSeq2Seq`` is ``dlbook.seq2seq.Seq2Seq`` with one change: at every output step
the decoder also reads a *context*, a weighted mean of all encoder states, whose weights
come from ``additive_attention``. Everything else is the same (embeddings, one-layer
LSTMs of the same size, the encoder's final state starting the decoder, greedy
decoding), so chapter 6 can compare the LSTM, the LSTM with attention and the
Transformer on the same task. Unlike Bahdanau et al., the encoder reads in one direction
only, as chapter 5's does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from dlbook.attention import padding_mask
from dlbook.text import BOS, EOS, PAD


def additive_attention(
    query: torch.Tensor,
    keys: torch.Tensor,
    W_q: nn.Linear,
    W_k: nn.Linear,
    v: nn.Linear,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bahdanau et al.'s (2015) attention: ``e_j = v^T tanh(W_q s + W_k h_j)``, softmax
    over j.

    Args:
        query: (B, H) the decoder's previous state s.
        keys: (B, S, H) the encoder states h_j, which are also the values.
        W_q, W_k: linear maps H -> A; v: a linear map A -> 1.
        mask: (B, S) booleans, False where a key must get weight 0 (padding).

    Returns:
        ``(context, weights)``: context (B, H) = sum_j alpha_j h_j, weights (B, S).
    """
    if query.dim() != 2 or keys.dim() != 3 or keys.shape[0] != query.shape[0]:
        raise ValueError(
            f"query must be (B, H) and keys (B, S, H), got "
            f"{tuple(query.shape)} "
            f"and {tuple(keys.shape)}"
        )
    scores = v(torch.tanh(W_q(query)[:, None] + W_k(keys))).squeeze(-1)  # (B, S)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # (B, S)
    context = (weights[:, :, None] * keys).sum(dim=1)  # (B, H)
    return context, weights


@dataclass(frozen=True)
class AttentionSeq2SeqConfig:
    """Sizes of an LSTM encoder-decoder with additive attention."""

    vocab_size: int  # tokens of source and target, special tokens included
    embed_dim: int = 32  # size of each token's embedding
    hidden_size: int = 128  # H, as in chapter 5's Seq2Seq
    attention_size: int = 64  # A, the width of the attention MLP


class AttentionSeq2Seq(nn.Module):
    """An LSTM encoder-decoder whose decoder attends to all encoder states at every
    step."""

    def __init__(self, config: AttentionSeq2SeqConfig):
        super().__init__()
        self.config = c = config
        self.src_embed = nn.Embedding(c.vocab_size, c.embed_dim, padding_idx=PAD)
        self.tgt_embed = nn.Embedding(c.vocab_size, c.embed_dim, padding_idx=PAD)
        self.encoder = nn.LSTM(c.embed_dim, c.hidden_size, batch_first=True)
        # [y; context]
        self.decoder = nn.LSTMCell(c.embed_dim + c.hidden_size, c.hidden_size)
        self.W_q = nn.Linear(c.hidden_size, c.attention_size, bias=False)
        self.W_k = nn.Linear(c.hidden_size, c.attention_size)
        self.v = nn.Linear(c.attention_size, 1, bias=False)
        self.head = nn.Linear(2 * c.hidden_size, c.vocab_size)  # reads [s_i; context_i]

    def encode(self, src: torch.Tensor, src_len: torch.Tensor):
        """src (B, S), src_len (B,) -> (states (B, S, H), mask (B, S), final (h, c) each
        (B, H))."""
        if src.dim() != 2 or src_len.shape != (src.shape[0],):
            raise ValueError(
                f"src must be (B, S) and src_len (B,), got "
                f"{tuple(src.shape)} "
                f"and {tuple(src_len.shape)}"
            )
        packed = pack_padded_sequence(
            self.src_embed(src), src_len.cpu(), batch_first=True, enforce_sorted=False
        )
        out, (h, c) = self.encoder(packed)
        states, _ = pad_packed_sequence(
            out, batch_first=True, total_length=src.shape[1]
        )
        mask = padding_mask(src_len, src.shape[1])[:, 0, 0]  # (B, S)
        return states, mask, (h[0], c[0])

    def step(
        self, token: torch.Tensor, state, states: torch.Tensor, mask: torch.Tensor
    ):
        """One decoder step: token (B,) -> (logits (B, V), new state, attention weights
        (B, S))."""
        context, weights = additive_attention(
            state[0], states, self.W_q, self.W_k, self.v, mask
        )
        state = self.decoder(torch.cat([self.tgt_embed(token), context], dim=-1), state)
        logits = self.head(torch.cat([state[0], context], dim=-1))
        return logits, state, weights

    def forward(
        self,
        src: torch.Tensor,
        src_len: torch.Tensor,
        tgt_in: torch.Tensor,
        need_weights: bool = False,
    ):
        """Teacher forcing: logits (B, L, V) for each next target token given tgt_in (B,
        L); with ``need_weights`` also the attention weights (B, L, S)."""
        states, mask, state = self.encode(src, src_len)
        logits, maps = [], []
        for i in range(tgt_in.shape[1]):
            step_logits, state, weights = self.step(tgt_in[:, i], state, states, mask)
            logits.append(step_logits)
            maps.append(weights)
        logits = torch.stack(logits, dim=1)
        return (logits, torch.stack(maps, dim=1)) if need_weights else logits

    @torch.no_grad()
    def greedy_decode(
        self, src: torch.Tensor, src_len: torch.Tensor, max_len: int
    ) -> torch.Tensor:
        """Decode by feeding back the most likely token; returns (B, max_len) ids, PAD
        after EOS."""
        states, mask, state = self.encode(src, src_len)
        token = torch.full((src.shape[0],), BOS, dtype=torch.long, device=src.device)
        done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        out = []
        for _ in range(max_len):
            logits, state, _ = self.step(token, state, states, mask)
            token = logits.argmax(dim=-1)  # (B,)
            out.append(token.masked_fill(done, PAD))
            done |= token == EOS
            if bool(done.all()):
                break
        out = torch.stack(out, dim=1)
        return nn.functional.pad(out, (0, max_len - out.shape[1]), value=PAD)
