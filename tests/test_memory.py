"""dlbook.memory: a checkpointed GPT computes the same loss and gradients with less stored."""

import pytest
import torch
from torch import nn

from dlbook import scale
from dlbook.gpt import GPT, GPTConfig
from dlbook.memory import CheckpointedGPT


def _loss(model, batch):
    x, y = batch
    return nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_same_loss_and_gradients_as_the_plain_gpt(dropout):
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=20, block_size=16, n_layers=3, n_heads=2, d_model=16,
                        dropout=dropout)).double()
    batch = tuple(torch.randint(0, 20, (4, 16), generator=torch.Generator().manual_seed(1))
                  for _ in range(2))
    grads = []
    for model in (gpt, CheckpointedGPT(gpt)):
        gpt.zero_grad()
        torch.manual_seed(5)  # the same dropout masks in both runs
        loss = _loss(model, batch)
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in gpt.parameters()]))
    torch.testing.assert_close(grads[1][0], grads[0][0])
    for a, b in zip(grads[0][1], grads[1][1], strict=True):
        torch.testing.assert_close(a, b)


def test_stores_less_and_errors():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=20, block_size=32, n_layers=4, n_heads=2, d_model=32,
                        dropout=0.0))
    batch = tuple(torch.randint(0, 20, (8, 32)) for _ in range(2))
    plain = scale.saved_activation_bytes(gpt, batch, _loss)
    kept = scale.saved_activation_bytes(CheckpointedGPT(gpt), batch, _loss)
    assert kept < 0.5 * plain, (kept, plain)
    with pytest.raises(TypeError, match="GPT"):
        CheckpointedGPT(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="block_size"):
        CheckpointedGPT(gpt)(torch.zeros(1, 33, dtype=torch.long))


def test_rotary_models_are_refused_with_a_clear_error():
    rope = GPT(GPTConfig(vocab_size=7, block_size=8, n_layers=1, n_heads=2, d_model=8,
                         positions="rope"))
    with pytest.raises(ValueError, match="positions='rope'"):
        CheckpointedGPT(rope)
