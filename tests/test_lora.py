"""dlbook.lora: the low-rank update against plain PyTorch, merging, counts, errors."""

import copy

import pytest
import torch
from torch import nn

from dlbook.gpt import GPT, GPTConfig
from dlbook.lora import LoRALinear, add_lora, merge_lora, trainable_parameters


def _gpt():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=30, block_size=16, n_layers=2, n_heads=2, d_model=16,
                         dropout=0.0)).eval()


def test_lora_linear_is_w_plus_scaled_ba():
    torch.manual_seed(0)
    base = nn.Linear(6, 5).double()
    layer = LoRALinear(base, rank=2, alpha=3.0)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(4, 6, dtype=torch.float64)
    weight = base.weight + 1.5 * layer.lora_B @ layer.lora_A  # alpha / r = 1.5
    torch.testing.assert_close(layer(x), nn.functional.linear(x, weight, base.bias))
    torch.testing.assert_close(layer.merged()(x), layer(x))


def test_starts_equal_to_the_base_model_and_counts():
    model = _gpt()
    idx = torch.randint(0, 30, (2, 16), generator=torch.Generator().manual_seed(1))
    before = model(idx)
    add_lora(model, rank=4, alpha=8.0)
    torch.testing.assert_close(model(idx), before, atol=0, rtol=0)  # B = 0
    # q_proj and v_proj in each of 2 blocks: A (4, 16) + B (16, 4)
    assert trainable_parameters(model) == 2 * 2 * (4 * 16 + 16 * 4)


def test_training_moves_only_lora_and_merge_gives_the_same_function():
    model = add_lora(_gpt(), rank=2, alpha=4.0)
    frozen = {k: v.clone() for k, v in model.state_dict().items() if "lora" not in k}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    idx = torch.randint(0, 30, (4, 16), generator=torch.Generator().manual_seed(2))
    for _ in range(5):
        loss = nn.functional.cross_entropy(model(idx[:, :-1]).flatten(0, 1), idx[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for k, v in model.state_dict().items():
        if k in frozen:
            assert torch.equal(v, frozen[k]), k
    unmerged = model(idx)
    merged = merge_lora(copy.deepcopy(model))
    assert not any(isinstance(m, LoRALinear) for m in merged.modules())
    assert type(merged.blocks[0].self_attn.q_proj) is nn.Linear
    torch.testing.assert_close(merged(idx), unmerged, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(unmerged, _gpt()(idx), atol=1e-4)  # training changed the model


def test_errors():
    with pytest.raises(TypeError, match="nn.Linear"):
        LoRALinear(nn.Conv1d(2, 2, 1), rank=1, alpha=1.0)
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(nn.Linear(2, 2), rank=0, alpha=1.0)
    with pytest.raises(ValueError, match="no nn.Linear"):
        add_lora(_gpt(), targets=("nonexistent",))
