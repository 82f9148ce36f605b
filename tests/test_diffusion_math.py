"""The forward process, the DDPM and DDIM steps and the loss against independent closed forms.

``tests/test_diffusion.py`` checks that the samplers recover a distribution; a wrong variance
or an off-by-one alpha_bar can still pass that within its tolerance. These tests replay the
samplers' random draws and check every step exactly, with the posterior computed by
conditioning two Gaussians rather than from the coefficients the code uses.
"""

import math

import pytest
import torch
from torch import nn

from dlbook.diffusion import (
    DiffusionConfig,
    MLPDenoiserConfig,
    NoiseSchedule,
    ddim_steps,
    ddpm_steps,
    diffusion_loss,
    q_sample,
    q_step,
    sliced_wasserstein,
    timestep_embedding,
)

pytestmark = pytest.mark.usefixtures("one_thread")


class LinearDenoiser(nn.Module):
    """A fixed, deterministic eps-predictor that depends on both x and t."""

    def __init__(self):
        super().__init__()
        self.config = MLPDenoiserConfig()  # n_classes None: unconditional
        self.scale = nn.Parameter(torch.tensor(0.4))

    def forward(self, x, t, y=None):
        return self.scale * x + 0.01 * t.view(-1, *[1] * (x.dim() - 1)).to(x.dtype) - 0.3


def schedule(n_steps=40, kind="linear"):
    return NoiseSchedule.from_config(DiffusionConfig(n_steps=n_steps, schedule=kind))


def posterior(x_t, x0, ab, ab_prev, beta):
    """q(x_{t-1} | x_t, x_0) by Bayes: the prior N(sqrt(ab_prev) x0, 1 - ab_prev) on x_{t-1}
    times the likelihood N(x_t; sqrt(1 - beta) x_{t-1}, beta). Returns (mean, variance)."""
    alpha = 1 - beta
    precision = 1 / (1 - ab_prev) + alpha / beta
    mean = (math.sqrt(ab_prev) * x0 / (1 - ab_prev) + math.sqrt(alpha) * x_t / beta) / precision
    return mean, 1 / precision


def x0_estimate(x, eps, ab):
    """Solve x = sqrt(ab) x0 + sqrt(1 - ab) eps for x0."""
    return (x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)


def test_q_step_and_q_sample_given_the_noise():
    s = schedule(40)
    x, noise = torch.randn(4, 3), torch.randn(4, 3)
    t = torch.tensor([0, 3, 17, 39])
    for i, step in enumerate(t.tolist()):
        beta, ab = s.betas[step].item(), s.alpha_bar[step].item()
        torch.testing.assert_close(q_step(x, t, noise, s.betas)[i],
                                   math.sqrt(1 - beta) * x[i] + math.sqrt(beta) * noise[i])
        torch.testing.assert_close(q_sample(x, t, noise, s.alpha_bar)[i],
                                   math.sqrt(ab) * x[i] + math.sqrt(1 - ab) * noise[i])


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_every_ddpm_step_draws_from_the_posterior(kind):
    """Replaying the generator gives the z of each step: x_{t-1} = mean + sqrt(var) z."""
    s, model, shape = schedule(40, kind), LinearDenoiser(), (5, 3)
    path = list(ddpm_steps(model, shape, s, generator=torch.Generator().manual_seed(0)))
    replay = torch.Generator().manual_seed(0)
    assert torch.equal(path[0][1], torch.randn(shape, generator=replay))  # x_T
    ab_all, betas = s.alpha_bar.double().tolist(), s.betas.double().tolist()
    for (t, x), (t_prev, x_prev) in zip(path, path[1:]):
        i = t - 1  # the code's index of the step that leads from x to x_prev
        assert t_prev == i
        steps = torch.full((shape[0],), i, dtype=torch.int64)
        with torch.no_grad():
            eps = model(x, steps).double()
        x0 = x0_estimate(x.double(), eps, ab_all[i])
        if i == 0:  # the last step returns the estimate of x_0, without noise
            torch.testing.assert_close(x_prev.double(), x0, rtol=1e-4, atol=1e-4)
            continue
        mean, var = posterior(x.double(), x0, ab_all[i], ab_all[i - 1], betas[i])
        z = torch.randn(shape, generator=replay).double()
        torch.testing.assert_close(x_prev.double(), mean + math.sqrt(var) * z,
                                   rtol=1e-4, atol=1e-4)


