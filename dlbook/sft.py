"""Supervised fine-tuning (SFT) on instruction-formatted pairs built from the corpus,
for chapter 7's character GPT.

SFT is the first step of InstructGPT (Ouyang et al., 2022): the pre-trained model is
trained with its next-token loss on demonstrations, a prompt followed by the wanted
response, with the loss on the response's tokens only. ``instruction_pairs`` makes such
demonstrations from the structure of Python's documentation: a method's signature
followed by an indented description becomes "Q: What does <signature> do?" answered by
the description's first sentence, and a section title followed by a paragraph becomes
"Q: What is <title>?" answered the same way. Every response has the form
"A: <one sentence ending in a period>" and a newline.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dlbook.attention import KVCache
from dlbook.text import CharVocab
from dlbook.utils import check_positive_int, check_real, make_generator

# a signature line, then a blank line, then a paragraph indented deeper
_SIGNATURE = re.compile(
    r"^( *)([A-Za-z_][\w.]*\([^()\n]*\))\n\n\1( +)(\S[^\n]*(?:\n\1\3\S[^\n]*)*)", re.M
)
# a title underlined with *, = or -, then a blank line, then a paragraph
_HEADING = re.compile(r"^(\S[^\n]*)\n(?:\*+|=+|-+)\n\n(\S[^\n]*(?:\n\S[^\n]*)*)", re.M)
# the answer format: "A: ", one line that ends in a period, a newline
ANSWER_FORMAT = re.compile(r"A: [^\n]*\.\n")


@dataclass(frozen=True)
class InstructionPair:
    """One demonstration: a prompt (a question and its newline) and the response."""

    prompt: str
    response: str

    @property
    def text(self) -> str:
        """The prompt followed by the response."""
        return self.prompt + self.response


def first_sentence(paragraph: str) -> str | None:
    """The first sentence of a paragraph whose lines are joined by single spaces, or
    None when it does not start with a capital letter and end in a period (or is a
    version note such as "New in version 3.5.")."""
    joined = " ".join(line.strip() for line in paragraph.split("\n"))
    match = re.match(r"(.+?\.)(?:\s|$)", joined)
    if match is None:
        return None
    sentence = match.group(1)
    if not sentence[0].isupper() or sentence.startswith(
        ("New in", "Changed in", "Deprecated")
    ):
        return None
    return sentence


def instruction_pairs(text: str, max_chars: int = 128) -> list[InstructionPair]:
    """Question-answer demonstrations found in ``text`` (a split of the corpus), in the
    order they occur, each at most ``max_chars`` characters long (the model's context),
    one per question."""
    check_positive_int(max_chars, "max_chars")
    found = []
    for match in _SIGNATURE.finditer(text):
        question = f"Q: What does {match.group(2)} do?\n"
        found.append((match.start(), question, first_sentence(match.group(4))))
    for match in _HEADING.finditer(text):
        question = f"Q: What is {match.group(1)}?\n"
        found.append((match.start(), question, first_sentence(match.group(2))))
    pairs, seen = [], set()
    for _, question, sentence in sorted(found):
        if sentence is None or question in seen:
            continue
        pair = InstructionPair(question, f"A: {sentence}\n")
        if len(pair.text) <= max_chars:
            pairs.append(pair)
            seen.add(question)
    return pairs


def encode_pairs(
    pairs: list[InstructionPair], vocab: CharVocab
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs as a batch: ids (N, T) with each text padded on the right (by repeating its
    last character) to the longest, and a mask (N, T - 1) that is True where the target
    ``ids[:, 1:]`` is a response character, False on the prompt and the padding."""
    if not pairs:
        raise ValueError("pairs must not be empty")
    T = max(len(p.text) for p in pairs)
    ids = torch.zeros(len(pairs), T, dtype=torch.long)
    mask = torch.zeros(len(pairs), T - 1, dtype=torch.bool)
    for i, pair in enumerate(pairs):
        row = vocab.encode(pair.text)
        ids[i, : len(row)], ids[i, len(row) :] = row, row[-1]
        # target t + 1 is a response character for len(prompt) - 1 <= t < len(text) - 1
        mask[i, len(pair.prompt) - 1 : len(row) - 1] = True
    return ids, mask


def masked_lm_loss(
    model: nn.Module, ids: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """SFT's loss: the mean next-token cross-entropy over the positions where ``mask``
    (B, T - 1) is True, the response's characters; the prompt and padding add nothing,
    and the logits there get no gradient. ``ids`` is (B, T)."""
    if ids.dim() != 2 or mask.shape != (ids.shape[0], ids.shape[1] - 1):
        raise ValueError(
            f"ids must be (B, T) and mask (B, T - 1), got {tuple(ids.shape)} and "
            f"{tuple(mask.shape)}"
        )
    if not mask.any():
        raise ValueError("mask selects no position")
    logits = model(ids[:, :-1])  # (B, T - 1, V): position t predicts token t + 1
    return F.cross_entropy(logits[mask], ids[:, 1:][mask])


def adam_steps(
    model: nn.Module,
    n_examples: int,
    batch_loss: Callable[[nn.Module, torch.Tensor], torch.Tensor],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> list[float]:
    """Train ``model`` in place with Adam for ``steps`` steps and return the loss of
    each step; ``batch_loss(model, batch)`` is the loss of the examples whose indices
    (``batch_size`` of them, drawn from ``n_examples`` with replacement by
    ``make_generator(seed)``) are ``batch``. The loop of ``supervised_finetune`` and
    ``dlbook.dpo.tune_on_preferences``."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = make_generator(seed)
    losses = []
    for _ in range(steps):
        batch = torch.randint(0, n_examples, (batch_size,), generator=generator)
        loss = batch_loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@dataclass(frozen=True)
class SFTConfig:
    """How a model is fine-tuned on demonstrations."""

    steps: int = 60
    batch_size: int = 16  # demonstrations per step
    lr: float = 1e-3  # Adam's learning rate
    seed: int = 0  # batch order (plus seed_offset())

    def __post_init__(self) -> None:
        check_positive_int(self.steps, "steps")
        check_positive_int(self.batch_size, "batch_size")
        check_real(self.lr, "lr", 0.0, low_open=True)


def supervised_finetune(
    model: nn.Module,
    ids: torch.Tensor,
    mask: torch.Tensor,
    config: SFTConfig = SFTConfig(),
) -> tuple[nn.Module, list[float]]:
    """A fine-tuned copy of ``model`` (all its weights trained, dropout off as when it
    is evaluated), and the loss of each step; ``model`` itself is left as it was."""
    tuned = copy.deepcopy(model).eval()
    losses = adam_steps(
        tuned,
        len(ids),
        lambda m, batch: masked_lm_loss(m, ids[batch], mask[batch]),
        steps=config.steps,
        batch_size=config.batch_size,
        lr=config.lr,
        seed=config.seed,
    )
    return tuned, losses


@torch.no_grad()
def greedy_reply(
    model: nn.Module, vocab: CharVocab, prompt: str, max_new: int, stop: str = "\n"
) -> str:
    """The model's most likely continuation of ``prompt``, one character at a time,
    up to and including the first ``stop`` or ``max_new`` characters, whichever comes
    first. The prompt and reply must fit the model's context (``block_size``)."""
    check_positive_int(max_new, "max_new")
    idx = vocab.encode(prompt)[None].to(next(model.parameters()).device)  # (1, T0)
    if idx.shape[1] + max_new > model.config.block_size:
        raise ValueError(
            f"prompt ({idx.shape[1]}) + max_new ({max_new}) exceeds block_size "
            f"{model.config.block_size}"
        )
    was_training = model.training
    model.eval()
    caches = [KVCache(model.config.block_size) for _ in model.blocks]
    logits, reply = model(idx, caches), []  # (1, T0, V), the prompt read once
    for _ in range(max_new):
        nxt = logits[:, -1].argmax(dim=-1, keepdim=True)  # (1, 1)
        reply.append(vocab.decode(nxt[0]))
        if reply[-1] == stop:
            break
        logits = model(nxt, caches)  # (1, 1, V)
    model.train(was_training)
    return "".join(reply)


def follows_format(reply: str) -> bool:
    """Whether a reply has the demonstrations' form: "A: ", one line ending in a
    period, and the newline."""
    return ANSWER_FORMAT.fullmatch(reply) is not None
