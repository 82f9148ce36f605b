"""Text as data: a character-level corpus, batches of next-character windows, and a generated
sequence-to-sequence task.

Chapter 5 trains recurrent language models on ``CharCorpus.pydoc()``, the documentation topics
that every Python installation ships in the standard library's ``pydoc_data`` package (about
460 K characters, no download). ``make_seq2seq_data`` generates string-reversal (or copying,
or sorting) examples for an encoder-decoder, scored with ``exact_match``.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

with warnings.catch_warnings():
    # Without ipywidgets, tqdm.auto warns once ("IProgress not found") and falls back to a text
    # bar, which is what the printed book wants; the warning is silenced.
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm

# Special tokens of the sequence-to-sequence task; content symbols start after them.
PAD, BOS, EOS = 0, 1, 2
N_SPECIAL = 3
SEQ2SEQ_TASKS = ("reverse", "copy", "sort")


def pydoc_text() -> str:
    """Return the standard library's ``pydoc_data.topics``, joined in sorted-key order.

    The topics are the help pages of Python's statements and types (``help("with")``). Topics
    are separated by one blank line. The text differs slightly between Python versions.
    """
    from pydoc_data.topics import topics

    return "\n".join(topics[key] for key in sorted(topics))


def checked_ids(ids: torch.Tensor | Sequence[int], vocab_size: int) -> list[int]:
    """The ids of a 1-D tensor or list as Python ints, after checking each is in
    ``[0, vocab_size)``: what a tokenizer's ``decode`` must check before it looks them up."""
    if isinstance(ids, torch.Tensor):
        if ids.dim() != 1:
            raise ValueError(f"ids must be 1-D, got shape {tuple(ids.shape)}")
        ids = ids.tolist()
    bad = [i for i in ids if not isinstance(i, int) or not 0 <= i < vocab_size]
    if bad:
        raise ValueError(f"ids must be ints in [0, {vocab_size}), got {bad[:10]!r}")
    return list(ids)


