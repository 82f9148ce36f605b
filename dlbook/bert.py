"""BERT: a bidirectional encoder pre-trained by masked language modelling, then
fine-tuned.

Devlin et al. (2019) feed a sequence, with a ``[CLS]`` token in front, through a stack
of Transformer encoder blocks that see the whole sequence in both directions.
Pre-training hides 15% of the tokens and asks the model to restore them (the masked
language model, MLM); a downstream task then reads the final vector of ``[CLS]``. The
blocks here are *post-LN*, as in the paper and in BERT's released weights: ``LN(x +
Sublayer(x))``, unlike chapter 6's pre-LN block. They are built from chapter 6's
``MultiHeadAttention`` and ``FeedForward`` (exact GELU, BERT's choice). Tests check
``BertEncoder`` against ``transformers.BertModel`` and ``BertForMLM`` against
``transformers.BertForMaskedLM``, with weights copied by ``from_hf_state_dict``.

The book's text is character-level: the vocabulary is the corpus's characters after four
special tokens. ``pydoc_paragraphs`` cuts the corpus into labelled paragraphs for a
downstream
task: which kind of documentation topic (a statement, an expression, the data model) a
paragraph comes from, read off the topic's heading.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dlbook.attention import MultiHeadAttention
from dlbook.checkpoint import load_checkpoint, save_checkpoint, shipped_checkpoint
from dlbook.config_checks import check_transformer_sizes
from dlbook.corpus import pydoc_text
from dlbook.text import CharVocab
from dlbook.train import History, TrainConfig, fit
from dlbook.transformer import FeedForward
from dlbook.utils import check_ids, check_positive_int, check_real, make_generator

PAD, CLS, SEP, MASK = 0, 1, 2, 3  # special tokens; characters follow them
N_SPECIAL = 4
IGNORE = -100  # label of a position the MLM loss skips (PyTorch's ignore_index)


@dataclass(frozen=True)
class BertConfig:
    """Sizes of a BERT encoder. BERT-base: vocabulary 30,522 WordPieces, 512 positions,
    d_model 768, 12 heads, 12 layers, d_ff 3072, dropout 0.1 (Devlin et al., 2019)."""

    vocab_size: int  # tokens, special tokens included
    max_len: int = 64  # positions (learned embeddings)
    n_segments: int = 2  # segment (sentence A / B) embeddings
    d_model: int = 64  # width of every token vector
    n_heads: int = 4  # attention heads per layer
    n_layers: int = 2  # encoder blocks
    # hidden width of the position-wise MLP (4 d_model, as in the paper)
    d_ff: int = 256
    # on embeddings, attention weights and branch outputs (paper: 0.1)
    dropout: float = 0.0
    ln_eps: float = 1e-12  # layer-norm epsilon of BERT's released code

    def __post_init__(self):
        sizes = ("vocab_size", "max_len", "n_segments", "d_model", "n_heads", "n_layers")
        check_transformer_sizes(self, (*sizes, "d_ff"))
        check_real(self.dropout, "dropout", 0.0, 1.0, high_open=True)


class BertEmbeddings(nn.Module):
    """``LN(E_token[x] + E_position[t] + E_segment[s])`` (Devlin et al., figure 2)."""

    def __init__(self, c: BertConfig):
        super().__init__()
        self.token = nn.Embedding(c.vocab_size, c.d_model)
        self.position = nn.Embedding(c.max_len, c.d_model)
        self.segment = nn.Embedding(c.n_segments, c.d_model)
        self.ln = nn.LayerNorm(c.d_model, eps=c.ln_eps)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, ids: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
        """ids, segments (B, T) -> (B, T, d_model)."""
        positions = torch.arange(ids.shape[1], device=ids.device)  # (T,)
        x = self.token(ids) + self.position(positions) + self.segment(segments)
        return self.dropout(self.ln(x))


class BertBlock(nn.Module):
    """A post-LN encoder block: ``x = LN(x + Attn(x))``, then ``x = LN(x + FFN(x))``
    (Vaswani et al., 2017, section 3.1; Devlin et al., 2019)."""

    def __init__(self, c: BertConfig):
        super().__init__()
        self.attn = MultiHeadAttention(c.d_model, c.n_heads, c.dropout)
        self.ln_attn = nn.LayerNorm(c.d_model, eps=c.ln_eps)
        self.ff = FeedForward(c.d_model, c.d_ff, c.dropout)
        self.ln_ff = nn.LayerNorm(c.d_model, eps=c.ln_eps)
        self.dropout = nn.Dropout(c.dropout)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, T, d_model), mask broadcastable to (B, n_heads, T, T) -> (B, T,
        d_model)."""
        update, _ = self.attn(x, x, x, mask)  # every token sees every unmasked token
        x = self.ln_attn(x + self.dropout(update))
        return self.ln_ff(x + self.ff(x))


