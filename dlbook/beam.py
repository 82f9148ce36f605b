"""Beam search for chapter 5's LSTM encoder-decoder (``dlbook.seq2seq.Seq2Seq``).

Greedy decoding keeps the single most likely token at every step. Beam search keeps the
``beam_size`` most likely *prefixes* (by the sum of their tokens' log-probabilities),
extends each by every token, and keeps the best ``beam_size`` of the extensions, so a
prefix that starts with a less likely token can still win if what follows is likely.
With ``beam_size=1`` it is greedy decoding. ``sequence_log_prob`` scores any output
under the model, so the two can be compared by the probability the model itself assigns.
"""

from __future__ import annotations

import torch

from dlbook.seq2seq import Seq2Seq
from dlbook.text import BOS, EOS, PAD
from dlbook.utils import check_positive_int


def _decoder_step(model: Seq2Seq, tokens: torch.Tensor, state):
    """tokens (K,) -> (log-probabilities (K, V) of the next token, the new state)."""
    hs, state = model.decoder(model.tgt_embed(tokens[:, None]), state)  # (K, 1, H)
    return torch.log_softmax(model.head(hs[:, 0]), dim=-1), state


@torch.no_grad()
def beam_search(
    model: Seq2Seq,
    src: torch.Tensor,
    src_len: torch.Tensor,
    beam_size: int,
    max_len: int,
) -> list[int]:
    """The most likely output for one source (1, S) found by a beam of ``beam_size``
    prefixes.

    Returns the output tokens up to and including EOS (or ``max_len`` tokens if none
    ended). A finished prefix (one that emitted EOS) leaves the beam and competes with
    the others by its total log-probability; the search stops when no unfinished prefix
    can still beat the best finished one, since adding tokens only lowers a
    log-probability.
    """
    if src.dim() != 2 or src.shape[0] != 1:
        raise ValueError(
            f"src must be one source of shape (1, S), got {tuple(src.shape)}"
        )
    check_positive_int(beam_size, "beam_size")
    model.eval()
    # (h, c), each (n_layers, K, H) with K = 1 prefix
    state = model.encode(src, src_len)
    prefixes = [[]]  # the live prefixes' tokens
    scores = torch.zeros(1, device=src.device)  # (K,) their log-probabilities
    # (K,) their last token
    tokens = torch.full((1,), BOS, dtype=torch.long, device=src.device)
    best, best_score = None, -float("inf")
    for _ in range(max_len):
        log_p, state = _decoder_step(model, tokens, state)  # (K, V)
        # (K * V,): every one-token extension
        candidates = (scores[:, None] + log_p).flatten()
        top_scores, top = candidates.topk(min(beam_size, len(candidates)))
        rows, next_tokens = top // log_p.shape[1], top % log_p.shape[1]  # prefix, token
        ended = next_tokens == EOS
        for score, row in zip(
            top_scores[ended].tolist(), rows[ended].tolist(), strict=True
        ):
            if score > best_score:
                best, best_score = prefixes[row] + [EOS], score
        live = ~ended
        if not bool(live.any()) or top_scores[live].max().item() <= best_score:
            # extending a prefix only lowers its score: no live prefix can win any more
            break
        prefixes = [
            prefixes[r] + [t]
            for r, t in zip(
                rows[live].tolist(), next_tokens[live].tolist(), strict=True
            )
        ]
        scores, tokens = top_scores[live], next_tokens[live]
        state = (state[0][:, rows[live]], state[1][:, rows[live]])
    if best is None:  # nothing ended within max_len: return the best unfinished prefix
        best = prefixes[int(scores.argmax())]
    return best


@torch.no_grad()
def sequence_log_prob(
    model: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, output: list[int]
) -> float:
    """log p(output | src) under the model, teacher-forced: the sum over the output's
    tokens."""
    model.eval()
    out = torch.tensor([output], dtype=torch.long, device=src.device)  # (1, L)
    tgt_in = torch.cat(
        [torch.full((1, 1), BOS, dtype=torch.long, device=src.device), out[:, :-1]],
        dim=1,
    )
    log_p = torch.log_softmax(model(src, src_len, tgt_in), dim=-1)  # (1, L, V)
    return log_p.gather(-1, out[..., None]).sum().item()


def strip(tokens: torch.Tensor | list[int]) -> list[int]:
    """An output row without its padding: the tokens up to and including the first
    EOS."""
    tokens = tokens.tolist() if isinstance(tokens, torch.Tensor) else list(tokens)
    tokens = [t for t in tokens if t != PAD]
    return tokens[: tokens.index(EOS) + 1] if EOS in tokens else tokens
