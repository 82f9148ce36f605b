"""Activation checkpointing: keep less of the forward pass, recompute the rest in the
backward.

Autograd normally keeps, for the backward pass, every intermediate tensor that a
gradient formula needs: in a Transformer block the layer norms' outputs, queries, keys,
values, the attention output and the MLP's hidden layer. ``CheckpointedGPT`` keeps only
each block's input and runs the block's forward pass a second time, during the backward
pass, to get the rest (Chen et al., 2016): activation memory falls from about ``L``
blocks' worth of intermediates to ``L`` block inputs plus one block's intermediates, for
about one extra forward pass of computation.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from dlbook.attention import causal_mask
from dlbook.gpt import GPT


def _block_output(
    block: nn.Module, x: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    return block(x, mask)[0]


class CheckpointedGPT(nn.Module):
    """The same function and parameters as ``gpt``, with every block checkpointed.

    The reentrant form of ``torch.utils.checkpoint`` is used: it saves each block's
    inputs with ``save_for_backward``, so ``dlbook.scale.saved_activation_bytes`` sees
    them, and it restores the random state, so dropout draws the same masks when the
    block is recomputed.
    """

    def __init__(self, gpt: GPT):
        super().__init__()
        if not isinstance(gpt, GPT):
            raise TypeError(f"gpt must be a dlbook.gpt.GPT, got {type(gpt).__name__}")
        if gpt.config.positions != "learned":
            raise ValueError(
                "CheckpointedGPT adds GPT-2's learned position embeddings; got a model "
                "with "
                f"positions={gpt.config.positions!r}"
            )
        self.gpt = gpt

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, V) for idx (B, T), as ``GPT.forward`` without a cache."""
        g = self.gpt
        T = idx.shape[1]
        if idx.dim() != 2 or T > g.config.block_size:
            raise ValueError(
                f"idx must be (B, T) with T <= block_size "
                f"{g.config.block_size}, "
                f"got {tuple(idx.shape)}"
            )
        x = g.dropout(g.pos_embed(g.tok_embed(idx)))  # (B, T, C)
        mask = causal_mask(T, T, device=idx.device)  # (T, T)
        for block in g.blocks:
            # (B, T, C)
            x = checkpoint(_block_output, block, x, mask, use_reentrant=True)
        return g.head(g.ln_final(x))  # (B, T, V)
