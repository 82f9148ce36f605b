"""Tests of dlbook.vae: the Gaussian KL against torch.distributions, the decoder likelihood
against Categorical, the importance-weighted bound against log p(x) by quadrature, and the two
gradient estimators against the exact gradient."""

import math

import pytest
import torch
from torch.distributions import Categorical, Normal, kl_divergence

from dlbook.train import TrainConfig
from dlbook.vae import (
    VAE,
    VAEConfig,
    active_units,
    elbo,
    gaussian_kl,
    gradient_estimates,
    iwae_bound,
    log_likelihood,
    reparameterize,
    to_levels,
    train_vae,
)


def test_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(5, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(5, 3, generator=g, dtype=torch.float64)
    q = Normal(mu, (0.5 * logvar).exp())
    p = Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = kl_divergence(q, p).sum(dim=-1)
    torch.testing.assert_close(gaussian_kl(mu, logvar), expected, atol=1e-10, rtol=1e-10)


def test_reparameterize_gradients_match_the_formula():
    mu = torch.tensor([0.3, -1.0], dtype=torch.float64, requires_grad=True)
    logvar = torch.tensor([0.2, -0.5], dtype=torch.float64, requires_grad=True)
    eps = torch.tensor([1.5, -0.7], dtype=torch.float64)
    reparameterize(mu, logvar, eps).sum().backward()
    torch.testing.assert_close(mu.grad, torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(logvar.grad, 0.5 * (0.5 * logvar.detach()).exp() * eps)


def test_log_likelihood_matches_categorical():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 6, 17, generator=g)
    levels = torch.randint(0, 17, (4, 6), generator=g)
    expected = Categorical(logits=logits).log_prob(levels).sum(dim=1)
    torch.testing.assert_close(log_likelihood(logits, levels), expected, atol=1e-5, rtol=1e-5)


def _tiny_vae(seed=0):
    torch.manual_seed(seed)
    model = VAE(VAEConfig(n_pixels=4, n_levels=3, latent_dim=1, hidden=8)).double().eval()
    return model


def test_iwae_approaches_log_px_by_quadrature_and_elbo_lies_below():
    model = _tiny_vae()
    x = torch.tensor([[0.0, 0.5, 1.0, 0.5], [1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    z = torch.linspace(-10, 10, 8001, dtype=torch.float64).unsqueeze(1)  # (Z, 1)
    with torch.no_grad():
        log_px_z = torch.stack([log_likelihood(model.decode(z), to_levels(xi, 3).expand(len(z), 4))
                                for xi in x])  # (2, Z)
        log_joint = log_px_z + Normal(0.0, 1.0).log_prob(z.squeeze(1))
        log_px = torch.logsumexp(log_joint, dim=1) + math.log(z[1, 0] - z[0, 0])
        g = torch.Generator().manual_seed(0)
        bound = iwae_bound(model, x, k=20000, generator=g)
        elbos = torch.stack([elbo(model, x)["elbo"] for _ in range(2000)]).mean(0)
    torch.testing.assert_close(bound, log_px, atol=0.02, rtol=0)
    assert (elbos < log_px).all()


def test_gradient_estimators_are_unbiased_and_reparameterisation_has_less_variance():
    g = torch.Generator().manual_seed(0)
    mu, sigma, n = 0.7, 1.3, 200_000
    est = gradient_estimates(lambda z: z**2, mu, sigma, n, g)  # d/dmu E[z^2] = 2 mu
    for values in est.values():
        assert abs(values.mean() - 2 * mu) < 5 * values.std() / n**0.5
    assert est["reparameterised"].var() < est["score_function"].var() / 3


def test_training_raises_the_elbo_and_collapsed_encoder_has_no_active_units():
    torch.manual_seed(0)
    x = torch.rand(32, 64).round()
    model = VAE(VAEConfig(latent_dim=4, hidden=32))
    before = elbo(model, x)["elbo"].mean().item()
    train_vae(model, x, TrainConfig(steps=100, batch_size=32, lr=3e-3, progress=False))
    with torch.no_grad():
        after = elbo(model, x)["elbo"].mean().item()
    assert after > before + 10
    with torch.no_grad():
        model.encoder[-1].weight.zero_()
    assert active_units(model, x) == 0


def test_conditional_vae_needs_labels_and_shapes():
    model = VAE(VAEConfig(n_classes=10, latent_dim=3))
    y = torch.arange(5)
    assert model.sample(5, y).shape == (5, 64)
    with pytest.raises(ValueError, match="labels"):
        model.encode(torch.rand(5, 64))
    with pytest.raises(ValueError, match="unconditional"):
        VAE(VAEConfig()).encode(torch.rand(5, 64), y)


def test_bad_inputs():
    with pytest.raises(ValueError, match="latent_dim"):
        VAEConfig(latent_dim=0)
    with pytest.raises(ValueError, match="beta"):
        VAEConfig(beta=-1.0)
    with pytest.raises(ValueError, match="pixels"):
        to_levels(torch.tensor([1.5]))
    with pytest.raises(ValueError, match="noise"):
        reparameterize(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="sigma"):
        gradient_estimates(lambda z: z, 0.0, 0.0, 10, torch.Generator())
    with pytest.raises(TypeError, match="VAEConfig"):
        VAE("big")