def init_weights(module: nn.Module) -> None:
    """BERT's initialization: weights of linear layers and embeddings from N(0, 0.02^2),
    biases zero (Devlin et al.'s released code, ``initializer_range``). PyTorch's
    defaults would give the tied MLM read-out logits of standard deviation about
    sqrt(d_model)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


class BertEncoder(nn.Module):
    """Embeddings, ``n_layers`` post-LN blocks and the pooler ``tanh(W h_CLS + b)``."""

    def __init__(self, config: BertConfig):
        super().__init__()
        if not isinstance(config, BertConfig):
            raise TypeError(f"config must be a BertConfig, got {type(config).__name__}")
        self.config = c = config
        self.embed = BertEmbeddings(c)
        self.blocks = nn.ModuleList(BertBlock(c) for _ in range(c.n_layers))
        self.pooler = nn.Linear(c.d_model, c.d_model)
        self.apply(init_weights)

    def forward(
        self,
        ids: torch.Tensor,
        segments: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode ids (B, T); PAD positions are hidden from every query.

        Returns ``(hidden, pooled)``: hidden (B, T, d_model), the vector of every token
        after the last block, and pooled (B, d_model), the pooler applied to position 0
        (``[CLS]``).
        """
        check_ids(ids, self.config.vocab_size, "ids")
        if ids.shape[1] > self.config.max_len:
            raise ValueError(
                f"ids may hold at most max_len={self.config.max_len} "
                f"positions, "
                f"got {ids.shape[1]}"
            )
        if segments is None:
            segments = torch.zeros_like(ids)
        check_ids(segments, self.config.n_segments, "segments")
        mask = (ids != PAD)[:, None, None, :]  # (B, 1, 1, T): no query looks at padding
        x = self.embed(ids, segments)  # (B, T, d_model)
        for block in self.blocks:
            x = block(x, mask)
        return x, torch.tanh(self.pooler(x[:, 0]))


class MLMHead(nn.Module):
    """Scores for the original token at each position: ``LN(GELU(W h + b)) E^T +
    b_out``, with the output matrix tied to the token embedding ``E`` (as in BERT's
    code)."""

    def __init__(self, c: BertConfig, token_embedding: nn.Embedding):
        super().__init__()
        self.dense = nn.Linear(c.d_model, c.d_model)
        self.ln = nn.LayerNorm(c.d_model, eps=c.ln_eps)
        self.token_embedding = token_embedding  # shared, not a copy
        self.bias = nn.Parameter(torch.zeros(c.vocab_size))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (B, T, d_model) -> logits (B, T, vocab_size)."""
        h = self.ln(F.gelu(self.dense(hidden)))
        return h @ self.token_embedding.weight.T + self.bias


class BertForMLM(nn.Module):
    """An encoder with the masked-language-model head: ``forward(ids)`` gives token
    logits."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.encoder = BertEncoder(config)
        self.head = MLMHead(config, self.encoder.embed.token)
        self.head.dense.apply(init_weights)

    def forward(
        self, ids: torch.Tensor, segments: torch.Tensor | None = None
    ) -> torch.Tensor:
        """ids (B, T) -> logits (B, T, vocab_size)."""
        return self.head(self.encoder(ids, segments)[0])


