"""Text as data: a character-level corpus, batches of next-character windows, and a
generated sequence-to-sequence task.

Chapter 5 trains recurrent language models on ``CharCorpus.pydoc()``: Python's
documentation topics, as a snapshot of Python 3.11.7's ``pydoc_data`` that ships with
the package (``dlbook.corpus``; 465 K characters, the same on every Python, no
download). ``make_seq2seq_data`` generates string-reversal (or copying, or sorting)
examples for an encoder-decoder, scored with ``exact_match``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch

from dlbook.corpus import pydoc_text
from dlbook.train import History, TrainConfig, fit
from dlbook.utils import check_int, check_positive_int, check_real

# Special tokens of the sequence-to-sequence task; content symbols start after them.
PAD, BOS, EOS = 0, 1, 2
N_SPECIAL = 3
SEQ2SEQ_TASKS = ("reverse", "copy", "sort")


def checked_ids(ids: torch.Tensor | Sequence[int], vocab_size: int) -> list[int]:
    """The ids of a 1-D tensor or list as Python ints, after checking each is in
    ``[0, vocab_size)``: what a tokenizer's ``decode`` must check before it looks them
    up."""
    if isinstance(ids, torch.Tensor):
        if ids.dim() != 1:
            raise ValueError(f"ids must be 1-D, got shape {tuple(ids.shape)}")
        ids = ids.tolist()
    # True is no id
    bad = [i for i in ids if type(i) is not int or not 0 <= i < vocab_size]
    if bad:
        raise ValueError(f"ids must be ints in [0, {vocab_size}), got {bad[:10]!r}")
    return list(ids)


class CharVocab:
    """A vocabulary of single characters: each distinct character gets an integer id.

    Ids follow the sorted order of the characters, so the same text always gives the
    same vocabulary.
    """

    def __init__(self, chars: Sequence[str]):
        chars = list(chars)
        if not chars:
            raise ValueError("a CharVocab needs at least one character, got none")
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ValueError(
                f"chars must be single-character strings, got {chars[:10]!r}..."
            )
        if len(set(chars)) != len(chars):
            raise ValueError("chars must be distinct, got duplicates")
        self.chars: tuple[str, ...] = tuple(chars)
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """Build the vocabulary of every character that occurs in ``text``."""
        if not isinstance(text, str) or not text:
            raise ValueError(f"text must be a non-empty str, got {type(text).__name__}")
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.chars)

    def __repr__(self) -> str:
        return f"CharVocab({len(self)} characters: {''.join(self.chars)!r})"

    def encode(self, text: str) -> torch.Tensor:
        """Map a string to a LongTensor of ids, shape ``(len(text),)``."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        unknown = sorted(set(text) - self.stoi.keys())
        if unknown:
            raise ValueError(f"characters not in the vocabulary: {unknown[:20]!r}")
        return torch.tensor([self.stoi[c] for c in text], dtype=torch.long)

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        """Map a 1-D sequence of ids (tensor or list of ints) back to a string."""
        return "".join(self.chars[i] for i in checked_ids(ids, len(self)))


