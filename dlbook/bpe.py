"""Byte-pair encoding (BPE): a subword vocabulary learned from a corpus (Sennrich et
al., 2016).

Training starts from the text's single characters and repeatedly merges the most
frequent adjacent pair of symbols into a new symbol, until the vocabulary has the
requested size. Encoding replays the merges in the order they were learned. As in GPT-2,
the text is first cut into chunks (words with their leading space, numbers, punctuation,
whitespace) and no merge crosses a chunk boundary, so ``"the"`` and ``" the"`` become
tokens but ``"e t"`` does not.

``BPETokenizer`` has the interface of ``dlbook.text.CharVocab``: ``encode``, ``decode``,
``len``; characters never seen in training raise a ``ValueError`` naming them. (GPT-2
starts from the 256 bytes instead of characters, so no input is ever unknown.)
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from operator import itemgetter
from typing import Sequence

import torch

from dlbook.text import checked_ids
from dlbook.utils import check_positive_int

# A word (letters, digits not first, underscores) or a number or a run of punctuation,
# each with an optional leading space; or whitespace. Every character falls into one
# alternative.
CHUNK = re.compile(r" ?[^\W\d]\w*| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+")


def chunks(text: str) -> list[str]:
    """Cut text into the pieces merges may not cross; ``"".join(chunks(t)) == t``."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return CHUNK.findall(text)


def merge_pair(seq: list[str], pair: tuple[str, str]) -> list[str]:
    """Replace every non-overlapping occurrence of ``pair`` in seq, left to right, by
    its join."""
    out, i = [], 0
    while i < len(seq):
        if i + 1 < len(seq) and (seq[i], seq[i + 1]) == pair:
            out.append(seq[i] + seq[i + 1])
            i += 2
        else:
            out.append(seq[i])
            i += 1
    return out


def learn_merges(text: str, n_merges: int) -> list[tuple[str, str]]:
    """The first ``n_merges`` merges of BPE on ``text`` (fewer if no pair occurs twice).

    Pair counts are kept up to date incrementally: a merge only rewrites the chunks that
    contain the merged pair, so each merge costs time proportional to those chunks, not
    to the corpus.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    check_positive_int(n_merges, "n_merges", minimum=0)
    words = Counter(chunks(text))  # chunk -> how often it occurs
    seqs = [list(w) for w in words]
    freq = list(words.values())
    pair_count: Counter[tuple[str, str]] = Counter()
    # pair -> chunks with it
    where: defaultdict[tuple[str, str], set[int]] = defaultdict(set)
    for i, seq in enumerate(seqs):
        for pair in zip(seq, seq[1:]):
            pair_count[pair] += freq[i]
            where[pair].add(i)
    merges = []
    while len(merges) < n_merges and pair_count:
        # the most frequent pair (ties go to the pair counted first: training is
        # deterministic)
        best = max(pair_count.items(), key=itemgetter(1))[0]
        if pair_count[best] < 2:
            break
        merges.append(best)
        for i in where.pop(best):
            for pair in zip(seqs[i], seqs[i][1:]):
                pair_count[pair] -= freq[i]
                if pair_count[pair] == 0:
                    del pair_count[pair]
            seqs[i] = merge_pair(seqs[i], best)
            for pair in zip(seqs[i], seqs[i][1:]):
                pair_count[pair] += freq[i]
                where[pair].add(i)
    return merges


class BPETokenizer:
    """A BPE vocabulary: the base characters, then one token per learned merge.

    Token ids: ``0 .. len(chars) - 1`` are the characters in sorted order, then the
    merged tokens in the order they were learned.
    """

    def __init__(self, chars: Sequence[str], merges: Sequence[tuple[str, str]]):
        chars = list(chars)
        if not chars or any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ValueError(
                f"chars must be single-character strings, got {chars[:10]!r}"
            )
        self.chars: tuple[str, ...] = tuple(chars)
        self.merges: tuple[tuple[str, str], ...] = tuple(tuple(m) for m in merges)
        self.tokens: tuple[str, ...] = self.chars + tuple(a + b for a, b in self.merges)
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.tokens)}
        if len(self.stoi) != len(self.tokens):
            raise ValueError(
                "chars and merges must give distinct tokens, got duplicates"
            )
        self.rank = {pair: r for r, pair in enumerate(self.merges)}
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def train(cls, text: str, vocab_size: int) -> BPETokenizer:
        """Learn merges on ``text`` until the vocabulary holds ``vocab_size`` tokens."""
        if not isinstance(text, str) or not text:
            raise ValueError(f"text must be a non-empty str, got {type(text).__name__}")
        chars = sorted(set(text))
        check_positive_int(vocab_size, "vocab_size")
        if vocab_size < len(chars):
            raise ValueError(
                f"vocab_size must be an int >= the {len(chars)} distinct "
                f"characters of the text, got {vocab_size!r}"
            )
        return cls(chars, learn_merges(text, vocab_size - len(chars)))

    def __len__(self) -> int:
        return len(self.tokens)

    def __repr__(self) -> str:
        return f"BPETokenizer({len(self.chars)} characters + {len(self.merges)} merges)"

    def _encode_chunk(self, chunk: str) -> list[int]:
        """Apply the merges to one chunk, always the earliest-learned pair first."""
        if chunk not in self._cache:
            seq = list(chunk)
            while len(seq) > 1:
                pair = min(
                    zip(seq, seq[1:]), key=lambda p: self.rank.get(p, len(self.rank))
                )
                if pair not in self.rank:
                    break
                seq = merge_pair(seq, pair)
            self._cache[chunk] = [self.stoi[t] for t in seq]
        return self._cache[chunk]

    def encode(self, text: str) -> torch.Tensor:
        """Map a string to a LongTensor of token ids, shape (n_tokens,)."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        unknown = sorted(set(text) - set(self.chars))
        if unknown:
            raise ValueError(f"characters not in the vocabulary: {unknown[:20]!r}")
        ids = [i for chunk in chunks(text) for i in self._encode_chunk(chunk)]
        return torch.tensor(ids, dtype=torch.long)

    def tokenize(self, text: str) -> list[str]:
        """The token strings ``encode`` produces, to see where the boundaries fall."""
        return [self.tokens[i] for i in self.encode(text).tolist()]

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        """Map a 1-D sequence of ids (tensor or list of ints) back to a string."""
        return "".join(self.tokens[i] for i in checked_ids(ids, len(self)))
