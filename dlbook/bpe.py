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

The second part trains chapter 7's GPT on BPE tokens instead of characters:
``BPECorpus`` re-encodes a ``CharCorpus``'s splits, ``per_char_loss`` and
``evaluate_per_char`` put a per-token loss on the per-character scale, and
``save_bpe_lm`` / ``load_bpe_lm`` keep the merges with the weights.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any, Sequence

import torch

from dlbook.checkpoint import load_checkpoint, shipped_checkpoint
from dlbook.gpt import GPT, GPTConfig, _save_lm
from dlbook.text import CharCorpus, checked_ids, evaluate_char_lm
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


# ----- chapter 7's GPT on BPE tokens: the corpus, the per-character loss, checkpoints

BPE_LM_KIND = "bpe_lm"
GPT_BPE_CHECKPOINT = "gpt_bpe_pydoc.pt"  # shipped, listed in checkpoints/MANIFEST.json
BPE_VOCAB_SIZE = 512  # chapter 7's BPE vocabulary


@dataclass(frozen=True, eq=False)
class BPECorpus:
    """A ``CharCorpus``'s two splits re-encoded with BPE, learned on the training split.

    It has the interface ``dlbook.text.train_char_lm`` uses (``vocab``, ``train``,
    ``val``), so the character models' training loop trains on tokens unchanged. Each
    split is decoded to text and encoded on its own, so the validation text is exactly
    the character model's.
    """

    vocab: BPETokenizer  # learned on the training text only
    train: torch.Tensor  # (N_train,) int64 token ids
    val: torch.Tensor  # (N_val,) int64 token ids
    train_chars: int  # characters of the training text
    val_chars: int  # characters of the validation text

    @classmethod
    def from_char_corpus(
        cls,
        corpus: CharCorpus,
        vocab_size: int = BPE_VOCAB_SIZE,
        tokenizer: BPETokenizer | None = None,
    ) -> BPECorpus:
        """Encode ``corpus``'s splits with ``tokenizer``, or with a BPE of
        ``vocab_size`` tokens trained on ``corpus``'s training text."""
        if not isinstance(corpus, CharCorpus):
            raise TypeError(f"corpus must be a CharCorpus, got {type(corpus).__name__}")
        train_text = corpus.vocab.decode(corpus.train)
        val_text = corpus.vocab.decode(corpus.val)
        if tokenizer is None:
            tokenizer = BPETokenizer.train(train_text, vocab_size)
        elif not isinstance(tokenizer, BPETokenizer):
            raise TypeError(
                f"tokenizer must be a BPETokenizer or None, got "
                f"{type(tokenizer).__name__}"
            )
        return cls(
            tokenizer,
            tokenizer.encode(train_text),
            tokenizer.encode(val_text),
            len(train_text),
            len(val_text),
        )

    @property
    def chars_per_token(self) -> float:
        """Characters per token of the validation text (the compression c)."""
        return self.val_chars / len(self.val)

    def __repr__(self) -> str:
        return (
            f"BPECorpus(vocab={len(self.vocab)} tokens, train={len(self.train):,} "
            f"tokens, val={len(self.val):,} tokens = {self.val_chars:,} chars)"
        )


def per_char_loss(loss_per_token: float, n_tokens: int, n_chars: int) -> float:
    """A loss per token turned into a loss per character of the same text.

    The text's total loss is ``loss_per_token * n_tokens``; spread over its ``n_chars``
    characters it is ``loss_per_token / c`` with c = ``n_chars / n_tokens`` characters
    per token. For a character tokenizer (c = 1) nothing changes.
    """
    check_positive_int(n_tokens, "n_tokens")
    check_positive_int(n_chars, "n_chars")
    return float(loss_per_token) * n_tokens / n_chars


def evaluate_per_char(
    model: torch.nn.Module, corpus: BPECorpus, block_size: int
) -> float:
    """Validation loss in nats per character: the mean next-token loss on windows of
    ``block_size`` tokens covering the whole validation split, divided by the split's
    characters per token."""
    loss = evaluate_char_lm(model, corpus.val, block_size)
    return per_char_loss(loss, len(corpus.val), corpus.val_chars)


