"""Where the layer norm goes, and the rest of the Transformer's training recipe.

``EncoderLayer`` is a Transformer encoder block with the layer norm either after each
residual sum (post-LN, Vaswani et al., 2017) or at the input of each sub-layer (pre-LN,
Xiong et al., 2020). ``Tagger`` stacks such blocks into a small encoder that labels
every position of a string; chapter 6 measures, on it, the per-layer gradients at
initialization and training with and without a learning-rate warm-up. The training
recipe's other half, label smoothing (Szegedy et al., 2016), is
``label_smoothed_cross_entropy``; dropout from scratch is ``inverted_dropout``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from dlbook.attention import MultiHeadAttention, SinusoidalPositions
from dlbook.train import History, Schedule, TrainConfig, fit
from dlbook.transformer import FeedForward
from dlbook.utils import check_positive_int, check_real, make_generator


class EncoderLayer(nn.Module):
    """A self-attention block with post-LN (``norm_first=False``) or pre-LN placement:

    - post-LN: ``x <- LN(x + Attn(x))``, then ``x <- LN(x + FFN(x))``;
    - pre-LN: ``x <- x + Attn(LN(x))``, then ``x <- x + FFN(LN(x))``.

    Equal to ``nn.TransformerEncoderLayer(..., activation="gelu", norm_first=...)``
    without dropout, given the same weights. ``dropout`` zeroes entries of each
    sub-layer's output before the sum (Vaswani et al., section 5.4).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        norm_first: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, n_heads)
        self.ln_attn = nn.LayerNorm(d_model)
        self.ff = FeedForward(d_model, d_ff, dropout)  # dropout on its output
        self.ln_ff = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, T, d_model) -> (B, T, d_model); mask broadcastable to (B, nh, T, T)."""
        if self.norm_first:  # the stream x itself is never normalized
            h = self.ln_attn(x)
            x = x + self.dropout(self.self_attn(h, h, h, mask)[0])
            return x + self.ff(self.ln_ff(x))
        # post-LN: every sum is normalized, so the stream passes through 2 L norms
        x = self.ln_attn(x + self.dropout(self.self_attn(x, x, x, mask)[0]))
        return self.ln_ff(x + self.ff(x))


@dataclass(frozen=True)
class TaggerConfig:
    """A small encoder that predicts one label per input position."""

    n_symbols: int = 10  # input and output alphabet
    max_len: int = 16  # longest input (sinusoidal positions)
    d_model: int = 32  # width of every token vector
    n_heads: int = 4  # attention heads per block
    n_layers: int = 6  # encoder blocks
    d_ff: int = 128  # hidden width of the MLP, 4 d_model
    norm_first: bool = True  # pre-LN (True) or post-LN (False)
    dropout: float = 0.0  # residual dropout of every sub-layer (the paper: 0.1)

    def __post_init__(self):
        for name in ("n_symbols", "max_len", "d_model", "n_heads", "n_layers", "d_ff"):
            check_positive_int(getattr(self, name), name)
        check_real(self.dropout, "dropout", 0.0, 1.0, high_open=True)


class Tagger(nn.Module):
    """Embedding, sinusoidal positions, ``n_layers`` blocks and a linear read-out. A
    pre-LN stack ends with a layer norm (GPT-2); a post-LN stack already does.

    Every matrix, the embedding included, starts Xavier-uniform (Glorot and Bengio,
    2010), as in the Annotated Transformer and the analysis of Xiong et al. (2020);
    PyTorch's default ``nn.Linear`` initialization is smaller.
    """

    def __init__(self, config: TaggerConfig):
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.n_symbols, c.d_model)
        self.positions = SinusoidalPositions(c.max_len, c.d_model)
        self.layers = nn.ModuleList(
            EncoderLayer(c.d_model, c.n_heads, c.d_ff, c.norm_first, c.dropout)
            for _ in range(c.n_layers)
        )
        self.ln_final = nn.LayerNorm(c.d_model) if c.norm_first else nn.Identity()
        self.head = nn.Linear(c.d_model, c.n_symbols)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T) symbol ids -> logits (B, T, n_symbols)."""
        h = self.positions(self.embed(x))  # (B, T, d_model)
        for layer in self.layers:
            h = layer(h)
        return self.head(self.ln_final(h))