class BertClassifier(nn.Module):
    """A linear classifier on an encoder's summary of a sequence (Devlin et al., 4.1).

    BERT reads the pooled ``[CLS]`` vector, which its next-sentence task pre-trains. The
    book's encoder is pre-trained by MLM alone, so by default the summary is the mean of
    the final token vectors over the non-PAD positions (``pool="mean"``, as
    Sentence-BERT does). ``freeze_encoder=True`` makes it a *linear probe*: only the
    last layer learns, so its accuracy measures what the pre-trained features already
    hold.
    """

    def __init__(
        self,
        encoder: BertEncoder,
        n_classes: int,
        freeze_encoder: bool = False,
        pool: str = "mean",
    ):
        super().__init__()
        if not isinstance(encoder, BertEncoder):
            raise TypeError(
                f"encoder must be a BertEncoder, got {type(encoder).__name__}"
            )
        check_positive_int(n_classes, "n_classes", minimum=2)
        if pool not in ("mean", "cls"):
            raise ValueError(f"pool must be 'mean' or 'cls', got {pool!r}")
        self.encoder, self.freeze_encoder, self.pool = encoder, freeze_encoder, pool
        for p in encoder.parameters():
            p.requires_grad_(not freeze_encoder)
        self.head = nn.Linear(encoder.config.d_model, n_classes)

    def features(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) -> the summary vector (B, d_model) the head reads."""
        hidden, pooled = self.encoder(ids)
        if self.pool == "cls":
            return pooled
        keep = (ids != PAD).unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        return (hidden * keep).sum(1) / keep.sum(1)  # (B, d_model)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) -> class logits (B, n_classes)."""
        return self.head(self.features(ids))


def mask_tokens(
    ids: torch.Tensor,
    vocab_size: int,
    p: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking rule (Devlin et al., 3.1): choose each non-special token with
    probability ``p``; of the chosen, replace 80% by ``[MASK]``, 10% by a random token
    and leave 10% unchanged. The model must predict every chosen token.

    Args:
        ids: (B, T) token ids; ids below ``N_SPECIAL`` (PAD, CLS, SEP, MASK) are
            never chosen.
        vocab_size: the random replacements are drawn from the non-special ids.
        generator: the source of randomness (CPU), for repeatable masks.

    Returns:
        ``(inputs, labels)``, both (B, T): the corrupted ids, and the original id at
        each chosen position with ``IGNORE`` (-100) elsewhere.
    """
    check_ids(ids, vocab_size, "ids")
    check_real(p, "p", 0.0, 1.0)
    # one draw per position
    u = torch.rand(ids.shape, generator=generator).to(ids.device)
    # which of 80/10/10
    action = torch.rand(ids.shape, generator=generator).to(ids.device)
    random_ids = torch.randint(N_SPECIAL, vocab_size, ids.shape, generator=generator)
    chosen = (u < p) & (ids >= N_SPECIAL)
    labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE))
    inputs = torch.where(chosen & (action < 0.8), torch.full_like(ids, MASK), ids)
    swap = chosen & (action >= 0.8) & (action < 0.9)
    inputs = torch.where(swap, random_ids.to(ids.device), inputs)
    return inputs, labels


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The MLM loss: the mean cross-entropy over the chosen positions only,
    ``-(1/|M|) sum_{i in M} log p(x_i | x_masked)``; logits (B, T, V), labels (B, T)."""
    if logits.dim() != 3 or logits.shape[:2] != labels.shape:
        raise ValueError(
            f"need logits (B, T, V) and labels (B, T), got "
            f"{tuple(logits.shape)} and {tuple(labels.shape)}"
        )
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)


