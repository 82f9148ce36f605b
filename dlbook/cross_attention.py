"""Conditioning a denoiser on a prompt of tokens through cross-attention.

Text-to-image diffusion models (Rombach et al., 2022; Saharia et al., 2022) condition
the denoiser on a sequence of token embeddings from a text encoder: at several layers
the denoiser's hidden state is the *query* of an attention whose *keys and values* are
the prompt's tokens, so every layer can read the words it needs. This module builds that
with chapter 6's ``MultiHeadAttention`` on the chapter's 2-D denoiser, and a small
compositional data set to train it on: Gaussians on a 3x3 grid, each named by a two-word
prompt such as "left top".

A prompt is a (B, L) int64 tensor of token ids; the id ``vocab_size`` is the null token
(the empty prompt of classifier-free guidance). The denoiser keeps the interface of
``dlbook.diffusion`` (``model(x_t, t, y)``, ``config.n_classes`` the null id), so
``train_denoiser``, ``ddpm_sample`` and ``ddim_sample`` take prompts as ``y``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dlbook.attention import MultiHeadAttention
from dlbook.diffusion import (
    _check_denoiser_steps,
    _config_or_default,
    embed_points_and_steps,
    residual_blocks,
    timestep_embedding,
)
from dlbook.utils import check_positive_int, check_real

# the grid's words: token ids 0-2 name the column, 3-5 the row
WORDS = ("left", "centre", "right", "bottom", "middle", "top")


class CrossAttention(nn.Module):
    """A pre-norm residual cross-attention: ``h + MHA(LayerNorm(h), context, context)``.

    The hidden states h are the queries; the prompt's token embeddings are the keys and
    values (the attention block of Rombach et al., 2022, with one query per point
    instead of one per pixel).
    """

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, n_heads)

    def forward(
        self,
        h: torch.Tensor,
        context: torch.Tensor,
        mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Hidden states h (B, T_q, d_model) attend to context (B, L, d_model).

        ``mask`` (bool, broadcastable to (B, n_heads, T_q, L)) hides padding tokens.
        Returns the updated h (B, T_q, d_model) and the weights (B, n_heads, T_q, L)
        when ``need_weights``, else None.
        """
        out, weights = self.attn(
            self.norm(h), context, context, mask=mask, need_weights=need_weights
        )
        return h + out, weights


@dataclass(frozen=True)
class PromptDenoiserConfig:
    """The 2-D residual MLP denoiser with a cross-attention to the prompt after every
    block."""

    data_dim: int = 2  # dimension of a data point
    hidden: int = 64  # width of the hidden state, the token embeddings and attention
    n_blocks: int = 3  # residual MLP blocks, each followed by a cross-attention
    time_dim: int = 32  # size of the sinusoidal step embedding
    n_heads: int = 2  # attention heads of each cross-attention
    vocab_size: int = len(WORDS)  # token ids 0 .. vocab_size - 1; vocab_size is null

    def __post_init__(self) -> None:
        for name in ("data_dim", "hidden", "n_blocks", "time_dim", "n_heads"):
            check_positive_int(getattr(self, name), name)
        check_positive_int(self.vocab_size, "vocab_size")
        if self.time_dim % 2 or self.hidden % self.n_heads:
            raise ValueError(
                f"time_dim must be even and hidden divisible by n_heads, got "
                f"time_dim={self.time_dim}, hidden={self.hidden}, "
                f"n_heads={self.n_heads}"
            )

    @property
    def n_classes(self) -> int:
        """The null token's id, named as ``dlbook.diffusion``'s guidance expects."""
        return self.vocab_size