@dataclass(frozen=True, eq=False)
class CharCorpus:
    """A text encoded as character ids and split once into training and validation
    parts.

    The split is contiguous: the first ``1 - val_fraction`` of the text trains, the rest
    validates, so no validation window overlaps a training window.
    """

    vocab: CharVocab  # the characters of the whole text
    train: torch.Tensor  # (N_train,) int64 ids
    val: torch.Tensor  # (N_val,) int64 ids

    @classmethod
    def from_text(cls, text: str, val_fraction: float = 0.1) -> CharCorpus:
        """Encode ``text`` and split it; ``val_fraction`` in (0, 1) goes to
        validation."""
        if not isinstance(text, str) or len(text) < 2:
            raise ValueError(
                f"text must be a str of at least 2 characters, got {text!r:.40}"
            )
        check_real(
            val_fraction, "val_fraction", 0.0, 1.0, low_open=True, high_open=True
        )
        vocab = CharVocab.from_text(text)
        ids = vocab.encode(text)
        n_train = min(max(1, round(len(ids) * (1.0 - val_fraction))), len(ids) - 1)
        return cls(vocab=vocab, train=ids[:n_train], val=ids[n_train:])

    @classmethod
    def pydoc(cls, val_fraction: float = 0.1) -> CharCorpus:
        """The corpus of ``dlbook.corpus.pydoc_text()``, the one chapters 5, 7 and 9
        train on."""
        return cls.from_text(pydoc_text(), val_fraction)

    @classmethod
    def from_file(
        cls, path: str | Path, val_fraction: float = 0.1, encoding: str = "utf-8"
    ) -> CharCorpus:
        """The corpus of any text file, e.g. a book from Project Gutenberg."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"path must name an existing text file, got {str(path)!r}")
        return cls.from_text(path.read_text(encoding=encoding), val_fraction)

    def __repr__(self) -> str:
        return (
            f"CharCorpus(vocab={len(self.vocab)} chars, train={len(self.train):,} "
            f"chars, "
            f"val={len(self.val):,} chars)"
        )


def get_batch(
    data: torch.Tensor,
    block_size: int,
    batch_size: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``batch_size`` random windows of ``block_size`` characters and their next
    characters.

    Args:
        data: (N,) int64 ids, e.g. ``corpus.train``.
        block_size: T, the length of each window.
        batch_size: B, the number of windows.
        generator: makes the window offsets reproducible.

    Returns:
        ``(x, y)``, each (B, T) int64 on ``data``'s device, with
        ``y[:, t] = x[:, t + 1]``: at every position the target is the character that
        follows.
    """
    if (
        not isinstance(data, torch.Tensor)
        or data.dim() != 1
        or data.dtype != torch.long
    ):
        raise ValueError(
            f"data must be a 1-D int64 tensor, got {getattr(data, 'shape', data)!r}"
        )
    check_positive_int(block_size, "block_size")
    check_positive_int(batch_size, "batch_size")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, "
            f"got {type(generator).__name__}"
        )
    if len(data) <= block_size:
        raise ValueError(
            f"data has {len(data)} ids; it needs more than block_size={block_size}"
        )
    gen_device = generator.device if generator is not None else torch.device("cpu")
    starts = torch.randint(
        len(data) - block_size, (batch_size,), generator=generator, device=gen_device
    ).to(data.device)
    offsets = torch.arange(block_size + 1, device=data.device)
    chunk = data[starts[:, None] + offsets]  # (B, T + 1)
    return chunk[:, :-1], chunk[:, 1:]


@dataclass(frozen=True, eq=False)
class Seq2SeqData:
    """A batch of a generated sequence-to-sequence task, padded with ``PAD``.

    ``tgt`` is ``BOS, y_1, ..., y_L, EOS`` then padding: the decoder reads
    ``tgt[:, :-1]`` and is trained to predict ``tgt[:, 1:]``.
    """

    src: torch.Tensor  # (N, max_len) int64 source tokens, padded after src_len
    src_len: torch.Tensor  # (N,) int64 source lengths
    tgt: torch.Tensor  # (N, max_len + 2) int64 target tokens with BOS and EOS

    def __len__(self) -> int:
        return len(self.src)


def _targets(symbols: torch.Tensor, lengths: torch.Tensor, task: str) -> torch.Tensor:
    """The answers (N, S) to sources ``symbols[:, :length]``, reversed, copied or
    sorted.

    Positions at or beyond each row's length hold junk; the caller overwrites them.
    """
    pos = torch.arange(symbols.shape[1])  # (S,)
    if task == "reverse":
        # answer position j holds source position length - 1 - j
        return symbols.gather(1, (lengths[:, None] - 1 - pos).clamp(min=0))  # (N, S)
    if task == "sort":
        beyond = pos >= lengths[:, None]  # (N, S): padding sorts to the end
        return (
            symbols.masked_fill(beyond, torch.iinfo(symbols.dtype).max)
            .sort(dim=1)
            .values
        )
    return symbols


