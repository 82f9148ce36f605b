"""Tests of the prediction targets of dlbook.diffusion: eps, x0 and v
(Salimans & Ho, 2022), and the wrapper that reads an x0- or v-network as a noise
predictor for the samplers."""

import pytest
import torch
from torch import nn

from dlbook.diffusion import (
    DiffusionConfig,
    MLPDenoiser,
    MLPDenoiserConfig,
    NoiseFromPrediction,
    NoiseSchedule,
    ddim_sample,
    diffusion_loss,
    prediction_target,
    q_sample,
)


class Oracle(nn.Module):
    """Returns the exact target for the x0 and noise it was built with."""

    def __init__(self, x0, noise, alpha_bar, prediction):
        super().__init__()
        self.x0, self.noise, self.alpha_bar = x0, noise, alpha_bar
        self.prediction = prediction
        self.config = MLPDenoiserConfig()

    def forward(self, x, t, y=None):
        ab = self.alpha_bar[t].view(-1, *([1] * (x.dim() - 1)))
        return prediction_target(self.x0, self.noise, ab, self.prediction)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_the_wrapper_recovers_the_noise_from_an_exact_prediction(prediction):
    s = NoiseSchedule.from_config(DiffusionConfig(n_steps=100, schedule="cosine"))
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(6, 3, generator=g, dtype=torch.float64)
    noise = torch.randn(6, 3, generator=g, dtype=torch.float64)
    ab = s.alpha_bar.double()
    t = torch.tensor([0, 10, 40, 70, 95, 99])
    x_t = q_sample(x0, t, noise, ab)
    oracle = Oracle(x0, noise, ab, prediction)
    eps = NoiseFromPrediction(oracle, ab, prediction)(x_t, t)
    torch.testing.assert_close(eps, noise, rtol=1e-9, atol=1e-9)


def test_v_target_and_its_identities():
    g = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(2, 5, 4, generator=g, dtype=torch.float64)
    ab = torch.rand(5, 1, generator=g, dtype=torch.float64)
    v = prediction_target(x0, noise, ab, "v")
    torch.testing.assert_close(v, ab.sqrt() * noise - (1 - ab).sqrt() * x0)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
    # x0 = sqrt(ab) x_t - sqrt(1 - ab) v, and the error weights of the table: an x0
    # error e gives a v error e / sqrt(1 - ab), an eps error e sqrt(ab / (1 - ab))
    torch.testing.assert_close(ab.sqrt() * x_t - (1 - ab).sqrt() * v, x0)
    e = torch.randn(5, 4, generator=g, dtype=torch.float64)
    v_hat = prediction_target(
        x0 + e, (x_t - ab.sqrt() * (x0 + e)) / (1 - ab).sqrt(), ab, "v"
    )
    torch.testing.assert_close(
        ((v - v_hat) ** 2).sum(1), (e**2).sum(1) / (1 - ab[:, 0])
    )


def test_training_an_x0_network_and_sampling_with_it():
    torch.manual_seed(0)
    s = NoiseSchedule.from_config(DiffusionConfig(n_steps=50))
    net = MLPDenoiser(MLPDenoiserConfig(hidden=16, n_blocks=1))
    loss = diffusion_loss(net, torch.randn(8, 2), s, prediction="x0")
    loss.backward()
    assert loss.item() > 0
    x = ddim_sample(NoiseFromPrediction(net, s.alpha_bar, "x0"), (4, 2), s, 5)
    assert x.shape == (4, 2) and torch.isfinite(x).all()
    with pytest.raises(ValueError, match="prediction must be one of"):
        diffusion_loss(net, torch.randn(8, 2), s, prediction="score")
    with pytest.raises(ValueError, match="prediction must be one of"):
        NoiseFromPrediction(net, s.alpha_bar, "score")
