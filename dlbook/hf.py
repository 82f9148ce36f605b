"""Load weights saved in the Hugging Face layout into the book's models.

``from_gpt2_state_dict`` turns a GPT-2 state dict (``GPT2LMHeadModel`` or ``GPT2Model``,
as in the ``gpt2`` weights on the Hugging Face hub) into a ``dlbook.gpt.GPT``. The sizes
are read from the tensors' shapes; only the number of heads, which no shape records,
must be given. The ``transformers`` package is not needed here: it is used only by the
tests, as the reference the loaded model must match.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import nn

from dlbook.gpt import GPT, GPTConfig
from dlbook.transformer import FeedForward

GELU_VARIANTS = ("tanh", "exact")


class GPT2FeedForward(FeedForward):
    """The position-wise MLP with GPT-2's tanh approximation of GELU (Hendrycks and
    Gimpel, 2016), ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``, which Hugging
    Face calls ``gelu_new``. The book's ``FeedForward`` uses the exact GELU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, d_model) -> (B, T, d_model)."""
        return self.dropout(
            self.proj(nn.functional.gelu(self.fc(x), approximate="tanh"))
        )


def _strip_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys without the ``transformer.`` prefix of ``GPT2LMHeadModel``; drops the
    causal-mask buffers (``attn.bias``, ``attn.masked_bias``) that older versions
    saved."""
    out = {}
    for key, value in state_dict.items():
        key = key.removeprefix("transformer.")
        if re.fullmatch(r"h\.\d+\.attn\.(masked_)?bias", key):
            continue
        out[key] = value
    return out


def copy_weight(target: torch.Tensor, source: torch.Tensor, name: str) -> None:
    """Copy ``source`` into the parameter ``target`` in place, refusing a shape mismatch
    with an error that names the state-dict entry ``name``."""
    if target.shape != source.shape:
        raise ValueError(
            f"{name}: expected shape {tuple(target.shape)}, got {tuple(source.shape)}"
        )
    with torch.no_grad():
        target.copy_(source)


def from_gpt2_state_dict(
    state_dict: Mapping[str, torch.Tensor], n_heads: int, *, gelu: str = "tanh"
) -> GPT:
    """A ``GPT`` (eval mode, float32, no dropout) with the weights of a Hugging Face
    GPT-2.

    Hugging Face stores GPT-2's linear layers as ``Conv1D`` with weights of shape (in,
    out), the transpose of ``nn.Linear``'s, and the query, key and value projections as
    one ``c_attn`` of width 3 d_model; both are undone here. The read-out is tied to the
    token embedding, as in GPT-2, unless the state dict holds a different
    ``lm_head.weight``.

    Args:
        state_dict: the tensors of ``GPT2LMHeadModel`` or ``GPT2Model``.
        n_heads: attention heads per block (GPT-2 124M: 12).
        gelu: ``"tanh"`` for GPT-2's approximate GELU (``gelu_new``, what the published
            weights were trained with), ``"exact"`` for ``activation_function="gelu"``.
    """
    if gelu not in GELU_VARIANTS:
        raise ValueError(f"gelu must be one of {GELU_VARIANTS}, got {gelu!r}")
    sd = _strip_prefix(state_dict)
    for key in ("wte.weight", "wpe.weight", "ln_f.weight"):
        if key not in sd:
            raise ValueError(f"not a GPT-2 state dict: {key!r} is missing")
    vocab_size, d_model = sd["wte.weight"].shape
    block_size = sd["wpe.weight"].shape[0]
    n_layers = len({int(k.split(".")[1]) for k in sd if k.startswith("h.")})
    lm_head = sd.get("lm_head.weight")
    tied = lm_head is None or torch.equal(lm_head, sd["wte.weight"])
    config = GPTConfig(
        vocab_size=vocab_size,
        block_size=block_size,
        n_layers=n_layers,
        n_heads=n_heads,
        d_model=d_model,
        dropout=0.0,
        tie_weights=tied,
    )
    model = GPT(config)
    copy_weight(model.tok_embed.weight, sd["wte.weight"], "wte.weight")
    copy_weight(model.pos_embed.embed.weight, sd["wpe.weight"], "wpe.weight")
    for i, block in enumerate(model.blocks):
        p = f"h.{i}."
        if gelu == "tanh":
            block.ff = GPT2FeedForward(d_model, 4 * d_model)
        _copy_block(
            block, {k.removeprefix(p): v for k, v in sd.items() if k.startswith(p)}, p
        )
    copy_weight(model.ln_final.weight, sd["ln_f.weight"], "ln_f.weight")
    copy_weight(model.ln_final.bias, sd["ln_f.bias"], "ln_f.bias")
    if not tied:
        copy_weight(model.head.weight, lm_head, "lm_head.weight")
    return model.eval()


def _copy_block(block: nn.Module, sd: dict[str, torch.Tensor], prefix: str) -> None:
    """One Transformer block: layer norms, attention (c_attn split into q, k, v),
    MLP."""
    pairs = [(block.ln_self, "ln_1"), (block.ln_ff, "ln_2")]
    for norm, name in pairs:
        copy_weight(norm.weight, sd[f"{name}.weight"], prefix + f"{name}.weight")
        copy_weight(norm.bias, sd[f"{name}.bias"], prefix + f"{name}.bias")
    attn = block.self_attn
    # Conv1D (d, 3d) -> 3 x (d, d)
    w_q, w_k, w_v = sd["attn.c_attn.weight"].t().chunk(3)
    b_q, b_k, b_v = sd["attn.c_attn.bias"].chunk(3)
    linears = [
        (attn.q_proj, w_q, b_q),
        (attn.k_proj, w_k, b_k),
        (attn.v_proj, w_v, b_v),
        (attn.out_proj, sd["attn.c_proj.weight"].t(), sd["attn.c_proj.bias"]),
        (block.ff.fc, sd["mlp.c_fc.weight"].t(), sd["mlp.c_fc.bias"]),
        (block.ff.proj, sd["mlp.c_proj.weight"].t(), sd["mlp.c_proj.bias"]),
    ]
    for linear, weight, bias in linears:
        copy_weight(linear.weight, weight, prefix + "weight")
        copy_weight(linear.bias, bias, prefix + "bias")