def make_seq2seq_data(
    n: int,
    min_len: int,
    max_len: int,
    n_symbols: int = 10,
    task: str = "reverse",
    generator: torch.Generator | None = None,
) -> Seq2SeqData:
    """Generate ``n`` examples of a task whose answer depends on the whole input string.

    Each source is a uniform random string of ``min_len..max_len`` symbols drawn from
    ``n_symbols`` letters (token ids ``N_SPECIAL .. N_SPECIAL + n_symbols - 1``); the
    target is the string reversed (``task="reverse"``), copied or sorted.
    """
    check_positive_int(n, "n")
    check_positive_int(min_len, "min_len")
    check_positive_int(max_len, "max_len")
    if min_len > max_len:
        raise ValueError(
            f"need ints 1 <= min_len <= max_len, got {min_len!r}, {max_len!r}"
        )
    check_int(n_symbols, "n_symbols", 1, 26)
    if task not in SEQ2SEQ_TASKS:
        raise ValueError(f"task must be one of {SEQ2SEQ_TASKS}, got {task!r}")
    lengths = torch.randint(min_len, max_len + 1, (n,), generator=generator)
    symbols = torch.randint(
        N_SPECIAL, N_SPECIAL + n_symbols, (n, max_len), generator=generator
    )
    inside = torch.arange(max_len) < lengths[:, None]  # (N, S): True on the string
    src = symbols.masked_fill(~inside, PAD)
    answer = _targets(symbols, lengths, task).masked_fill(~inside, PAD)
    tgt = torch.full((n, max_len + 2), PAD, dtype=torch.long)
    tgt[:, 0] = BOS
    tgt[:, 1:-1] = answer
    tgt[torch.arange(n), lengths + 1] = EOS
    return Seq2SeqData(src=src, src_len=lengths, tgt=tgt)


def tokens_to_string(ids: torch.Tensor | Sequence[int]) -> str:
    """Show task tokens as letters, stopping at the first ``EOS`` (``BOS`` and ``PAD``
    dropped)."""
    out = []
    for i in ids.tolist() if isinstance(ids, torch.Tensor) else ids:
        if i == EOS:
            break
        if i >= N_SPECIAL:
            out.append(chr(ord("a") + i - N_SPECIAL))
    return "".join(out)