class PromptDenoiser(nn.Module):
    """eps_theta(x_t, t, prompt) for points: after every residual block the hidden state
    reads the prompt's token embeddings through a ``CrossAttention``."""

    def __init__(self, config: PromptDenoiserConfig | None = None):
        super().__init__()
        self.config = config = _config_or_default(config, PromptDenoiserConfig)
        h = config.hidden
        # MLPDenoiser's layers, with the token embeddings and the cross-attentions
        # created in between (the order fixes what a seed initializes)
        self.embed_x, self.embed_t = embed_points_and_steps(config)
        self.embed_tokens = nn.Embedding(config.vocab_size + 1, h)  # + the null token
        self.blocks = residual_blocks(config)
        self.cross = nn.ModuleList(
            CrossAttention(h, config.n_heads) for _ in range(config.n_blocks)
        )
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(h, config.data_dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None):
        """Points (B, data_dim), steps (B,) and prompts (B, L) -> noise (B, data_dim).
        ``y=None`` is the empty prompt (one null token)."""
        return self._run(x, t, y, need_weights=False)[0]

    def with_weights(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The predicted noise and each layer's attention weights (B, n_heads, L)."""
        return self._run(x, t, y, need_weights=True)

    def _check(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None):
        """The inputs checked, and y=None replaced by the empty prompt (B, 1)."""
        if x.dim() != 2 or x.shape[1] != self.config.data_dim:
            raise ValueError(
                f"x must have shape (B, {self.config.data_dim}), got {tuple(x.shape)}"
            )
        _check_denoiser_steps(t, x)
        if y is None:
            y = torch.full((x.shape[0], 1), self.config.vocab_size, device=x.device)
        if y.dim() != 2 or y.shape[0] != x.shape[0] or y.dtype != torch.int64:
            raise ValueError(
                f"y must be an int64 tensor of prompts ({x.shape[0]}, L), got "
                f"{y.dtype} {tuple(y.shape)}"
            )
        return y

    def _run(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        y: torch.Tensor | None,
        need_weights: bool,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The residual MLP of ``MLPDenoiser`` with a cross-attention to the prompt's
        token embeddings after every block; returns the noise and the weights."""
        y = self._check(x, t, y)
        context = self.embed_tokens(y)  # (B, L, hidden)
        temb = self.embed_t(timestep_embedding(t, self.config.time_dim))  # (B, hidden)
        h = self.embed_x(x)  # (B, hidden)
        weights = []
        for block, cross in zip(self.blocks, self.cross):
            h = h + block(h + temb)
            # one query per point: (B, 1, hidden) attends to (B, L, hidden)
            h, w = cross(h[:, None], context, need_weights=need_weights)
            h = h[:, 0]
            if need_weights:
                weights.append(w[:, :, 0])  # (B, n_heads, L)
        return self.out(h), weights


def grid_prompts(column: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
    """Prompts (B, 2) "<column word> <row word>" for columns and rows (B,) in 0..2."""
    for name, v in (("column", column), ("row", row)):
        if (
            v.dtype != torch.int64
            or v.dim() != 1
            or not bool(((v >= 0) & (v < 3)).all())
        ):
            raise ValueError(f"{name} must be an int64 (B,) tensor in 0..2, got {v}")
    return torch.stack([column, 3 + row], dim=1)


def grid_centres(prompts: torch.Tensor, spacing: float = 2.0) -> torch.Tensor:
    """The centres (B, 2) named by grid prompts (B, 2): column and row 0, 1, 2 sit at
    ``-spacing, 0, spacing``."""
    return spacing * torch.stack([prompts[:, 0] - 1, prompts[:, 1] - 4], 1).float()


def grid_mixture(
    cells: list[tuple[int, int]],
    n_per_cell: int,
    generator: torch.Generator,
    std: float = 0.3,
    spacing: float = 2.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Points (N, 2) and their prompts (N, 2): ``n_per_cell`` draws of an isotropic
    Gaussian of standard deviation ``std`` around the centre of each (column, row) cell
    of the 3x3 grid."""
    check_positive_int(n_per_cell, "n_per_cell")
    check_real(std, "std", 0.0, low_open=True)
    if not cells:
        raise ValueError("cells must name at least one (column, row) cell")
    column = torch.tensor([c for c, _ in cells]).repeat_interleave(n_per_cell)
    row = torch.tensor([r for _, r in cells]).repeat_interleave(n_per_cell)
    prompts = grid_prompts(column, row)
    noise = torch.randn(len(prompts), 2, generator=generator)
    return grid_centres(prompts, spacing) + std * noise, prompts


def nearest_cell(points: torch.Tensor, spacing: float = 2.0) -> torch.Tensor:
    """For points (B, 2), the grid prompt (B, 2) of the nearest of the nine centres."""
    index = (points / spacing + 1).round().clamp(0, 2).long()  # (B, 2): column, row
    return grid_prompts(index[:, 0], index[:, 1])
