"""Chapter 9's arithmetic and its accumulation step against steps computed by hand.

``tests/test_scale.py`` checks that k micro-batches step like one big batch; a mistake made
the same way in both (clipping at the wrong norm) passes that check. Here the step is
compared with plain gradient descent written out, so the mutations of ``tools/mutate.py``
fail.
"""

import math

import pytest
import torch
from torch import nn

from dlbook import scale

pytestmark = pytest.mark.usefixtures("one_thread")


def _setup(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    g = torch.Generator().manual_seed(seed + 1)
    x, y = torch.randn(12, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (12,),
                                                                             generator=g)
    return model, x, y


def _loss(model, batch):
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


@pytest.mark.parametrize("k, clip", [(1, None), (3, None), (3, 0.05), (4, 1e-3), (2, 100.0)])
def test_accumulation_step_is_one_clipped_gradient_step_on_the_mean_loss(k, clip):
    model, x, y = _setup()
    start = [p.detach().clone() for p in model.parameters()]
    loss = _loss(model, (x, y))
    grads = torch.autograd.grad(loss, list(model.parameters()))
    norm = math.sqrt(sum(float((g**2).sum()) for g in grads))
    factor = 1.0 if clip is None else min(1.0, clip / (norm + 1e-6))  # clip_grad_norm_'s rule
    lr = 0.3
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    size = len(x) // k
    micro = [(x[i * size:(i + 1) * size], y[i * size:(i + 1) * size]) for i in range(k)]
    reported = scale.accumulation_step(model, optimizer, micro, _loss, grad_clip=clip)
    torch.testing.assert_close(reported, loss.detach())  # the mean loss over all examples
    for p, p0, g in zip(model.parameters(), start, grads):
        torch.testing.assert_close(p.detach(), p0 - lr * factor * g)


def test_arithmetic_against_hand_values():
    assert scale.training_flops(1e9, 20e9) == 6 * 1e9 * 20e9  # Chinchilla-style 20 tokens/param
    mixed = scale.memory_per_parameter("momentum", mixed_precision=True)
    assert mixed == {"weights": 2, "gradients": 2, "master weights": 4, "first moment": 4}
    assert scale.scaled_lr(0.2, 64, base_batch_size=256) == pytest.approx(0.05)


def test_warmup_cosine_against_its_formula():
    warm, total, low = 5, 25, 0.2
    for step in range(30):
        if step < warm:
            expected = (step + 1) / warm
        else:
            progress = min(1.0, (step - warm) / (total - warm))
            expected = low + (1 - low) * (1 + math.cos(math.pi * progress)) / 2
        assert scale.warmup_cosine(step, warm, total, low) == pytest.approx(expected)