def context_free_mlm_loss(
    prior: torch.Tensor, target: torch.Tensor | None = None
) -> float:
    """The expected MLM loss, in nats, of the best predictor that sees only the token
    shown at its own position, under ``mask_tokens``' rule (of the chosen tokens 80%
    show ``[MASK]``, 10% a token drawn uniformly from the K non-special ids, 10%
    themselves).

    With originals drawn from ``prior`` (K probabilities), the shown token is ``[MASK]``
    with probability 0.8, and a real token c with probability
    ``0.1 * prior[c] + 0.1 / K``; seeing ``[MASK]`` the best guess is ``prior``, seeing
    c it is the posterior ``P(o | c) = prior[o] (0.1 [o = c] + 0.1 / K) / (0.1 prior[c]
    + 0.1 / K)``. The loss is the cross-entropy of those guesses with originals drawn
    from ``target`` (default: ``prior``, which makes it the Bayes floor; a different
    ``target``, e.g. held-out frequencies, scores the prior's guesses on other text).

    Args:
        prior: (K,) nonnegative, summing to 1: the original tokens' distribution the
            predictor assumes (index i is token id ``N_SPECIAL + i``).
        target: (K,) likewise, the distribution the loss is averaged over; it must be
            zero wherever ``prior`` is.
    """
    target = prior if target is None else target
    for name, dist in (("prior", prior), ("target", target)):
        if not isinstance(dist, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(dist).__name__}")
        if dist.dim() != 1 or len(dist) < 1:
            shape = tuple(dist.shape)
            raise ValueError(f"{name} must be 1-D and nonempty, got shape {shape}")
        if (dist < 0).any() or abs(dist.sum().item() - 1) > 1e-6:
            total = dist.sum().item()
            raise ValueError(f"{name} must be nonnegative, summing to 1, got {total}")
    if target.shape != prior.shape:
        raise ValueError(
            f"target must have prior's shape {tuple(prior.shape)}, got "
            f"{tuple(target.shape)}"
        )
    if ((prior == 0) & (target > 0)).any():
        raise ValueError("target must be zero wherever prior is (else infinite loss)")
    p, q = prior.double(), target.double()
    k = len(p)
    seen = q > 0
    # joint[c, o] = P(shown c, original o) / 0.1 over the positions not showing [MASK]
    joint = p[None, :] * (torch.eye(k, dtype=p.dtype) + 1.0 / k)
    log_post = (joint / joint.sum(1, keepdim=True)).log()  # row c: P(o | shown c)
    # P(shown c | original o) / 0.1 = [c = o] + 1/K
    shown_given_o = torch.eye(k, dtype=p.dtype) + 1.0 / k
    per_original = -(shown_given_o[:, seen] * log_post[:, seen]).sum(0)  # (K_seen,)
    loss = 0.8 * -(q[seen] * p[seen].log()).sum() + 0.1 * (q[seen] * per_original).sum()
    return loss.item()


# ------------------------------------------------------------------------------------
# The corpus as tokens, windows and labelled paragraphs


def pydoc_vocab() -> CharVocab:
    """The characters of the corpus; token id = ``N_SPECIAL`` + character id."""
    return CharVocab.from_text(pydoc_text())


def encode(vocab: CharVocab, texts: list[str], length: int) -> torch.Tensor:
    """``[CLS]`` + each text's characters, cut or padded with PAD to ``length``: (N,
    length)."""
    check_positive_int(length, "length", minimum=2)
    out = torch.full((len(texts), length), PAD, dtype=torch.long)
    for i, text in enumerate(texts):
        ids = vocab.encode(text[: length - 1]) + N_SPECIAL
        out[i, 0] = CLS
        out[i, 1 : 1 + len(ids)] = ids
    return out


