"""GPT: a decoder-only Transformer trained to predict the next token (Radford et al.,
2018, 2019).

Token and learned position embeddings, a stack of pre-LN blocks with causal
self-attention, a final layer norm and a linear read-out whose weight is the token
embedding's (weight tying, as in GPT-2). ``generate`` samples with
``dlbook.sampling.sample_next`` and keeps a key-value cache so that each new token costs
one token's worth of computation. ``count_parameters`` and ``gpt2_config`` reproduce
GPT-2's model sizes without allocating a single weight.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from dlbook.attention import GroupedQueryAttention, KVCache, LearnedPositions
from dlbook.checkpoint import load_checkpoint, save_checkpoint, shipped_checkpoint
from dlbook.modern import RMSNorm, SwiGLU, swiglu_width
from dlbook.rnn import CharLSTM, CharLSTMConfig, check_generate_args
from dlbook.sampling import sample_next
from dlbook.text import (
    CharCorpus,
    CharVocab,
    LMTrainConfig,
    evaluate_char_lm,
    train_char_lm,
)
from dlbook.train import History, Schedule, TrainConfig
from dlbook.transformer import TransformerBlock
from dlbook.utils import (  # count_parameters is also dlbook.gpt.count_parameters
    check_ids,
    check_positive_int,
    check_real,
    count_parameters,  # noqa: F401
    set_seed,
)


@dataclass(frozen=True)
class GPTConfig:
    """Sizes of a GPT. Defaults are the book's small character model; ``gpt2_config``
    gives the published ones (Radford et al., 2019, table 2)."""

    vocab_size: int  # V, number of distinct tokens
    block_size: int = 128  # T_max, the longest context the model reads
    n_layers: int = 4  # Transformer blocks
    n_heads: int = 4  # attention heads per block
    d_model: int = 128  # width of every token vector
    dropout: float = 0.1  # dropout on embeddings and residual branches (GPT-2: 0.1)
    # dropout on attention weights (GPT-2: 0.1; slow on a CPU)
    attn_dropout: float = 0.0
    tie_weights: bool = True  # read-out weight = token embedding (GPT-2 does this)
    # "layernorm" (GPT-2) or "rmsnorm" (LLaMA; dlbook.modern.RMSNorm)
    norm: str = "layernorm"
    # "gelu" (GPT-2's 4 d MLP) or "swiglu" (LLaMA; dlbook.modern.SwiGLU)
    mlp: str = "gelu"
    # "learned" (GPT-2's position vectors) or "rope" (rotary, on queries and keys)
    positions: str = "learned"
    rope_base: float = 10000.0  # RoPE's base (LLaMA 1 and 2: 10,000)
    n_kv_heads: int | None = None  # key-value heads (grouped-query); None: n_heads
    attn_bias: bool = True  # biases in the attention projections (LLaMA: none)
    d_ff: int | None = None  # MLP hidden width; None: 4 d, or swiglu_width(d)
    norm_eps: float | None = None  # None: 1e-5 (layer norm) or 1e-6 (RMSNorm)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layers", "n_heads", "d_model"):
            check_positive_int(getattr(self, name), name)
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model must be divisible by n_heads, got "
                f"{self.d_model} "
                f"and {self.n_heads}"
            )
        for name in ("dropout", "attn_dropout"):
            check_real(getattr(self, name), name, 0.0, 1.0, high_open=True)
        self._check_llama_options()
        for name, choices in (("norm", NORMS), ("mlp", MLPS), ("positions", POSITIONS)):
            if getattr(self, name) not in choices:
                raise ValueError(
                    f"{name} must be one of {choices}, got {getattr(self, name)!r}"
                )

    def _check_llama_options(self) -> None:
        """Checks of the fields that turn GPT-2 into LLaMA."""
        check_real(self.rope_base, "rope_base", 1.0, low_open=True)
        if self.n_kv_heads is not None:
            check_positive_int(self.n_kv_heads, "n_kv_heads")
            if self.n_heads % self.n_kv_heads:
                raise ValueError(
                    f"n_heads must be a multiple of n_kv_heads, got {self.n_heads} "
                    f"and {self.n_kv_heads}"
                )
        if self.positions == "rope" and (self.d_model // self.n_heads) % 2:
            raise ValueError(
                f"rotary positions need an even head width, got d_model "
                f"{self.d_model} / n_heads {self.n_heads}"
            )
        if self.d_ff is not None:
            check_positive_int(self.d_ff, "d_ff")
        if self.norm_eps is not None:
            check_real(self.norm_eps, "norm_eps", 0.0, low_open=True)
        if not isinstance(self.attn_bias, bool):
            raise TypeError(f"attn_bias must be a bool, got {self.attn_bias!r}")

    @property
    def ff_width(self) -> int:
        """The MLP's hidden width (``d_ff`` if set, else 4 d for GELU and
        ``swiglu_width(d)`` for SwiGLU)."""
        if self.d_ff is not None:
            return self.d_ff
        return 4 * self.d_model if self.mlp == "gelu" else swiglu_width(self.d_model)

    @property
    def kv_heads(self) -> int:
        """The number of key-value heads (``n_kv_heads`` if set, else ``n_heads``)."""
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads


NORMS = ("layernorm", "rmsnorm")
MLPS = ("gelu", "swiglu")
POSITIONS = ("learned", "rope")


# GPT-2's four sizes: (n_layers, d_model, n_heads), from Radford et al. (2019), table 2.
GPT2_SIZES = {
    "117M": (12, 768, 12),
    "345M": (24, 1024, 16),
    "762M": (36, 1280, 20),
    "1542M": (48, 1600, 25),
}


def gpt2_config(name: str) -> GPTConfig:
    """The configuration of a published GPT-2 model: 50,257 BPE tokens, a 1,024-token
    context."""
    if name not in GPT2_SIZES:
        raise ValueError(f"name must be one of {list(GPT2_SIZES)}, got {name!r}")
    n_layers, d_model, n_heads = GPT2_SIZES[name]
    return GPTConfig(
        vocab_size=50257,
        block_size=1024,
        n_layers=n_layers,
        n_heads=n_heads,
        d_model=d_model,
        dropout=0.1,
        attn_dropout=0.1,
    )


class GPT(nn.Module):
    """A decoder-only Transformer language model: ``idx`` (B, T) -> next-token logits
    (B, T, V)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = c = config
        self.tok_embed = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_embed = (
            LearnedPositions(c.block_size, c.d_model)
            if c.positions == "learned"
            else None  # rotary positions act inside attention
        )
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                c.d_model,
                c.n_heads,
                c.ff_width,
                c.dropout,
                attn_dropout=c.attn_dropout,
            )
            for _ in range(c.n_layers)
        )
        self.ln_final = nn.LayerNorm(c.d_model)
        self._modernize(c)
        self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        if c.tie_weights:
            self.head.weight = self.tok_embed.weight
        self.apply(self._init_weights)
        # GPT-2: scale the residual branches' last layers by 1/sqrt(number of residual
        # sums)
        for name, p in self.named_parameters():
            if name.endswith(("out_proj.weight", "ff.proj.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layers))

    def _modernize(self, c: GPTConfig) -> None:
        """Swap in RMSNorm for every layer norm, SwiGLU for every MLP, and grouped-query
        attention with rotary positions, as the config asks."""
        eps = (
            {"layernorm": 1e-5, "rmsnorm": 1e-6}[c.norm]
            if c.norm_eps is None
            else c.norm_eps
        )
        norm = RMSNorm if c.norm == "rmsnorm" else nn.LayerNorm
        llama_attention = (
            c.positions == "rope" or c.kv_heads != c.n_heads or not c.attn_bias
        )
        for block in self.blocks:
            block.ln_self, block.ln_ff = (
                norm(c.d_model, eps=eps),
                norm(c.d_model, eps=eps),
            )
            if c.mlp == "swiglu":
                block.ff = SwiGLU(c.d_model, c.ff_width, c.dropout)
            if llama_attention:
                block.self_attn = GroupedQueryAttention(
                    c.d_model,
                    c.n_heads,
                    c.kv_heads,
                    c.attn_dropout,
                    bias=c.attn_bias,
                    rope_base=c.rope_base if c.positions == "rope" else None,
                )
        self.ln_final = norm(c.d_model, eps=eps)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """Normal(0, 0.02) weights and zero biases, as in GPT-2."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(
        self, idx: torch.Tensor, caches: list[KVCache] | None = None
    ) -> torch.Tensor:
        """Logits (B, T, V) for the token after each position of idx (B, T).

        With ``caches`` (one ``KVCache`` per block), idx holds only the *new* tokens:
        they sit at positions ``len(caches[0])`` onwards and attend to the cached ones
        too.
        """
        check_ids(idx, self.config.vocab_size)
        if caches is not None and (
            len(caches) != len(self.blocks)
            or not all(isinstance(c, KVCache) for c in caches)
        ):
            got = (
                [type(c).__name__ for c in caches]
                if isinstance(caches, list)
                else caches
            )
            raise ValueError(
                f"caches must be a list of one KVCache per block "
                f"({len(self.blocks)}), got {got!r:.80}"
            )
        start = 0 if caches is None else len(caches[0])
        T = idx.shape[1]
        if start + T > self.config.block_size:
            raise ValueError(
                f"context of {start + T} tokens exceeds block_size "
                f"{self.config.block_size}"
            )
        x = self.tok_embed(idx)  # (B, T, C)
        if self.pos_embed is not None:
            x = self.pos_embed(x, start)
        x = self.dropout(x)
        for i, block in enumerate(self.blocks):
            # causal self-attention: each position sees itself and the positions before
            # it
            x, _ = block(x, cache=None if caches is None else caches[i], is_causal=True)
        return self.head(self.ln_final(x))  # (B, T, V)

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """Continue each prompt in idx (B, T0) by ``max_new_tokens`` sampled tokens.

        With ``use_cache`` the prompt is read once and each later step feeds one token.
        Once the text outgrows ``block_size`` the model sees a sliding window of the
        last ``block_size`` tokens; every token's position then shifts at each step,
        which invalidates the cache, so the window is re-read in full. Returns (B, T0 +
        max_new_tokens).
        """
        check_generate_args(
            idx, self.config.vocab_size, max_new_tokens, temperature, top_k, top_p
        )
        was_training = self.training
        self.eval()
        T0, T_max = idx.shape[1], self.config.block_size
        # (B, T0 + n): filled in below
        out = idx.new_empty(idx.shape[0], T0 + max_new_tokens)
        out[:, :T0] = idx
        caches = None
        # t: the position of the token to sample
        for t in range(T0, T0 + max_new_tokens):
            if caches is not None and len(caches[0]) < T_max:
                # (B, 1, V): only the newest token
                logits = self(out[:, t - 1 : t], caches)
            else:
                caches = [KVCache(T_max) for _ in self.blocks] if use_cache else None
                logits = self(out[:, max(0, t - T_max) : t], caches)  # (B, T, V)
            out[:, t] = sample_next(logits[:, -1], temperature, top_k, top_p, generator)
        self.train(was_training)
        return out


def gpt_parameter_formula(config: GPTConfig) -> int:
    """GPT's parameter count from its sizes alone, with d = d_model and L = n_layers:

    ``V d + T_max d`` (embeddings) ``+ L (12 d^2 + 13 d)`` (attention 4 d^2 + 4 d, MLP 8
    d^2 + 5 d, two layer norms 4 d) ``+ 2 d`` (final layer norm), plus ``V d`` if the
    read-out is not tied. With RMSNorm each norm has d parameters; a SwiGLU MLP of
    hidden width h has 3 d h; with ``n_kv_heads`` key-value heads W_K and W_V are d x
    d_kv with ``d_kv = n_kv_heads d / n_heads``; rotary positions have none.
    """
    V, T, d, L = config.vocab_size, config.block_size, config.d_model, config.n_layers
    h, d_kv = config.ff_width, config.kv_heads * (d // config.n_heads)
    norm = 2 * d if config.norm == "layernorm" else d  # gain and bias, or gain only
    # SwiGLU: no biases
    mlp = 2 * d * h + h + d if config.mlp == "gelu" else 3 * d * h
    # W_Q, W_O (d x d) and W_K, W_V (d x d_kv), and their biases
    attention = 2 * d * d + 2 * d * d_kv + (2 * d + 2 * d_kv) * config.attn_bias
    positions = T * d if config.positions == "learned" else 0
    total = V * d + positions + L * (attention + mlp + 2 * norm) + norm
    return total if config.tie_weights else total + V * d


def meta_gpt(config: GPTConfig) -> GPT:
    """A GPT on the meta device: shapes only, no memory, so even GPT-2 XL builds
    instantly."""
    with torch.device("meta"):
        return GPT(config)


# ----- checkpoints of character-level language models (chapter 7's GPT and its LSTM
# baseline)

# shipped file names, listed in checkpoints/MANIFEST.json
GPT_CHECKPOINT = "gpt_char_pydoc.pt"
LSTM_CHECKPOINT = "lstm_char_pydoc.pt"
CHAR_LM_KIND = "char_lm"
_CHAR_LMS = {"gpt": (GPT, GPTConfig), "lstm": (CharLSTM, CharLSTMConfig)}


def data_fingerprint(data: torch.Tensor) -> str:
    """A SHA-256 of the ids, to tell whether a validation split is the one measured."""
    return hashlib.sha256(data.numpy().tobytes()).hexdigest()


def _char_lm_from_config(config: dict) -> GPT | CharLSTM:
    """An untrained model of the architecture and sizes a checkpoint's config
    records."""
    architecture = config["model"]
    if architecture not in _CHAR_LMS:
        raise ValueError(
            f"model must be one of {sorted(_CHAR_LMS)}, got {architecture!r}"
        )
    model_class, config_class = _CHAR_LMS[architecture]
    return model_class(config_class(**config["model_config"]))


def _save_lm(
    path: str | Path,
    kind: str,
    model: GPT | CharLSTM,
    config: dict,
    val: torch.Tensor,
    *,
    block_size: int,
    eval_windows: int,
    train_config: Any,
    summary: dict | None,
    force: bool,
    measures: Callable[[float], dict] | None = None,
) -> dict:
    """What :func:`save_char_lm` and ``dlbook.bpe.save_bpe_lm`` share: save float16
    weights as a ``kind`` checkpoint, rebuild the model from ``config``, load exactly
    what is saved and record the loss it gives on the validation ids ``val`` (the whole
    split and ``eval_windows`` windows). ``measures(val_loss)`` adds entries to the
    record after the two losses. Returns the record (``config`` and the extras)."""
    if dataclasses.is_dataclass(train_config):
        train_config = dataclasses.asdict(train_config)
    # 2 bytes each
    state = {k: v.detach().cpu().half() for k, v in model.state_dict().items()}
    reloaded = _char_lm_from_config(config)
    # exactly what is saved
    reloaded.load_state_dict({k: v.float() for k, v in state.items()})
    val_loss = evaluate_char_lm(reloaded, val, block_size)
    extra = {
        "train_config": train_config,
        **(summary or {}),
        "val_loss": val_loss,  # per token, the whole split
        "val_loss_subset": evaluate_char_lm(reloaded, val, block_size, eval_windows),
        **(measures(val_loss) if measures is not None else {}),
        "eval_windows": eval_windows,
        "val_sha256": data_fingerprint(val),
    }
    save_checkpoint(
        path, kind=kind, config=config, state_dict=state, extra=extra, force=force
    )
    return {**config, **extra}


def save_char_lm(
    path: str | Path,
    model: GPT | CharLSTM,
    corpus: CharCorpus,
    *,
    block_size: int,
    eval_windows: int,
    train_config: Any = None,
    summary: dict | None = None,
    force: bool = False,
) -> dict:
    """Save float16 weights, reload them, and record the validation loss they give.

    The record holds the architecture, its config, the vocabulary, ``train_config`` (a
    dataclass or dict), ``summary`` (steps, seconds, history) and the validation loss on
    the whole split and on ``eval_windows`` windows of ``block_size``. Returns the
    record.
    """
    names = {cls: name for name, (cls, _) in _CHAR_LMS.items()}
    if type(model) not in names:
        raise TypeError(
            f"model must be a GPT or a CharLSTM, got {type(model).__name__}"
        )
    config = {
        "model": names[type(model)],
        "model_config": dataclasses.asdict(model.config),
        "chars": "".join(corpus.vocab.chars),
    }
    return _save_lm(
        path,
        CHAR_LM_KIND,
        model,
        config,
        corpus.val,
        block_size=block_size,
        eval_windows=eval_windows,
        train_config=train_config,
        summary=summary,
        force=force,
    )


def load_char_lm(
    path: str | Path | None = None, *, vocab: CharVocab | None = None
) -> tuple[GPT | CharLSTM, CharVocab, dict]:
    """Load a character LM checkpoint: the model (float32, eval mode), its vocabulary,
    and the record (configs, steps, seconds, validation losses).

    Args:
        path: a file written by :func:`save_char_lm`; None loads the shipped GPT,
            checked against the manifest first.
        vocab: the vocabulary the model must use; None means the pydoc corpus's
            (``CharCorpus.pydoc()``), the one the shipped checkpoints were trained on. A
            checkpoint with any other vocabulary is refused with a ``ValueError``.
    """
    path = shipped_checkpoint(GPT_CHECKPOINT) if path is None else Path(path)
    saved = load_checkpoint(path, kind=CHAR_LM_KIND)
    chars = saved.config["chars"]
    expected = "".join((vocab or CharCorpus.pydoc().vocab).chars)
    if chars != expected:
        missing, added = (
            sorted(set(expected) - set(chars)),
            sorted(set(chars) - set(expected)),
        )
        raise ValueError(
            f"{path} has a vocabulary of {len(chars)} characters, the "
            f"corpus has "
            f"{len(expected)}: missing {missing!r}, extra {added!r}"
        )
    if saved.config["model_config"]["vocab_size"] != len(chars):
        raise ValueError(
            f"{path} has {len(chars)} characters but a model for "
            f"vocab_size={saved.config['model_config']['vocab_size']}"
        )
    model = _char_lm_from_config(saved.config)
    model.load_state_dict({k: v.float() for k, v in saved.state_dict.items()})
    return model.eval(), CharVocab(chars), {**saved.config, **saved.extra}


# How the shipped character models were trained (``scripts/train_gpt.py``): AdamW with
# betas (0.9, 0.99), decay 0.1 on matrices, a 100-step warm-up, a cosine from 2e-3 down
# to 1e-4.
SHIPPED_LM_TRAINING = LMTrainConfig(
    training=TrainConfig(
        steps=3000,
        batch_size=32,
        lr=2e-3,
        optimizer="adamw",
        betas=(0.9, 0.99),
        weight_decay=0.1,
        grad_clip=1.0,
        schedule=Schedule(warmup_steps=100, min_ratio=0.05),
        eval_every=200,
    ),
    block_size=None,
    eval_windows=64,
)


@dataclass(frozen=True)
class TrainGPTConfig:
    """A character language model and how it is trained: the model's own config, whose
    type decides the class (``GPTConfig``: a GPT; ``CharLSTMConfig``: chapter 5's LSTM),
    and the training loop's. The GPT's context length is its ``block_size``; the LSTM
    has none, so ``lm.block_size`` gives its window length."""

    model: GPTConfig | CharLSTMConfig  # sizes; vocab_size must match the corpus
    lm: LMTrainConfig = SHIPPED_LM_TRAINING  # steps, optimizer, schedule, windows, seed

    def __post_init__(self) -> None:
        if not isinstance(self.model, (GPTConfig, CharLSTMConfig)):
            raise TypeError(
                f"model must be a GPTConfig or a CharLSTMConfig, got "
                f"{type(self.model).__name__}"
            )
        if not isinstance(self.lm, LMTrainConfig):
            raise TypeError(
                f"lm must be an LMTrainConfig, got {type(self.lm).__name__}"
            )
        if isinstance(self.model, CharLSTMConfig) and self.lm.block_size is None:
            raise ValueError("a CharLSTMConfig has no block_size: set lm.block_size")

    @property
    def block_size(self) -> int:
        """The window length T of training and evaluation."""
        return self.lm.block_size or self.model.block_size


def build_char_lm(config: GPTConfig | CharLSTMConfig) -> GPT | CharLSTM:
    """An untrained GPT or CharLSTM: the type of ``config`` decides which."""
    if isinstance(config, GPTConfig):
        return GPT(config)
    if isinstance(config, CharLSTMConfig):
        return CharLSTM(config)
    raise TypeError(
        f"config must be a GPTConfig or a CharLSTMConfig, got {type(config).__name__}"
    )


def train_gpt(
    config: TrainGPTConfig, corpus: CharCorpus
) -> tuple[GPT | CharLSTM, History]:
    """Seed, build the model ``config.model`` describes and train it on ``corpus`` with
    ``dlbook.text.train_char_lm``; returns the model and its History."""
    if not isinstance(config, TrainGPTConfig):
        raise TypeError(f"config must be a TrainGPTConfig, got {type(config).__name__}")
    if config.model.vocab_size != len(corpus.vocab):
        raise ValueError(
            f"config.model.vocab_size is {config.model.vocab_size}, the "
            f"corpus has "
            f"{len(corpus.vocab)} characters"
        )
    set_seed(config.lm.training.seed)
    model = build_char_lm(config.model)
    return model, train_char_lm(model, corpus, config.lm)


def training_from_record(record: dict) -> TrainGPTConfig:
    """The ``TrainGPTConfig`` that describes a character LM checkpoint's record
    (``load_char_lm``).

    Records written by ``scripts/train_gpt.py`` hold the nested config itself. The first
    shipped checkpoints hold a flat one, whose learning rate decayed over the fraction
    of steps or of a CPU-time budget used; the config gives the same recipe over the
    steps taken.
    """
    model_class = {"gpt": GPTConfig, "lstm": CharLSTMConfig}[record["model"]]
    model = model_class(**record["model_config"])
    saved = record["train_config"]
    if "lm" in saved:  # the nested form
        training = dict(saved["lm"]["training"])
        training.update(
            schedule=Schedule(**training["schedule"]), betas=tuple(training["betas"])
        )
        lm = LMTrainConfig(**{**saved["lm"], "training": TrainConfig(**training)})
        return TrainGPTConfig(model=model, lm=lm)
    schedule = Schedule(
        warmup_steps=saved["warmup_steps"], min_ratio=saved["min_lr"] / saved["lr"]
    )
    training = dataclasses.replace(
        SHIPPED_LM_TRAINING.training,
        steps=record["steps"],
        batch_size=saved["batch_size"],
        lr=saved["lr"],
        schedule=schedule,
        weight_decay=saved["weight_decay"],
        grad_clip=saved["grad_clip"],
        eval_every=saved["eval_every"],
        seed=saved["seed"],
    )
    block_size = None if model_class is GPTConfig else saved["block_size"]
    lm = LMTrainConfig(
        training=training, block_size=block_size, eval_windows=saved["eval_windows"]
    )
    return TrainGPTConfig(model=model, lm=lm)