def _tokenizer_config(tokenizer: BPETokenizer) -> dict:
    return {
        "chars": "".join(tokenizer.chars),
        "merges": [list(m) for m in tokenizer.merges],
    }


def save_bpe_lm(
    path: str | Path,
    model: GPT,
    corpus: BPECorpus,
    *,
    block_size: int,
    eval_windows: int,
    train_config: Any = None,
    summary: dict | None = None,
    force: bool = False,
) -> dict:
    """Save a GPT trained on BPE tokens with its tokenizer (characters and merges), the
    way ``dlbook.gpt.save_char_lm`` saves a character model: float16 weights, reloaded
    to measure the validation loss per token and per character with exactly what is
    saved. Returns the record."""
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a GPT, got {type(model).__name__}")
    if model.config.vocab_size != len(corpus.vocab):
        raise ValueError(
            f"model.config.vocab_size is {model.config.vocab_size}, the tokenizer "
            f"has {len(corpus.vocab)} tokens"
        )
    config = {
        "model": "gpt",
        "model_config": dataclasses.asdict(model.config),
        **_tokenizer_config(corpus.vocab),
    }

    def measures(val_loss: float) -> dict:
        return {
            "val_loss_per_char": per_char_loss(
                val_loss, len(corpus.val), corpus.val_chars
            ),
            "val_tokens": len(corpus.val),
            "val_chars": corpus.val_chars,
            "train_tokens": len(corpus.train),
            "train_chars": corpus.train_chars,
        }

    return _save_lm(
        path,
        BPE_LM_KIND,
        model,
        config,
        corpus.val,
        block_size=block_size,
        eval_windows=eval_windows,
        train_config=train_config,
        summary=summary,
        force=force,
        measures=measures,
    )


def load_bpe_lm(
    path: str | Path | None = None, *, tokenizer: BPETokenizer | None = None
) -> tuple[GPT, BPETokenizer, dict]:
    """Load a checkpoint of :func:`save_bpe_lm`: the GPT (float32, eval mode), the
    tokenizer rebuilt from the saved characters and merges, and the record.

    Args:
        path: the file; None loads the shipped ``gpt_bpe_pydoc.pt``, checked against
            the manifest first.
        tokenizer: if given, the saved characters and merges must equal its own (a
            ``ValueError`` says where they differ): the model is only valid with the
            tokenizer it was trained with.
    """
    path = shipped_checkpoint(GPT_BPE_CHECKPOINT) if path is None else Path(path)
    saved = load_checkpoint(path, kind=BPE_LM_KIND)
    rebuilt = BPETokenizer(saved.config["chars"], saved.config["merges"])
    if tokenizer is not None:
        if rebuilt.chars != tokenizer.chars:
            raise ValueError(
                f"{path} was trained with another character set: "
                f"{len(rebuilt.chars)} characters, expected {len(tokenizer.chars)}"
            )
        if rebuilt.merges != tokenizer.merges:
            first = next(
                (
                    i
                    for i, (a, b) in enumerate(zip(rebuilt.merges, tokenizer.merges))
                    if a != b
                ),
                min(len(rebuilt.merges), len(tokenizer.merges)),
            )
            raise ValueError(
                f"{path} was trained with other merges: {len(rebuilt.merges)} saved, "
                f"{len(tokenizer.merges)} expected, first difference at merge {first}"
            )
    model_config = GPTConfig(**saved.config["model_config"])
    if model_config.vocab_size != len(rebuilt):
        raise ValueError(
            f"{path} has {len(rebuilt)} tokens but a model for "
            f"vocab_size={model_config.vocab_size}"
        )
    model = GPT(model_config)
    model.load_state_dict({k: v.float() for k, v in saved.state_dict.items()})
    return model.eval(), rebuilt, {**saved.config, **saved.extra}