class CharVocab:
    """A vocabulary of single characters: each distinct character gets an integer id.

    Ids follow the sorted order of the characters, so the same text always gives the same
    vocabulary.
    """

    def __init__(self, chars: Sequence[str]):
        chars = list(chars)
        if not chars:
            raise ValueError("a CharVocab needs at least one character, got none")
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ValueError(f"chars must be single-character strings, got {chars[:10]!r}...")
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
    """A text encoded as character ids and split once into training and validation parts.

    The split is contiguous: the first ``1 - val_fraction`` of the text trains, the rest
    validates, so no validation window overlaps a training window.
    """

    vocab: CharVocab  # the characters of the whole text
    train: torch.Tensor  # (N_train,) int64 ids
    val: torch.Tensor  # (N_val,) int64 ids

    @classmethod
    def from_text(cls, text: str, val_fraction: float = 0.1) -> CharCorpus:
        """Encode ``text`` and split it; ``val_fraction`` in (0, 1) goes to validation."""
        if not isinstance(text, str) or len(text) < 2:
            raise ValueError(f"text must be a str of at least 2 characters, got {text!r:.40}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
        vocab = CharVocab.from_text(text)
        ids = vocab.encode(text)
        n_train = min(max(1, round(len(ids) * (1.0 - val_fraction))), len(ids) - 1)
        return cls(vocab=vocab, train=ids[:n_train], val=ids[n_train:])

    @classmethod
    def pydoc(cls, val_fraction: float = 0.1) -> CharCorpus:
        """The corpus of ``pydoc_text()``, the one chapter 5 and chapter 7 train on."""
        return cls.from_text(pydoc_text(), val_fraction)

    @classmethod
    def from_file(cls, path: str | Path, val_fraction: float = 0.1,
                  encoding: str = "utf-8") -> CharCorpus:
        """The corpus of any text file, e.g. a book from Project Gutenberg."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"path must name an existing text file, got {str(path)!r}")
        return cls.from_text(path.read_text(encoding=encoding), val_fraction)

    def __repr__(self) -> str:
        return (f"CharCorpus(vocab={len(self.vocab)} chars, train={len(self.train):,} chars, "
                f"val={len(self.val):,} chars)")


def get_batch(data: torch.Tensor, block_size: int, batch_size: int,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``batch_size`` random windows of ``block_size`` characters and their next characters.

    Args:
        data: (N,) int64 ids, e.g. ``corpus.train``.
        block_size: T, the length of each window.
        batch_size: B, the number of windows.
        generator: makes the window offsets reproducible.

    Returns:
        ``(x, y)``, each (B, T) int64 on ``data``'s device, with ``y[:, t] = x[:, t + 1]``:
        at every position the target is the character that follows.
    """
    if not isinstance(data, torch.Tensor) or data.dim() != 1 or data.dtype != torch.long:
        raise ValueError(f"data must be a 1-D int64 tensor, got {getattr(data, 'shape', data)!r}")
    for name, value in (("block_size", block_size), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if len(data) <= block_size:
        raise ValueError(f"data has {len(data)} ids; it needs more than block_size={block_size}")
    gen_device = generator.device if generator is not None else torch.device("cpu")
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator,
                           device=gen_device).to(data.device)
    offsets = torch.arange(block_size + 1, device=data.device)
    chunk = data[starts[:, None] + offsets]  # (B, T + 1)
    return chunk[:, :-1], chunk[:, 1:]


@dataclass(frozen=True, eq=False)
class Seq2SeqData:
    """A batch of a generated sequence-to-sequence task, padded with ``PAD``.

    ``tgt`` is ``BOS, y_1, ..., y_L, EOS`` then padding: the decoder reads ``tgt[:, :-1]``
    and is trained to predict ``tgt[:, 1:]``.
    """

    src: torch.Tensor  # (N, max_len) int64 source tokens, padded after src_len
    src_len: torch.Tensor  # (N,) int64 source lengths
    tgt: torch.Tensor  # (N, max_len + 2) int64 target tokens with BOS and EOS

    def __len__(self) -> int:
        return len(self.src)


def _targets(symbols: torch.Tensor, lengths: torch.Tensor, task: str) -> torch.Tensor:
    """The answers (N, S) to sources ``symbols[:, :length]``, reversed, copied or sorted.

    Positions at or beyond each row's length hold junk; the caller overwrites them.
    """
    pos = torch.arange(symbols.shape[1])  # (S,)
    if task == "reverse":
        # answer position j holds source position length - 1 - j
        return symbols.gather(1, (lengths[:, None] - 1 - pos).clamp(min=0))  # (N, S)
    if task == "sort":
        beyond = pos >= lengths[:, None]  # (N, S): padding sorts to the end
        return symbols.masked_fill(beyond, torch.iinfo(symbols.dtype).max).sort(dim=1).values
    return symbols


def make_seq2seq_data(n: int, min_len: int, max_len: int, n_symbols: int = 10,
                      task: str = "reverse",
                      generator: torch.Generator | None = None) -> Seq2SeqData:
    """Generate ``n`` examples of a task whose answer depends on the whole input string.

    Each source is a uniform random string of ``min_len..max_len`` symbols drawn from
    ``n_symbols`` letters (token ids ``N_SPECIAL .. N_SPECIAL + n_symbols - 1``); the target
    is the string reversed (``task="reverse"``), copied or sorted.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not (isinstance(min_len, int) and isinstance(max_len, int) and 1 <= min_len <= max_len):
        raise ValueError(f"need ints 1 <= min_len <= max_len, got {min_len!r}, {max_len!r}")
    if not isinstance(n_symbols, int) or not 1 <= n_symbols <= 26:
        raise ValueError(f"n_symbols must be an int in [1, 26], got {n_symbols!r}")
    if task not in SEQ2SEQ_TASKS:
        raise ValueError(f"task must be one of {SEQ2SEQ_TASKS}, got {task!r}")
    lengths = torch.randint(min_len, max_len + 1, (n,), generator=generator)
    symbols = torch.randint(N_SPECIAL, N_SPECIAL + n_symbols, (n, max_len), generator=generator)
    inside = torch.arange(max_len) < lengths[:, None]  # (N, S): True on the string
    src = symbols.masked_fill(~inside, PAD)
    answer = _targets(symbols, lengths, task).masked_fill(~inside, PAD)
    tgt = torch.full((n, max_len + 2), PAD, dtype=torch.long)
    tgt[:, 0] = BOS
    tgt[:, 1:-1] = answer
    tgt[torch.arange(n), lengths + 1] = EOS
    return Seq2SeqData(src=src, src_len=lengths, tgt=tgt)


def tokens_to_string(ids: torch.Tensor | Sequence[int]) -> str:
    """Show task tokens as letters, stopping at the first ``EOS`` (``BOS`` and ``PAD`` dropped)."""
    out = []
    for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids):
        if i == EOS:
            break
        if i >= N_SPECIAL:
            out.append(chr(ord("a") + i - N_SPECIAL))
    return "".join(out)


def sequence_matches(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Whether each predicted sequence equals its target up to and including the target's ``EOS``.

    Args:
        pred: (N, L1) predicted token ids (without ``BOS``).
        target: (N, L2) target ids (without ``BOS``), each row containing an ``EOS``.

    Returns:
        (N,) bool. Tokens after the target's ``EOS`` are ignored; a prediction that ends early,
        late, or differs anywhere before that does not match.
    """
    if pred.dim() != 2 or target.dim() != 2 or len(pred) != len(target):
        raise ValueError(f"pred and target must be (N, L) with the same N, got "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}")
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

    steps: int = 1000  # most optimizer steps to take
    max_seconds: float | None = None  # also stop once training has taken this long (wall clock)
    batch_size: int = 32  # windows per batch, B
    block_size: int = 128  # characters per window, T
    lr: float = 3e-3  # Adam learning rate
    grad_clip: float | None = 1.0  # max gradient norm, None for no clipping
    eval_every: int = 100  # steps between validation estimates
    eval_windows: int | None = 64  # validation windows per estimate (None: all of them)
    seed: int = 0  # seeds the stream of training windows
    progress: bool = True  # show a progress bar

    def __post_init__(self):
        for name in ("steps", "batch_size", "block_size", "eval_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(f"max_seconds must be None or > 0, got {self.max_seconds!r}")


@dataclass
class LMHistory:
    """What ``train_char_lm`` measured; losses are in nats per character."""

    step: list[int] = field(default_factory=list)  # steps at which validation was estimated
    train_loss: list[float] = field(default_factory=list)  # mean training loss since last estimate
    val_loss: list[float] = field(default_factory=list)  # validation loss estimate
    seconds: list[float] = field(default_factory=list)  # training time so far (evaluation excluded)


def _lm_logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits (B, T, V) of a model that returns them alone or first in a tuple."""
    out = model(x)
    return out[0] if isinstance(out, tuple) else out


@torch.no_grad()
def evaluate_char_lm(model: torch.nn.Module, data: torch.Tensor, block_size: int,
                max_windows: int | None = None, batch_size: int = 64) -> float:
    """Mean next-character cross-entropy (nats per character) on evenly spaced windows of data.

    The windows do not overlap and are the same at every call, so estimates are comparable.
    ``max_windows=None`` covers all of ``data``. ``model(x)`` must give logits (B, T, V).
    """
    if not isinstance(data, torch.Tensor) or data.dim() != 1 or data.dtype != torch.long:
        raise ValueError(f"data must be a 1-D int64 tensor, got {getattr(data, 'shape', data)!r}")
    n_windows = (len(data) - 1) // block_size
    if n_windows < 1:
        raise ValueError(f"data has {len(data)} ids; it needs more than block_size={block_size}")
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
        chunk = data[(batch[:, None] + offsets).to(data.device)].to(device)  # (b, T + 1)
        logits = _lm_logits(model, chunk[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), chunk[:, 1:].flatten(),
                                                 reduction="sum")
        total, count = total + loss.item(), count + chunk[:, 1:].numel()
    model.train(was_training)
    return total / count


def train_char_lm(model: torch.nn.Module, corpus: CharCorpus, config: LMTrainConfig) -> LMHistory:
    """Train a next-character model with Adam on random windows (``get_batch``).

    Any model whose ``model(x)`` for x (B, T) gives logits (B, T, V), alone or first in a tuple,
    can be trained, so chapter 7 trains its GPT with the same loop and the same time budget as
    chapter 5's LSTM. Stops after ``config.steps`` steps or ``config.max_seconds``, whichever
    comes first, and always ends with a validation estimate.
    """
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    history, recent, elapsed = LMHistory(), [], 0.0
    bar = tqdm(range(1, config.steps + 1), disable=not config.progress, desc="train")
    for step in bar:
        start = time.perf_counter()
        model.train()
        x, y = get_batch(corpus.train, config.block_size, config.batch_size, gen)
        logits = _lm_logits(model, x.to(device))
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.to(device).flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        recent.append(loss.item())
        elapsed += time.perf_counter() - start
        out_of_time = config.max_seconds is not None and elapsed >= config.max_seconds
        if step % config.eval_every == 0 or step == config.steps or out_of_time:
            history.step.append(step)
            history.train_loss.append(sum(recent) / len(recent))
            history.val_loss.append(evaluate_char_lm(model, corpus.val, config.block_size,
                                                config.eval_windows))
            history.seconds.append(elapsed)
            bar.set_postfix(val_loss=f"{history.val_loss[-1]:.3f}")
            recent = []
        if out_of_time:
            break
    bar.close()
    return history
