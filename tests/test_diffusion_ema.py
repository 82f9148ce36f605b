"""The EMA of a denoiser's weights: the update rule, and one update per training step."""

import pytest
import torch

from dlbook.diffusion import (
    DenoiserTrainConfig,
    DiffusionConfig,
    MLPDenoiser,
    MLPDenoiserConfig,
    NoiseSchedule,
    make_ema,
    train_denoiser,
    with_ema,
)
from dlbook.train import TrainConfig


def test_ema_follows_the_update_rule():
    net = torch.nn.Linear(3, 2)
    ema = make_ema(net, decay=0.9)
    expected = [p.detach().clone() for p in net.parameters()]
    batches = with_ema(iter(range(4)), net, ema)
    for step, _ in enumerate(batches):
        if step == 0:  # the first update copies the weights
            expected = [p.detach().clone() for p in net.parameters()]
        else:
            expected = [0.9 * e + 0.1 * p.detach() for e, p in zip(expected, net.parameters())]
        with torch.no_grad():
            for p in net.parameters():
                p.add_(1.0)  # a "training step"
    for e, p in zip(expected, ema.module.parameters()):
        torch.testing.assert_close(p, e)


def test_train_denoiser_updates_once_per_step_and_after_the_last():
    torch.manual_seed(0)
    model = MLPDenoiser(MLPDenoiserConfig(hidden=16, n_blocks=1))
    ema = make_ema(model, decay=0.5)
    config = DenoiserTrainConfig(training=TrainConfig(steps=5, batch_size=8, lr=1e-2,
                                                      progress=False))
    schedule = NoiseSchedule.from_config(DiffusionConfig(n_steps=50))
    train_denoiser(model, torch.randn(32, 2), schedule, config, ema=ema)
    assert int(ema.n_averaged) == 6  # before each of 5 steps, and after the last
    assert not ema.training


def test_bad_decay():
    with pytest.raises(ValueError, match="decay"):
        make_ema(torch.nn.Linear(2, 2), decay=1.0)