def reverse_batches(
    n_symbols: int, length: int, batch_size: int, seed: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """An endless stream of (x, y): x (B, length) random symbols, y = x reversed, so
    that position i must read position length - 1 - i. Seeded by ``seed`` plus the
    book's seed offset (``dlbook.utils.make_generator``)."""
    gen = make_generator(seed)
    for _ in itertools.count():
        x = torch.randint(n_symbols, (batch_size, length), generator=gen)
        yield x, x.flip(1)


def inverted_dropout(
    x: torch.Tensor,
    p: float,
    training: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Zero each entry of x with probability p and scale the rest by 1 / (1 - p)
    (Srivastava et al., 2014, in the "inverted" form PyTorch uses).

    The scaling keeps every entry's expected value at x during training, so evaluation
    (``training=False``) returns x unchanged, with no rescaling at test time. Equals
    ``F.dropout(x, p, training)`` when both draw from the same random state.
    """
    check_real(p, "p", 0.0, 1.0, high_open=True)
    if not training or p == 0.0:
        return x
    keep = torch.empty_like(x).bernoulli_(1 - p, generator=generator)  # 1 = kept
    return x * (keep / (1 - p))


def label_smoothed_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, smoothing: float = 0.0
) -> torch.Tensor:
    """Mean cross-entropy against the smoothed target ``(1 - eps) onehot(y) + eps / C``.

    Equals ``(1 - eps) * NLL(y) + eps * mean_c(-log p_c)`` (Szegedy et al., 2016), and
    ``F.cross_entropy(logits, target, label_smoothing=eps)``.

    Args:
        logits: (N, C) unnormalized scores.
        target: (N,) class ids.
        smoothing: eps in [0, 1).
    """
    check_real(smoothing, "smoothing", 0.0, 1.0, high_open=True)
    if logits.dim() != 2 or target.shape != logits.shape[:1]:
        raise ValueError(
            f"logits must be (N, C) and target (N,), got {tuple(logits.shape)} "
            f"and {tuple(target.shape)}"
        )
    log_p = logits.log_softmax(dim=-1)  # (N, C)
    nll = -log_p.gather(1, target[:, None]).squeeze(1)  # (N,)
    uniform = -log_p.mean(dim=-1)  # cross-entropy against 1 / C, (N,)
    return ((1 - smoothing) * nll + smoothing * uniform).mean()


def tagging_loss(
    model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], smoothing: float = 0.0
) -> torch.Tensor:
    """Label-smoothed cross-entropy of ``model`` on every position of a batch (x, y)."""
    device = next(model.parameters()).device
    x, y = batch[0].to(device), batch[1].to(device)
    logits = model(x)  # (B, T, C)
    return label_smoothed_cross_entropy(logits.flatten(0, 1), y.flatten(), smoothing)


def ffn_grad_norms(model: Tagger, batches: list[tuple[torch.Tensor, torch.Tensor]]):
    """The norm of dL/dW_2 (each block's second MLP matrix, Xiong et al.'s Theorem 1)
    per block, at the model's current weights, averaged over ``batches``;
    (n_layers,)."""
    norms = torch.zeros(len(model.layers))
    for batch in batches:
        model.zero_grad()
        tagging_loss(model, batch).backward()
        norms += torch.stack([b.ff.proj.weight.grad.norm() for b in model.layers])
    model.zero_grad()
    return norms / len(batches)


@dataclass(frozen=True)
class TagTrainConfig:
    """How chapter 6 trains a ``Tagger`` on string reversal."""

    steps: int = 300  # Adam steps
    lr: float = 1e-3  # peak learning rate
    warmup_steps: int = 0  # linear warm-up from lr / warmup_steps, then constant
    smoothing: float = 0.0  # label smoothing eps
    length: int = 12  # every input's length
    batch_size: int = 32
    seed: int = 0  # seeds the batches


def train_tagger(model: Tagger, config: TagTrainConfig) -> History:
    """Train ``model`` to reverse strings with Adam, returning the History."""
    training = TrainConfig(
        steps=config.steps,
        batch_size=config.batch_size,
        lr=config.lr,
        schedule=Schedule(warmup_steps=config.warmup_steps),
        seed=config.seed,
        progress=False,
    )
    batches = reverse_batches(
        model.config.n_symbols, config.length, config.batch_size, config.seed
    )

    def loss(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return tagging_loss(m, batch, config.smoothing)

    return fit(model, batches, loss, training, desc="tagger")


@torch.no_grad()
def tagger_scores(model: Tagger, x: torch.Tensor) -> dict[str, float]:
    """Accuracy over positions on x (B, T), and the mean probability the model gives
    to its predicted label (its confidence) on the positions it gets right."""
    model.eval()
    probs = model(x).softmax(dim=-1)  # (B, T, C)
    confidence, pred = probs.max(dim=-1)
    right = pred == x.flip(1)
    return {
        "accuracy": right.float().mean().item(),
        "confidence": confidence[right].mean().item() if right.any() else float("nan"),
    }
