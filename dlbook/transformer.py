"""The Transformer: a pre-LN block, and an encoder-decoder for chapter 5's sequence
tasks.

One ``TransformerBlock`` serves three roles: an encoder layer (self-attention over the
source), a decoder layer (masked self-attention, then attention to the encoder's output)
and, without cross-attention, a GPT layer (chapter 7). Layer normalization (Ba et al.,
2016) sits at the *input* of each sub-layer ("pre-LN", Xiong et al., 2020; GPT-2), not
after the residual sum as in Vaswani et al. (2017): the residual path then carries the
input unchanged to the output, and training needs no learning-rate warm-up to stay
stable.

``Transformer`` has the interface of ``dlbook.seq2seq.Seq2Seq``
(``forward(src, src_len, tgt_in)`` and ``greedy_decode``), so chapter 6 scores it with
the same functions as the LSTM. ``train_transformer`` trains it on the same task with
batches that mix all input lengths.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dlbook.attention import (
    KVCache,
    MultiHeadAttention,
    SinusoidalPositions,
    _check_mha_inputs,
    padding_mask,
    rotary_embedding,
)
from dlbook.seq2seq import Seq2SeqTrainConfig, task_batches, teacher_forcing_loss
from dlbook.text import BOS, EOS, PAD
from dlbook.train import History, fit
from dlbook.utils import check_ids


class FeedForward(nn.Module):
    """The position-wise MLP ``W_2 GELU(W_1 x + b_1) + b_2``, applied to every token
    alone.

    Vaswani et al. (2017) used ReLU; GELU (Hendrycks and Gimpel, 2016) is GPT's choice.
    """

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.fc = nn.Linear(d_model, d_ff)
        self.proj = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, d_model) -> (B, T, d_model)."""
        return self.dropout(self.proj(nn.functional.gelu(self.fc(x))))


