"""dlbook.flow_matching against closed forms: the loss against the formula with the same
random draws, the target against the exact velocity field of a point mass (where the
loss is zero and Euler steps land on the point), and a short training run on a Gaussian."""

import pytest
import torch

from dlbook.diffusion import DenoiserTrainConfig, MLPDenoiser, MLPDenoiserConfig
from dlbook.flow_matching import (
    TIME_SCALE,
    flow_matching_loss,
    flow_path,
    flow_sample,
    train_flow_matching,
)
from dlbook.train import Schedule, TrainConfig


class PointMassField(torch.nn.Module):
    """The exact velocity field of flow matching when all the data sit at c:
    v(x, t) = (c - x) / (1 - t), the velocity of the line through x that ends at c."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t_scaled):
        t = (t_scaled / TIME_SCALE)[:, None]
        return (self.c - x) / (1 - t)


def test_path_ends():
    x0, x1 = torch.randn(5, 3), torch.randn(5, 3)
    torch.testing.assert_close(flow_path(x0, x1, torch.zeros(5)), x0)
    torch.testing.assert_close(flow_path(x0, x1, torch.ones(5)), x1)
    mid = flow_path(x0, x1, torch.full((5,), 0.25))
    torch.testing.assert_close(mid, 0.75 * x0 + 0.25 * x1)
    with pytest.raises(ValueError, match="need x0, x1"):
        flow_path(x0, x1, torch.zeros(4))


def test_loss_is_the_formula_with_the_same_draws():
    torch.manual_seed(0)
    model = MLPDenoiser(MLPDenoiserConfig(hidden=16, n_blocks=1))
    x1 = torch.randn(64, 2)
    got = flow_matching_loss(model, x1, generator=torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)
    x0 = torch.randn(x1.shape, generator=gen)
    t = torch.rand(64, generator=gen)
    x_t = (1 - t[:, None]) * x0 + t[:, None] * x1
    expected = ((model(x_t, t * TIME_SCALE) - (x1 - x0)) ** 2).mean()
    torch.testing.assert_close(got, expected, atol=0, rtol=0)


def test_point_mass_field_has_zero_loss_and_euler_lands_on_the_point():
    c = torch.tensor([1.5, -0.5])
    field = PointMassField(c)
    loss = flow_matching_loss(field, c.expand(256, 2).clone(),
                              generator=torch.Generator().manual_seed(0))
    assert loss.item() < 1e-10
    # straight lines: any number of Euler steps is exact (the last step has t < 1)
    for n in (1, 3, 10):
        x = flow_sample(field, (100, 2), n, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(x, c.expand(100, 2), atol=1e-5, rtol=0)


def test_training_learns_a_gaussian():
    torch.manual_seed(0)
    model = MLPDenoiser(MLPDenoiserConfig(data_dim=1, hidden=32, n_blocks=2))
    data = 3.0 + 0.5 * torch.randn(4000, 1, generator=torch.Generator().manual_seed(0))
    config = DenoiserTrainConfig(training=TrainConfig(
        steps=400, batch_size=256, lr=5e-3, optimizer="adamw",
        schedule=Schedule(min_ratio=0.0), progress=False))
    history = train_flow_matching(model, data, config)
    assert history.step_loss[-1] < history.step_loss[0]
    x = flow_sample(model, (4000, 1), 20, generator=torch.Generator().manual_seed(2))
    assert abs(x.mean().item() - 3.0) < 0.1 and abs(x.std().item() - 0.5) < 0.1, (
        x.mean(), x.std())