def mlm_batches(
    data: torch.Tensor,
    length: int,
    batch_size: int,
    vocab_size: int,
    generator: torch.Generator,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (inputs, labels) batches: random windows of ``length - 1`` tokens of
    ``data`` (token ids, characters already offset by ``N_SPECIAL``), each after a
    ``[CLS]``, masked by ``mask_tokens``."""
    while True:
        starts = torch.randint(
            0, len(data) - length, (batch_size,), generator=generator
        )
        windows = torch.stack([data[s : s + length - 1] for s in starts.tolist()])
        ids = torch.cat(
            [torch.full((batch_size, 1), CLS, dtype=torch.long), windows], dim=1
        )
        yield mask_tokens(ids, vocab_size, generator=generator)


def mlm_batch_loss(
    model: BertForMLM, batch: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """The batch loss ``fit`` calls: MLM loss of a masked batch on the model's
    device."""
    device = next(model.parameters()).device
    inputs, labels = batch[0].to(device), batch[1].to(device)
    return mlm_loss(model(inputs), labels)


def pydoc_tokens() -> torch.Tensor:
    """The whole corpus as token ids (characters offset by ``N_SPECIAL``): (N,)."""
    return pydoc_vocab().encode(pydoc_text()) + N_SPECIAL


def train_mlm(
    model: BertForMLM, data: torch.Tensor, config: TrainConfig, evaluate=None
) -> History:
    """Pre-train ``model`` by masked language modelling on windows of ``data`` with
    ``fit``; the windows are ``model``'s ``max_len`` long and drawn with
    ``make_generator(config.seed)``.
    """
    if not isinstance(model, BertForMLM):
        raise TypeError(f"model must be a BertForMLM, got {type(model).__name__}")
    c = model.encoder.config
    batches = mlm_batches(
        data, c.max_len, config.batch_size, c.vocab_size, make_generator(config.seed)
    )
    return fit(model, batches, mlm_batch_loss, config, evaluate=evaluate, desc="MLM")


@torch.no_grad()
def mlm_validation_loss(
    model: BertForMLM, data: torch.Tensor, n_windows: int = 256, seed: int = 1234
) -> float:
    """The MLM loss on ``n_windows`` windows of ``data`` masked with a fixed seed, so
    that every call, on any machine, scores the same masked positions."""
    was_training = model.training
    model.eval()
    c = model.encoder.config
    # fixed: the same windows and masks every time
    gen = torch.Generator().manual_seed(seed)
    inputs, labels = next(mlm_batches(data, c.max_len, n_windows, c.vocab_size, gen))
    device = next(model.parameters()).device
    loss = mlm_loss(model(inputs.to(device)), labels.to(device)).item()
    model.train(was_training)
    return loss


CHECKPOINT_KIND = "bert_mlm_pydoc"
CHECKPOINT_FILE = "bert_mlm_pydoc.pt"


def save_bert(
    path: str | Path, model: BertForMLM, extra: dict | None = None, force: bool = False
) -> Path:
    """Save an MLM model with its config (``dlbook.checkpoint``'s format)."""
    return save_checkpoint(
        path,
        kind=CHECKPOINT_KIND,
        config=dataclasses.asdict(model.encoder.config),
        state_dict=model.state_dict(),
        extra=extra,
        force=force,
    )


def load_bert(path: str | Path | None = None) -> tuple[BertForMLM, dict]:
    """Load a saved MLM model (default: the shipped one, checked against the manifest);
    returns the model in eval mode and the records saved with it."""
    path = shipped_checkpoint(CHECKPOINT_FILE) if path is None else path
    checkpoint = load_checkpoint(path, kind=CHECKPOINT_KIND)
    model = BertForMLM(BertConfig(**checkpoint.config))
    model.load_state_dict(checkpoint.state_dict)
    return model.eval(), checkpoint.extra


KINDS = ("statement", "expression", "data model")
# a topic's kind is the first whose words occur in its heading (lower case)
KIND_WORDS = (
    ("statement",),
    (
        "operation",
        "expression",
        "calls",
        "comparisons",
        "lambdas",
        "displays",
        "subscriptions",
        "slicings",
        "references",
        "operator",
        "await",
        "conversions",
    ),
    (
        "method",
        "customiz",
        "emulating",
        "type hierarchy",
        "objects, values",
        "special attr",
    ),
)


def topic_kind(heading: str) -> int | None:
    """The index in ``KINDS`` of a topic heading's kind, or None for other topics."""
    lower = heading.lower()
    for kind, words in enumerate(KIND_WORDS):
        if any(word in lower for word in words):
            return kind
    return None


def pydoc_topics(text: str | None = None) -> list[tuple[str, list[str]]]:
    """The corpus cut at its headings (a line underlined by as many ``*``): (heading,
    lines)."""
    lines = (pydoc_text() if text is None else text).split("\n")
    topics: list[tuple[str, list[str]]] = []
    for i, line in enumerate(lines):
        underline = lines[i + 1] if i + 1 < len(lines) else ""
        if re.fullmatch(r"\*{3,}", underline) and len(underline) == len(line):
            topics.append((line, []))
        elif topics and not re.fullmatch(r"\*{3,}", line):
            topics[-1][1].append(line)
    return topics


def pydoc_paragraphs(min_chars: int = 80) -> tuple[list[str], list[int]]:
    """The corpus's prose paragraphs of at least ``min_chars`` characters and their
    kinds.

    A paragraph is a run of unindented lines between blank or indented lines (indented
    lines are mostly code and grammar). Paragraphs of topics with no kind are left out.
    """
    texts, kinds = [], []
    for heading, body in pydoc_topics():
        kind = topic_kind(heading)
        if kind is None:
            continue
        run: list[str] = []
        for line in body + [""]:
            if line.strip() and not line.startswith(" "):
                run.append(line.strip())
                continue
            if run and len(" ".join(run)) >= min_chars:
                texts.append(" ".join(run))
                kinds.append(kind)
            run = []
    return texts, kinds


# ------------------------------------------------------------------------------------
# Weights in the Hugging Face layout


def _hf_names(n_layers: int) -> dict[str, str]:
    """Our parameter names -> ``transformers.BertModel``'s (prefix ``bert.`` for the
    MLM)."""
    names = {
        "embed.token.weight": "embeddings.word_embeddings.weight",
        "embed.position.weight": "embeddings.position_embeddings.weight",
        "embed.segment.weight": "embeddings.token_type_embeddings.weight",
        "embed.ln.weight": "embeddings.LayerNorm.weight",
        "embed.ln.bias": "embeddings.LayerNorm.bias",
        "pooler.weight": "pooler.dense.weight",
        "pooler.bias": "pooler.dense.bias",
    }
    ours_theirs = {
        "attn.q_proj": "attention.self.query",
        "attn.k_proj": "attention.self.key",
        "attn.v_proj": "attention.self.value",
        "attn.out_proj": "attention.output.dense",
        "ln_attn": "attention.output.LayerNorm",
        "ff.fc": "intermediate.dense",
        "ff.proj": "output.dense",
        "ln_ff": "output.LayerNorm",
    }
    for i in range(n_layers):
        for ours, theirs in ours_theirs.items():
            for p in ("weight", "bias"):
                names[f"blocks.{i}.{ours}.{p}"] = f"encoder.layer.{i}.{theirs}.{p}"
    return names


def from_hf_state_dict(
    model: BertEncoder | BertForMLM, state_dict: Mapping[str, torch.Tensor]
) -> None:
    """Copy the weights of a Hugging Face ``BertModel`` or ``BertForMaskedLM`` state
    dict into ``model`` (a ``BertEncoder`` or ``BertForMLM`` of the same sizes), in
    place."""
    if not isinstance(model, (BertEncoder, BertForMLM)):
        raise TypeError(
            f"model must be a BertEncoder or BertForMLM, got {type(model).__name__}"
        )
    mlm = isinstance(model, BertForMLM)
    encoder = model.encoder if mlm else model
    names = {
        f"encoder.{k}" if mlm else k: ("bert." if mlm else "") + v
        for k, v in _hf_names(encoder.config.n_layers).items()
    }
    if mlm:
        names.update(
            {
                "head.dense.weight": "cls.predictions.transform.dense.weight",
                "head.dense.bias": "cls.predictions.transform.dense.bias",
                "head.ln.weight": "cls.predictions.transform.LayerNorm.weight",
                "head.ln.bias": "cls.predictions.transform.LayerNorm.bias",
                "head.bias": "cls.predictions.bias",
            }
        )
    ours = dict(model.named_parameters())
    for name, theirs in names.items():
        if theirs not in state_dict:
            if mlm and theirs.startswith("bert.pooler"):
                continue  # BertForMaskedLM has no pooler
            raise ValueError(f"state_dict has no {theirs!r} (for {name})")
        if ours[name].shape != state_dict[theirs].shape:
            raise ValueError(
                f"{theirs}: expected shape {tuple(ours[name].shape)}, got "
                f"{tuple(state_dict[theirs].shape)}"
            )
        with torch.no_grad():
            ours[name].copy_(state_dict[theirs])