class RotaryAttention(MultiHeadAttention):
    """Multi-head attention whose queries and keys are turned by ``rotary_embedding``
    at their positions before the scores (RoPE, Su et al., 2024), so that every score
    depends on positions only through ``m - n``. Queries sit at positions
    ``0 .. T_q - 1`` and keys at ``0 .. T_k - 1``: meant for self-attention."""

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        need_weights: bool = False,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Arguments and result as in ``MultiHeadAttention.forward``; no cache."""
        _check_mha_inputs(query, key, value, self.d_model, mask, cache, is_causal)
        if cache is not None:
            raise ValueError("RotaryAttention takes no cache (positions start at 0)")
        q = rotary_embedding(self.split_heads(self.q_proj(query)))  # (B, nh, T_q, hs)
        k = rotary_embedding(self.split_heads(self.k_proj(key)))  # (B, nh, T_k, hs)
        v = self.split_heads(self.v_proj(value))
        return self._attend(q, k, v, mask, need_weights, is_causal)


class TransformerBlock(nn.Module):
    """A pre-LN block: ``x + SelfAttn(LN(x))``, optionally
    ``+ CrossAttn(LN(x), memory)``, then ``+ FFN(LN(x))``. ``dropout`` acts on each
    branch's output before the sum, ``attn_dropout`` on the attention weights. With
    ``rotary`` the self-attention is ``RotaryAttention``.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.0,
        cross_attention: bool = False,
        attn_dropout: float = 0.0,
        rotary: bool = False,
    ):
        super().__init__()
        self.ln_self = nn.LayerNorm(d_model)
        self_attention = RotaryAttention if rotary else MultiHeadAttention
        self.self_attn = self_attention(d_model, n_heads, attn_dropout)
        self.ln_cross = nn.LayerNorm(d_model) if cross_attention else None
        self.cross_attn = (
            MultiHeadAttention(d_model, n_heads, attn_dropout)
            if cross_attention
            else None
        )
        self.ln_ff = nn.LayerNorm(d_model)
        self.ff = FeedForward(d_model, d_ff, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        memory: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        need_weights: bool = False,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Update the token vectors x (B, T, d_model).

        Args:
            mask: self-attention mask, broadcastable to (B, n_heads, T, T_k).
            memory: (B, S, d_model) the encoder's output, for cross-attention.
            memory_mask: broadcastable to (B, n_heads, T, S), e.g. ``padding_mask``.
            cache: the self-attention's key-value cache (generation).
            need_weights: also return the attention weights of the last attention (the
                cross-attention if there is one), (B, n_heads, T, T_k or S).
            is_causal: self-attention sees only earlier positions, as ``causal_mask``
                would make it (then ``mask`` must be None); lets PyTorch pick its causal
                kernels.

        Returns:
            ``(x, weights)``: the new x (B, T, d_model); weights or None.
        """
        h = self.ln_self(x)
        update, weights = self.self_attn(h, h, h, mask, cache, need_weights, is_causal)
        x = x + self.dropout(update)
        if self.cross_attn is not None:
            if memory is None:
                raise ValueError(
                    "a block with cross-attention needs memory (B, S, d_model)"
                )
            h = self.ln_cross(x)
            update, weights = self.cross_attn(
                h, memory, memory, memory_mask, need_weights=need_weights
            )
            x = x + self.dropout(update)
        return x + self.ff(self.ln_ff(x)), weights


@dataclass(frozen=True)
class TransformerConfig:
    """Sizes of an encoder-decoder Transformer. Vaswani et al. (2017) used d_model 512,
    8 heads, 6 + 6 layers and d_ff 2048; a generated task needs far less."""

    vocab_size: int  # tokens of source and target, special tokens included
    max_len: int = 64  # longest source or target sequence (sinusoidal positions)
    d_model: int = 64  # width of every token vector
    n_heads: int = 4  # attention heads per attention layer
    n_layers: int = 2  # encoder blocks, and as many decoder blocks
    # hidden width of the position-wise MLP (4 d_model, the paper's ratio)
    d_ff: int = 256
    dropout: float = 0.0  # residual dropout (the paper: 0.1)
    # "sinusoidal": fixed encodings added to the embeddings (the paper); "rotary": none
    # added, queries and keys of every self-attention rotated instead (RoPE)
    positions: str = "sinusoidal"

    def __post_init__(self):
        if self.positions not in POSITIONS:
            raise ValueError(
                f"positions must be one of {POSITIONS}, got {self.positions!r}"
            )


POSITIONS = ("sinusoidal", "rotary")


class Transformer(nn.Module):
    """The encoder reads the whole source with self-attention; the decoder attends
    causally to its own previous tokens and, at every layer, to all encoder outputs
    (Vaswani et al., fig. 1).
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = c = config
        self.src_embed = nn.Embedding(c.vocab_size, c.d_model, padding_idx=PAD)
        self.tgt_embed = nn.Embedding(c.vocab_size, c.d_model, padding_idx=PAD)
        rotary = c.positions == "rotary"
        # rotary positions enter inside the self-attentions, so none are added here
        self.positions = (
            nn.Identity() if rotary else SinusoidalPositions(c.max_len, c.d_model)
        )
        self.encoder = nn.ModuleList(
            TransformerBlock(c.d_model, c.n_heads, c.d_ff, c.dropout, rotary=rotary)
            for _ in range(c.n_layers)
        )
        # cross-attention compares positions of two different sequences, so it stays
        # without positions, as in T5's relative positions (Raffel et al., 2020)
        self.decoder = nn.ModuleList(
            TransformerBlock(
                c.d_model,
                c.n_heads,
                c.d_ff,
                c.dropout,
                cross_attention=True,
                rotary=rotary,
            )
            for _ in range(c.n_layers)
        )
        self.ln_encoder = nn.LayerNorm(c.d_model)  # pre-LN stacks end with a layer norm
        self.ln_decoder = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.vocab_size)

    def encode(
        self, src: torch.Tensor, src_len: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """src (B, S) padded, src_len (B,) -> (memory (B, S, d_model), mask (B, 1, 1,
        S)).

        The padding mask keeps every query, in the encoder and later in the decoder's
        cross-attention, from looking at padded positions.
        """
        if src.dim() != 2 or src_len.shape != (src.shape[0],):
            raise ValueError(
                f"src must be (B, S) and src_len (B,), got "
                f"{tuple(src.shape)} "
                f"and {tuple(src_len.shape)}"
            )
        check_ids(src, self.config.vocab_size, "src")
        mask = padding_mask(src_len, src.shape[1])
        x = self.positions(self.src_embed(src))  # (B, S, d_model)
        for block in self.encoder:
            x, _ = block(x, mask)
        return self.ln_encoder(x), mask

    def decode(
        self,
        tgt_in: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Next-token logits (B, L, V) for the target prefix tgt_in (B, L), and, when
        ``need_weights``, each decoder layer's cross-attention weights (B, n_heads, L,
        S)."""
        check_ids(tgt_in, self.config.vocab_size, "tgt_in")
        x = self.positions(self.tgt_embed(tgt_in))  # (B, L, d_model)
        maps = []
        for block in self.decoder:
            # causal self-attention: each target position sees itself and earlier ones
            x, weights = block(
                x, None, memory, memory_mask, need_weights=need_weights, is_causal=True
            )
            maps.append(weights)
        return self.head(self.ln_decoder(x)), maps if need_weights else []

    def forward(
        self, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor
    ) -> torch.Tensor:
        """Teacher forcing: logits (B, L, V) for each next target token, given the true
        previous ones tgt_in (B, L) starting with BOS. All L positions are computed at
        once."""
        memory, memory_mask = self.encode(src, src_len)
        return self.decode(tgt_in, memory, memory_mask)[0]

    @torch.no_grad()
    def greedy_decode(
        self, src: torch.Tensor, src_len: torch.Tensor, max_len: int
    ) -> torch.Tensor:
        """Decode by feeding back the most likely token; returns (B, max_len) ids, PAD
        after EOS.

        The source is encoded once; the decoder re-reads its growing prefix at every
        step.
        """
        was_training = self.training
        self.eval()
        memory, memory_mask = self.encode(src, src_len)
        tokens = torch.full((src.shape[0], 1), BOS, dtype=torch.long, device=src.device)
        done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        for _ in range(max_len):
            logits, _ = self.decode(tokens, memory, memory_mask)
            nxt = logits[:, -1].argmax(dim=-1).masked_fill(done, PAD)  # (B,)
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
            done |= nxt == EOS
            if bool(done.all()):
                break
        self.train(was_training)
        out = tokens[:, 1:]
        # (B, max_len)
        return nn.functional.pad(out, (0, max_len - out.shape[1]), value=PAD)


def train_transformer(model: Transformer, config: Seq2SeqTrainConfig) -> History:
    """Train with teacher forcing and cross-entropy on every target token; returns the
    History (``step_loss`` holds the loss of every step).

    Unlike ``dlbook.seq2seq.train_seq2seq``, whose batches hold one input length each,
    every batch mixes lengths ``min_len..max_len`` and is padded; the masks make the
    padding invisible.
    """
    if not isinstance(config, Seq2SeqTrainConfig):
        raise TypeError(
            f"config must be a Seq2SeqTrainConfig, got {type(config).__name__}"
        )
    batches = task_batches(config, one_length=False)
    return fit(
        model, batches, teacher_forcing_loss, config.training, desc="transformer"
    )