def test_ddim_with_eta_one_on_every_step_is_ddpm():
    """Song et al. (2021): with eta = 1 and all T steps, sigma^2 is DDPM's posterior variance
    and the DDIM update is DDPM's posterior mean, so the same draws give the same samples."""
    s, model, shape = schedule(30, "cosine"), LinearDenoiser(), (6, 2)
    ddpm = list(ddpm_steps(model, shape, s, generator=torch.Generator().manual_seed(1)))
    ddim = list(ddim_steps(model, shape, s, 30, eta=1.0,
                           generator=torch.Generator().manual_seed(1)))
    assert [t for t, _ in ddpm] == [t for t, _ in ddim]
    for (_, a), (_, b) in zip(ddpm, ddim):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("eta, clip", [(0.0, None), (0.0, 0.5), (0.6, None), (0.6, 0.5)])
def test_every_ddim_step_follows_song_et_al_eq_12(eta, clip):
    """x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - sigma^2) eps + sigma z, where x0 is
    clipped and eps then recomputed so that x = sqrt(ab) x0 + sqrt(1 - ab) eps still holds."""
    s, model, shape, n_steps = schedule(40), LinearDenoiser(), (5, 2), 8
    gen, replay = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    path = list(ddim_steps(model, shape, s, n_steps, eta=eta, clip=clip, generator=gen))
    torch.randn(shape, generator=replay)  # x_T
    ab_all = s.alpha_bar.double().tolist()
    times = [round(40 - 1 - k * (40 - 1) / (n_steps - 1)) for k in range(n_steps)]
    assert [t for t, _ in path] == [40] + [t + 1 for t in times[1:]] + [0]
    for k, ((_, x), (_, x_prev)) in enumerate(zip(path, path[1:])):
        i = times[k]
        prev = times[k + 1] if k + 1 < n_steps else -1
        ab, ab_prev = ab_all[i], (ab_all[prev] if prev >= 0 else 1.0)
        with torch.no_grad():
            eps = model(x, torch.full((shape[0],), i, dtype=torch.int64)).double()
        x0 = x0_estimate(x.double(), eps, ab)
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
            eps = (x.double() - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
        # sigma^2 is eta^2 times the variance of q(x_prev | x_t, x_0) for a jump of any size
        sigma2 = eta**2 * (1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)
        expected = math.sqrt(ab_prev) * x0 + math.sqrt(max(1 - ab_prev - sigma2, 0.0)) * eps
        if eta > 0 and prev >= 0:
            expected = expected + math.sqrt(sigma2) * torch.randn(shape, generator=replay).double()
        torch.testing.assert_close(x_prev.double(), expected, rtol=1e-4, atol=1e-4)
    assert torch.equal(gen.get_state(), replay.get_state())  # no draw unaccounted for


def test_diffusion_loss_is_the_noise_prediction_error():
    """Replaying the generator gives the t and the noise the loss drew."""
    s, model = schedule(50), LinearDenoiser()
    x0 = torch.randn(16, 3)
    loss = diffusion_loss(model, x0, s, generator=torch.Generator().manual_seed(3))
    replay = torch.Generator().manual_seed(3)
    t = torch.randint(0, 50, (16,), generator=replay)
    noise = torch.randn(x0.shape, generator=replay)
    ab = s.alpha_bar[t][:, None]
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
    expected = ((model(x_t, t) - noise) ** 2).mean()
    torch.testing.assert_close(loss, expected)


def test_timestep_embedding_follows_its_formula():
    dim = 8
    t = torch.tensor([0, 1, 7, 123])
    e = timestep_embedding(t, dim)
    for row, step in enumerate(t.tolist()):
        for k in range(dim // 2):
            w = 10000 ** (-k / (dim // 2))
            assert e[row, k].item() == pytest.approx(math.sin(step * w), abs=1e-5)
            assert e[row, dim // 2 + k].item() == pytest.approx(math.cos(step * w), abs=1e-5)


def test_sliced_wasserstein_of_a_shift_in_one_dimension_is_the_shift():
    """In one dimension every projection is +-1, and W2 between a cloud and its shift by c is c."""
    a = torch.randn(500, 1, generator=torch.Generator().manual_seed(0))
    assert sliced_wasserstein(a, a + 3.0, n_projections=8) == pytest.approx(3.0, rel=1e-9)
    assert sliced_wasserstein(a, 2 * a, n_projections=8) == pytest.approx(
        a.double().pow(2).mean().sqrt().item(), rel=1e-9)
