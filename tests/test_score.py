"""dlbook.score: the ideal noise predictor is -sqrt(1 - abar) times the score of the noised
data, computed here by autograd from the mixture density, and beats any other predictor."""

import math

import pytest
import torch

from dlbook.score import ideal_noise_prediction, posterior_mean_x0

ALPHA_BAR = torch.linspace(0.99, 0.01, 50, dtype=torch.float64)


def _log_q(x_t, t, data):
    ab = ALPHA_BAR[t]
    sq = ((x_t[:, None, :] - ab.sqrt() * data[None]) ** 2).sum(-1)  # (B, N)
    d = data.shape[1]
    log_normal = -sq / (2 * (1 - ab)) - 0.5 * d * torch.log(2 * math.pi * (1 - ab))
    return torch.logsumexp(log_normal, dim=1) - math.log(len(data))  # (B,)


@pytest.mark.parametrize("t", [0, 10, 30, 49])
def test_equals_scaled_score_from_autograd(t):
    gen = torch.Generator().manual_seed(t)
    data = torch.randn(7, 3, generator=gen, dtype=torch.float64)
    x_t = torch.randn(5, 3, generator=gen, dtype=torch.float64).requires_grad_()
    (score,) = torch.autograd.grad(_log_q(x_t, t, data).sum(), x_t)
    expected = -(1 - ALPHA_BAR[t]).sqrt() * score
    torch.testing.assert_close(ideal_noise_prediction(x_t.detach(), t, data, ALPHA_BAR), expected)


def test_is_the_best_predictor_and_checks_shapes():
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(20, 2, generator=gen, dtype=torch.float64)
    t = 20
    x0 = data[torch.randint(0, 20, (20000,), generator=gen)]
    eps = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    x_t = ALPHA_BAR[t].sqrt() * x0 + (1 - ALPHA_BAR[t]).sqrt() * eps
    ideal = ideal_noise_prediction(x_t, t, data, ALPHA_BAR)
    best = ((ideal - eps) ** 2).mean()
    assert best < ((0.9 * ideal - eps) ** 2).mean() and best < ((1.1 * ideal - eps) ** 2).mean()
    with pytest.raises(ValueError, match="x_t"):
        posterior_mean_x0(torch.zeros(3, 2), 0, torch.zeros(4, 3), ALPHA_BAR)
    with pytest.raises(ValueError, match="t must be"):
        posterior_mean_x0(torch.zeros(3, 2), 50, torch.zeros(4, 2), ALPHA_BAR)
