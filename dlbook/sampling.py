"""Choosing the next token from a language model's logits: greedy, temperature, top-k,
top-p.

A language model gives, at each step, logits ``z`` over the vocabulary. Sampling draws
the next token from ``softmax(z / temperature)``, optionally restricted to the ``top_k``
most likely tokens (Fan et al., 2018) or to the smallest set whose probability reaches
``top_p`` (nucleus sampling, Holtzman et al., 2020). Chapter 5's LSTM and chapter 7's
GPT both sample with ``sample_next``.
"""

from __future__ import annotations

import re

import torch

from dlbook.utils import check_positive_int, check_real


def check_sampling_options(
    temperature: float, top_k: int | None, top_p: float | None
) -> None:
    """Raise a ValueError or TypeError naming the first bad sampling option."""
    check_real(temperature, "temperature", 0.0)
    if top_k is not None:
        check_positive_int(top_k, "top_k")
    if top_p is not None:
        check_real(top_p, "top_p", 0.0, 1.0, low_open=True)


def _check_options(
    logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None
) -> None:
    """Raise a ValueError or TypeError naming the first bad argument."""
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        shape = getattr(logits, "shape", logits)
        raise ValueError(f"logits must be a (B, V) tensor, got {shape!r}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be floating point, got {logits.dtype}")
    if logits.shape[1] < 1:
        raise ValueError(
            f"logits must have at least one token, got shape {tuple(logits.shape)}"
        )
    check_sampling_options(temperature, top_k, top_p)


def next_token_probs(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """The distribution ``sample_next`` draws from, shape (B, V), each row summing to 1.

    ``p_i = exp(z_i / T) / sum_j exp(z_j / T)`` over the tokens that survive the top-k
    and top-p filters (the others get probability 0). ``temperature == 0`` gives a
    one-hot at the argmax.
    """
    _check_options(logits, temperature, top_k, top_p)
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(dim=-1), logits.shape[-1]).to(
            logits.dtype
        )
    z = logits / temperature
    if top_k is not None and top_k < z.shape[-1]:
        kth_largest = torch.topk(z, top_k, dim=-1).values[:, -1:]  # (B, 1)
        z = z.masked_fill(z < kth_largest, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_z, order = torch.sort(z, dim=-1, descending=True)
        sorted_p = torch.softmax(sorted_z, dim=-1)
        # Drop a token when the tokens ranked above it already hold top_p of the mass;
        # the most likely token is always kept.
        mass_before = torch.cumsum(sorted_p, dim=-1) - sorted_p
        sorted_z = sorted_z.masked_fill(mass_before >= top_p, float("-inf"))
        z = torch.empty_like(z).scatter_(-1, order, sorted_z)
    return torch.softmax(z, dim=-1)


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one next token per row of ``logits``.

    Args:
        logits: (B, V) unnormalized log-probabilities of the next token.
        temperature: divides the logits; below 1 sharpens, above 1 flattens, 0 is greedy
            (the argmax, no randomness).
        top_k: keep only the ``top_k`` largest logits.
        top_p: keep the smallest set of most likely tokens whose probability reaches
            ``top_p``.
        generator: a ``torch.Generator`` on ``logits``' device, for reproducible draws.

    Returns:
        (B,) int64 token ids on ``logits``' device.
    """
    _check_options(logits, temperature, top_k, top_p)
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = next_token_probs(logits.float(), temperature, top_k, top_p)
    # (B,)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


# ----- measuring samples: how repetitive, how many invented words

WORD = re.compile(r"[A-Za-z]+")


def repeated_ngram_rate(texts: list[str], n: int = 8) -> float:
    """The fraction of character n-grams of each text that already occurred earlier in
    it.

    A text stuck in a loop repeats most of its n-grams (rate near 1); varied text few.
    Pooled over ``texts``: repeated n-grams of all texts over all their n-grams.
    """
    check_positive_int(n, "n")
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError(f"texts must be a list of str, got {type(texts).__name__}")
    repeated = total = 0
    for text in texts:
        seen: set[str] = set()
        for i in range(len(text) - n + 1):
            gram = text[i : i + n]
            repeated += gram in seen
            seen.add(gram)
        total += max(0, len(text) - n + 1)
    if total == 0:
        raise ValueError(f"texts must hold at least one text of {n} or more characters")
    return repeated / total


def unknown_word_rate(texts: list[str], known: set[str]) -> float:
    """The fraction of the words (runs of ASCII letters) of ``texts`` that are not in
    ``known``.

    The first and last word of each text are skipped, since a sample may begin or end
    inside a word. Pooled over ``texts``.
    """
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError(f"texts must be a list of str, got {type(texts).__name__}")
    unknown = total = 0
    for text in texts:
        words = WORD.findall(text)[1:-1]
        unknown += sum(word not in known for word in words)
        total += len(words)
    if total == 0:
        raise ValueError("texts hold no words beyond their first and last")
    return unknown / total
