"""Looking inside a trained GPT: the attention weights of every head in every block."""

from __future__ import annotations

import torch

from dlbook.attention import causal_mask
from dlbook.gpt import GPT


@torch.no_grad()
def attention_maps(model: GPT, idx: torch.Tensor) -> list[torch.Tensor]:
    """The self-attention weights of each block for idx (B, T): a list of ``n_layers``
    tensors (B, n_heads, T, T), row t holding how much position t attends to each
    earlier position. Runs ``GPT.forward``'s computation (in eval mode) with
    ``need_weights``."""
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a dlbook.gpt.GPT, got {type(model).__name__}")
    if model.config.positions != "learned":
        raise ValueError(
            "attention_maps reads GPT-2's learned position embeddings; got a model "
            "with "
            f"positions={model.config.positions!r}"
        )
    if idx.dim() != 2 or idx.shape[1] > model.config.block_size:
        raise ValueError(
            f"idx must be (B, T) with T <= block_size "
            f"{model.config.block_size}, "
            f"got {tuple(idx.shape)}"
        )
    was_training = model.training
    model.eval()
    T = idx.shape[1]
    x = model.pos_embed(model.tok_embed(idx))  # (B, T, C); dropout is off in eval mode
    mask = causal_mask(T, T, device=idx.device)  # (T, T)
    maps = []
    for block in model.blocks:
        x, weights = block(x, mask, need_weights=True)  # weights (B, nh, T, T)
        maps.append(weights)
    model.train(was_training)
    return maps
