"""dlbook.inspect_gpt.attention_maps: causal, normalized, and consistent with GPT.forward."""

import pytest
import torch

from dlbook.gpt import GPT, GPTConfig
from dlbook.inspect_gpt import attention_maps


def test_maps_are_causal_rows_of_probabilities_and_match_the_heads():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=30, block_size=12, n_layers=2, n_heads=3, d_model=12))
    model.train()
    idx = torch.randint(0, 30, (2, 10))
    maps = attention_maps(model, idx)
    assert model.training  # the mode is restored
    assert len(maps) == 2 and maps[0].shape == (2, 3, 10, 10)
    for w in maps:
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, 10))
        assert torch.all(w.triu(diagonal=1) == 0)
    # the first block's weights equal softmax(q k^T / sqrt(d)) with the block's own projections
    block = model.blocks[0]
    h = block.ln_self(model.pos_embed(model.tok_embed(idx)))
    q = block.self_attn.split_heads(block.self_attn.q_proj(h))
    k = block.self_attn.split_heads(block.self_attn.k_proj(h))
    scores = (q @ k.transpose(-2, -1)) / 2.0  # d_head = 4
    scores = scores.masked_fill(torch.ones(10, 10, dtype=torch.bool).triu(1), float("-inf"))
    torch.testing.assert_close(maps[0], scores.softmax(-1))


def test_errors():
    model = GPT(GPTConfig(vocab_size=5, block_size=4, n_layers=1, n_heads=1, d_model=4))
    with pytest.raises(ValueError, match="block_size"):
        attention_maps(model, torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(TypeError, match="GPT"):
        attention_maps(torch.nn.Linear(2, 2), torch.zeros(1, 2, dtype=torch.long))


def test_rotary_models_are_refused_with_a_clear_error():
    rope = GPT(GPTConfig(vocab_size=7, block_size=8, n_layers=1, n_heads=2, d_model=8,
                         positions="rope"))
    with pytest.raises(ValueError, match="positions='rope'"):
        attention_maps(rope, torch.zeros(1, 4, dtype=torch.long))