def sequence_matches(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Whether each predicted sequence equals its target up to and including the
    target's ``EOS``.

    Args:
        pred: (N, L1) predicted token ids (without ``BOS``).
        target: (N, L2) target ids (without ``BOS``), each row containing an ``EOS``.

    Returns:
        (N,) bool. Tokens after the target's ``EOS`` are ignored; a prediction that ends
        early, late, or differs anywhere before that does not match.
    """
    if pred.dim() != 2 or target.dim() != 2 or len(pred) != len(target):
        raise ValueError(
            f"pred and target must be (N, L) with the same N, got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if not bool((target == EOS).any(dim=1).all()):
        raise ValueError("every target row must contain EOS")
    width = max(pred.shape[1], target.shape[1])
    pred = torch.nn.functional.pad(pred, (0, width - pred.shape[1]), value=PAD)
    target = torch.nn.functional.pad(target, (0, width - target.shape[1]), value=PAD)
    eos_pos = (target == EOS).int().argmax(dim=1, keepdim=True)  # first EOS in each row
    counted = torch.arange(width, device=target.device) <= eos_pos  # (N, width)
    return ((pred == target) | ~counted).all(dim=1)


def exact_match(pred: torch.Tensor, target: torch.Tensor) -> float:
    """The fraction of sequences predicted exactly (see ``sequence_matches``)."""
    return sequence_matches(pred, target).float().mean().item()


@dataclass(frozen=True)
class LMTrainConfig:
    """How to train a next-character model on random windows of a ``CharCorpus``."""

    training: TrainConfig = TrainConfig(
        steps=1000,
        batch_size=32,
        lr=3e-3,
        grad_clip=1.0,
        # the loop: steps, Adam, clipping, seed
        eval_every=100,
    )
    # characters per window, T; None: the model's block_size
    block_size: int | None = None
    eval_windows: int | None = 64  # validation windows per estimate (None: all of them)

    def __post_init__(self):
        if not isinstance(self.training, TrainConfig):
            raise TypeError(
                f"training must be a TrainConfig, got {type(self.training).__name__}"
            )
        if self.training.steps is None:
            raise ValueError(
                "training.steps must be set: windows are drawn without end"
            )
        for name in ("block_size", "eval_windows"):
            value = getattr(self, name)
            if value is not None:
                check_positive_int(value, name)


def _lm_logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits (B, T, V) of a model that returns them alone or first in a tuple."""
    out = model(x)
    return out[0] if isinstance(out, tuple) else out


@torch.no_grad()
def evaluate_char_lm(
    model: torch.nn.Module,
    data: torch.Tensor,
    block_size: int,
    max_windows: int | None = None,
    batch_size: int = 64,
) -> float:
    """Mean next-character cross-entropy (nats per character) on evenly spaced windows
    of data.

    The windows do not overlap and are the same at every call, so estimates are
    comparable. ``max_windows=None`` covers all of ``data``. ``model(x)`` must give
    logits (B, T, V).
    """
    if (
        not isinstance(data, torch.Tensor)
        or data.dim() != 1
        or data.dtype != torch.long
    ):
        raise ValueError(
            f"data must be a 1-D int64 tensor, got {getattr(data, 'shape', data)!r}"
        )
    n_windows = (len(data) - 1) // block_size
    if n_windows < 1:
        raise ValueError(
            f"data has {len(data)} ids; it needs more than block_size={block_size}"
        )
    if max_windows is not None:
        n_windows = min(n_windows, max_windows)
    # evenly spaced starts, at least block_size apart, so no two windows overlap
    starts = torch.linspace(0, len(data) - 1 - block_size, n_windows).long()
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    offsets = torch.arange(block_size + 1)
    for batch in starts.split(batch_size):
        # (b, T + 1)
        chunk = data[(batch[:, None] + offsets).to(data.device)].to(device)
        logits = _lm_logits(model, chunk[:, :-1])
        loss = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), chunk[:, 1:].flatten(), reduction="sum"
        )
        total, count = total + loss.item(), count + chunk[:, 1:].numel()
    model.train(was_training)
    return total / count


def random_windows(
    data: torch.Tensor, block_size: int, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """An endless stream of ``get_batch`` windows: (x, y), each (B, T)."""
    while True:
        yield get_batch(data, block_size, batch_size, generator)


def char_lm_loss(
    model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """Mean next-character cross-entropy of windows x, y (B, T), on the model's
    device."""
    device = next(model.parameters()).device
    x, y = batch[0].to(device), batch[1].to(device)
    logits = _lm_logits(model, x)  # (B, T, V)
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())


def context_length(model: torch.nn.Module, block_size: int | None) -> int:
    """``block_size`` when given, else the one the model's config records (a GPT's)."""
    if block_size is None:
        block_size = getattr(getattr(model, "config", None), "block_size", None)
        if block_size is None:
            raise ValueError(
                f"block_size must be given for a {type(model).__name__}, "
                f"whose "
                f"config records no block_size"
            )
    return block_size


def train_char_lm(
    model: torch.nn.Module, corpus: CharCorpus, config: LMTrainConfig
) -> History:
    """Train a next-character model on random windows of ``corpus.train`` with ``fit``.

    Any model whose ``model(x)`` for x (B, T) gives logits (B, T, V), alone or first in
    a tuple, can be trained, so chapter 7 trains its GPT with the same loop and the same
    time budget as chapter 5's LSTM. Stops after ``training.steps`` steps or
    ``training.max_seconds``, whichever comes first, and always ends with a validation
    estimate.
    """
    if not isinstance(config, LMTrainConfig):
        raise TypeError(f"config must be an LMTrainConfig, got {type(config).__name__}")
    block_size = context_length(model, config.block_size)
    gen = torch.Generator().manual_seed(config.training.seed)
    windows = random_windows(corpus.train, block_size, config.training.batch_size, gen)

    def validate(model: torch.nn.Module) -> dict:
        return {
            "loss": evaluate_char_lm(model, corpus.val, block_size, config.eval_windows)
        }

    return fit(
        model, windows, char_lm_loss, config.training, evaluate=validate, desc="train"
    )
