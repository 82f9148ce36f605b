"""LLaMA in the book's GPT: load the weights of a Hugging Face ``LlamaForCausalLM``.

LLaMA (Touvron et al., 2023) is GPT-2's decoder with five changes, each a switch of
``GPTConfig``: RMSNorm (``norm="rmsnorm"``), a SwiGLU MLP (``mlp="swiglu"``), rotary
positions (``positions="rope"``), grouped-query attention (``n_kv_heads``) and no biases
(``attn_bias=False``); its read-out is not tied to the embedding.
``from_llama_state_dict`` reads the sizes from the tensors' shapes and copies the
weights; ``transformers`` is used only by the tests, as the reference the loaded model
must match. ``kv_cache_bytes`` counts the memory of a key-value cache, which
grouped-query attention shrinks.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from dlbook.gpt import GPT, GPTConfig
from dlbook.hf import copy_weight
from dlbook.utils import check_positive_int


def rope_halves_to_pairs(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Reorder the output rows of a query or key projection from the Hugging Face RoPE
    layout to ours.

    ``rotary_embedding`` turns the pairs of features (2i, 2i + 1) of each head, as Su et
    al. write it; Hugging Face's LLaMA turns the pairs (i, i + d_head / 2) (its
    ``rotate_half``), and its conversion script permutes the published weights to
    match. Undoing that permutation gives the same queries and keys, in our order.
    """
    d_out, d_in = weight.shape
    d_head = d_out // n_heads
    # row (head, c, i) -> (head, i, c): c = 0 the first half, c = 1 the second half
    return (
        weight.view(n_heads, 2, d_head // 2, d_in).transpose(1, 2).reshape(d_out, d_in)
    )


def llama_config(
    state_dict: Mapping[str, torch.Tensor],
    n_heads: int,
    n_kv_heads: int,
    rope_theta: float = 10000.0,
    norm_eps: float = 1e-6,
    block_size: int = 2048,
) -> GPTConfig:
    """The ``GPTConfig`` of a LLaMA state dict: sizes from the tensors' shapes, the
    numbers of heads (which no shape records) and the rest given."""
    sd = {k.removeprefix("model."): v for k, v in state_dict.items()}
    for key in ("embed_tokens.weight", "norm.weight", "layers.0.mlp.gate_proj.weight"):
        if key not in sd:
            raise ValueError(f"not a LLaMA state dict: {key!r} is missing")
    vocab_size, d_model = sd["embed_tokens.weight"].shape
    lm_head = state_dict.get("lm_head.weight")
    return GPTConfig(
        vocab_size=vocab_size,
        block_size=block_size,
        n_layers=len({int(k.split(".")[1]) for k in sd if k.startswith("layers.")}),
        n_heads=n_heads,
        d_model=d_model,
        dropout=0.0,
        tie_weights=lm_head is None or torch.equal(lm_head, sd["embed_tokens.weight"]),
        norm="rmsnorm",
        mlp="swiglu",
        positions="rope",
        rope_base=rope_theta,
        n_kv_heads=n_kv_heads,
        attn_bias="layers.0.self_attn.q_proj.bias" in sd,
        d_ff=sd["layers.0.mlp.gate_proj.weight"].shape[0],
        norm_eps=norm_eps,
    )


def from_llama_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    n_heads: int,
    n_kv_heads: int,
    rope_theta: float = 10000.0,
    norm_eps: float = 1e-6,
    *,
    block_size: int = 2048,
) -> GPT:
    """A ``GPT`` (eval mode, float32) with the weights of a Hugging Face
    ``LlamaForCausalLM`` (or ``LlamaModel``: then the read-out is tied).

    Args:
        state_dict: the tensors, ``model.layers.{i}.self_attn.q_proj.weight`` and so on.
        n_heads, n_kv_heads: query and key-value heads (``num_attention_heads``,
            ``num_key_value_heads`` of the config).
        rope_theta, norm_eps: the config's ``rope_theta`` and ``rms_norm_eps``.
        block_size: the longest context; rotary positions store nothing, so any length
            the model was trained for (``max_position_embeddings``).
    """
    config = llama_config(
        state_dict, n_heads, n_kv_heads, rope_theta, norm_eps, block_size
    )
    sd = {k.removeprefix("model."): v for k, v in state_dict.items()}
    model = GPT(config)
    copy_weight(
        model.tok_embed.weight, sd["embed_tokens.weight"], "embed_tokens.weight"
    )
    for i, block in enumerate(model.blocks):
        p = f"layers.{i}."
        _copy_block(
            block, {k.removeprefix(p): v for k, v in sd.items() if k.startswith(p)}, p
        )
    copy_weight(model.ln_final.weight, sd["norm.weight"], "norm.weight")
    if not config.tie_weights:
        copy_weight(model.head.weight, state_dict["lm_head.weight"], "lm_head.weight")
    return model.eval()


def _copy_block(
    block: torch.nn.Module, sd: dict[str, torch.Tensor], prefix: str
) -> None:
    """One decoder layer: two RMSNorm gains, attention (q, k reordered for our RoPE),
    SwiGLU."""
    attn = block.self_attn
    pairs = [
        (block.ln_self.weight, sd["input_layernorm.weight"], "input_layernorm"),
        (
            block.ln_ff.weight,
            sd["post_attention_layernorm.weight"],
            "post_attention_layernorm",
        ),
        (
            attn.q_proj.weight,
            rope_halves_to_pairs(sd["self_attn.q_proj.weight"], attn.n_heads),
            "q_proj",
        ),
        (
            attn.k_proj.weight,
            rope_halves_to_pairs(sd["self_attn.k_proj.weight"], attn.n_kv_heads),
            "k_proj",
        ),
        (attn.v_proj.weight, sd["self_attn.v_proj.weight"], "v_proj"),
        (attn.out_proj.weight, sd["self_attn.o_proj.weight"], "o_proj"),
        (block.ff.gate.weight, sd["mlp.gate_proj.weight"], "gate_proj"),
        (block.ff.up.weight, sd["mlp.up_proj.weight"], "up_proj"),
        (block.ff.proj.weight, sd["mlp.down_proj.weight"], "down_proj"),
    ]
    if attn.q_proj.bias is not None:  # attention_bias=True
        pairs += [
            (
                attn.q_proj.bias,
                rope_halves_to_pairs(
                    sd["self_attn.q_proj.bias"][:, None], attn.n_heads
                )[:, 0],
                "q_proj.bias",
            ),
            (
                attn.k_proj.bias,
                rope_halves_to_pairs(
                    sd["self_attn.k_proj.bias"][:, None], attn.n_kv_heads
                )[:, 0],
                "k_proj.bias",
            ),
            (attn.v_proj.bias, sd["self_attn.v_proj.bias"], "v_proj.bias"),
            (attn.out_proj.bias, sd["self_attn.o_proj.bias"], "o_proj.bias"),
        ]
    for target, source, name in pairs:
        copy_weight(target, source, prefix + name)


def kv_cache_bytes(config: GPTConfig, n_tokens: int, bytes_per_value: int = 2) -> int:
    """Bytes of the key-value cache of ``n_tokens`` tokens of one sequence:
    ``2 (K and V) x n_layers x n_kv_heads x d_head x n_tokens x bytes_per_value``."""
    if not isinstance(config, GPTConfig):
        raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
    check_positive_int(n_tokens, "n_tokens")
    check_positive_int(bytes_per_value, "bytes_per_value")
    d_head = config.d_model // config.n_heads
    return 2 * config.n_layers * config.kv_heads * d_head * n_tokens * bytes_per_value
