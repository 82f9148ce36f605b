"""GPT: a decoder-only Transformer trained to predict the next token (Radford et al., 2018, 2019).

Token and learned position embeddings, a stack of pre-LN blocks with causal self-attention, a
final layer norm and a linear read-out whose weight is the token embedding's (weight tying, as
in GPT-2). ``generate`` samples with ``dlbook.sampling.sample_next`` and keeps a key-value cache
so that each new token costs one token's worth of computation. ``count_parameters`` and
``gpt2_config`` reproduce GPT-2's model sizes without allocating a single weight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from dlbook.attention import KVCache, LearnedPositions, causal_mask
from dlbook.sampling import sample_next
from dlbook.transformer import TransformerBlock


@dataclass(frozen=True)
class GPTConfig:
    """Sizes of a GPT. Defaults are the book's small character model; ``gpt2_config`` gives
    the published ones (Radford et al., 2019, table 2)."""

    vocab_size: int  # V, number of distinct tokens
    block_size: int = 128  # T_max, the longest context the model reads
    n_layers: int = 4  # Transformer blocks
    n_heads: int = 4  # attention heads per block
    d_model: int = 128  # width of every token vector
    dropout: float = 0.1  # dropout on embeddings and residual branches (GPT-2: 0.1)
    attn_dropout: float = 0.0  # dropout on attention weights (GPT-2: 0.1; slow on a CPU)
    tie_weights: bool = True  # read-out weight = token embedding (GPT-2 does this)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layers", "n_heads", "d_model"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model must be divisible by n_heads, got {self.d_model} "
                             f"and {self.n_heads}")
        for name in ("dropout", "attn_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")


# GPT-2's four sizes: (n_layers, d_model, n_heads), from Radford et al. (2019), table 2.
GPT2_SIZES = {
    "117M": (12, 768, 12),
    "345M": (24, 1024, 16),
    "762M": (36, 1280, 20),
    "1542M": (48, 1600, 25),
}


def gpt2_config(name: str) -> GPTConfig:
    """The configuration of a published GPT-2 model: 50,257 BPE tokens, a 1,024-token context."""
    if name not in GPT2_SIZES:
        raise ValueError(f"name must be one of {list(GPT2_SIZES)}, got {name!r}")
    n_layers, d_model, n_heads = GPT2_SIZES[name]
    return GPTConfig(vocab_size=50257, block_size=1024, n_layers=n_layers, n_heads=n_heads,
                     d_model=d_model, dropout=0.1, attn_dropout=0.1)


class GPT(nn.Module):
    """A decoder-only Transformer language model: ``idx`` (B, T) -> next-token logits (B, T, V)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = c = config
        self.tok_embed = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_embed = LearnedPositions(c.block_size, c.d_model)
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(c.d_model, c.n_heads, 4 * c.d_model, c.dropout,
                             attn_dropout=c.attn_dropout)
            for _ in range(c.n_layers))
        self.ln_final = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        if c.tie_weights:
            self.head.weight = self.tok_embed.weight
        self.apply(self._init_weights)
        # GPT-2: scale the residual branches' last layers by 1/sqrt(number of residual sums)
        for name, p in self.named_parameters():
            if name.endswith(("out_proj.weight", "ff.proj.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """Normal(0, 0.02) weights and zero biases, as in GPT-2."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor, caches: list[KVCache] | None = None) -> torch.Tensor:
        """Logits (B, T, V) for the token after each position of idx (B, T).

        With ``caches`` (one ``KVCache`` per block), idx holds only the *new* tokens: they sit
        at positions ``len(caches[0])`` onwards and attend to the cached ones too.
        """
        if idx.dim() != 2 or idx.dtype != torch.long:
            raise ValueError(f"idx must be (B, T) int64, got {tuple(idx.shape)} {idx.dtype}")
        if caches is not None and len(caches) != len(self.blocks):
            raise ValueError(f"need one KVCache per block ({len(self.blocks)}), got {len(caches)}")
        start = 0 if caches is None else len(caches[0])
        T = idx.shape[1]
        if start + T > self.config.block_size:
            raise ValueError(f"context of {start + T} tokens exceeds block_size "
                             f"{self.config.block_size}")
        x = self.dropout(self.pos_embed(self.tok_embed(idx), start))  # (B, T, C)
        mask = causal_mask(T, start + T, device=idx.device)  # (T, start + T)
        for i, block in enumerate(self.blocks):
            x, _ = block(x, mask, cache=None if caches is None else caches[i])
        return self.head(self.ln_final(x))  # (B, T, V)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None,
                 generator: torch.Generator | None = None,
                 use_cache: bool = True) -> torch.Tensor:
        """Continue each prompt in idx (B, T0) by ``max_new_tokens`` sampled tokens.

        With ``use_cache`` the prompt is read once and each later step feeds one token. Once
        the text outgrows ``block_size`` the model sees a sliding window of the last
        ``block_size`` tokens; every token's position then shifts at each step, which
        invalidates the cache, so the window is re-read in full. Returns (B, T0 + max_new_tokens).
        """
        if idx.dim() != 2 or idx.shape[1] < 1:
            raise ValueError(f"idx must be (B, T0) with T0 >= 1, got {tuple(idx.shape)}")
        was_training = self.training
        self.eval()
        out, caches = idx, None
        for _ in range(max_new_tokens):
            if caches is not None and len(caches[0]) < self.config.block_size:
                logits = self(out[:, -1:], caches)  # (B, 1, V): only the newest token
            else:
                caches = [KVCache() for _ in self.blocks] if use_cache else None
                logits = self(out[:, -self.config.block_size:], caches)  # (B, T, V)
            nxt = sample_next(logits[:, -1], temperature, top_k, top_p, generator)  # (B,)
            out = torch.cat([out, nxt[:, None]], dim=1)
        self.train(was_training)
        return out


def count_parameters(model: nn.Module) -> int:
    """The number of distinct parameters; a tied weight (shared by two layers) counts once."""
    return sum(p.numel() for p in model.parameters())  # parameters() yields each tensor once


def gpt_parameter_formula(config: GPTConfig) -> int:
    """GPT's parameter count from its sizes alone, with d = d_model and L = n_layers:

    ``V d + T_max d`` (embeddings) ``+ L (12 d^2 + 13 d)`` (attention 4 d^2 + 4 d, MLP
    8 d^2 + 5 d, two layer norms 4 d) ``+ 2 d`` (final layer norm), plus ``V d`` if the
    read-out is not tied.
    """
    V, T, d, L = config.vocab_size, config.block_size, config.d_model, config.n_layers
    total = V * d + T * d + L * (12 * d * d + 13 * d) + 2 * d
    return total if config.tie_weights else total + V * d


def meta_gpt(config: GPTConfig) -> GPT:
    """A GPT on the meta device: shapes only, no memory, so even GPT-2 XL builds instantly."""
    with torch.device("meta"):
        return GPT(config)
