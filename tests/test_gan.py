"""Tests of dlbook.gan: the losses and their gradients against the formulas, the gradient
penalty on a linear critic, shapes, and the mode counter."""

import pytest
import torch
import torch.nn.functional as F

from dlbook.gan import (
    DCGANConfig,
    DCGANDiscriminator,
    DCGANGenerator,
    GANTrainConfig,
    MLPDiscriminator,
    MLPGenerator,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    modes_covered,
    ring_centers,
    ring_gan,
    ring_of_gaussians,
    train_gan,
)


def test_discriminator_loss_is_the_game_value():
    r, f = torch.randn(6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    expected = -(torch.sigmoid(r).log().mean() + (1 - torch.sigmoid(f)).log().mean())
    torch.testing.assert_close(discriminator_loss(r, f), expected)
    torch.testing.assert_close(discriminator_loss(r, f), F.binary_cross_entropy(
        torch.sigmoid(r), torch.ones(6, dtype=torch.float64)) + F.binary_cross_entropy(
        torch.sigmoid(f), torch.zeros(6, dtype=torch.float64)))


@pytest.mark.parametrize("kind", ["minimax", "non_saturating"])
def test_generator_loss_gradients(kind):
    logits = torch.linspace(-6, 3, 7, dtype=torch.float64, requires_grad=True)
    generator_loss(logits, kind).backward()
    d = torch.sigmoid(logits.detach())
    # d/dl log(1 - sigmoid(l)) = -sigmoid(l);  d/dl -log sigmoid(l) = -(1 - sigmoid(l))
    expected = -d if kind == "minimax" else -(1 - d)
    torch.testing.assert_close(logits.grad, expected / 7)
    values = -(1 - d).log().neg() if kind == "minimax" else -d.log()
    torch.testing.assert_close(generator_loss(logits.detach(), kind), values.mean())


def test_gradient_penalty_of_a_linear_critic():
    w = torch.tensor([3.0, 4.0], dtype=torch.float64)  # ||w|| = 5 everywhere

    def critic(x, y=None):
        return x @ w

    real, fake = torch.randn(8, 2, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64)
    torch.testing.assert_close(gradient_penalty(critic, real, fake),
                               torch.tensor(16.0, dtype=torch.float64))


def test_dcgan_shapes_and_conditioning():
    c = DCGANConfig(latent_dim=8, width=8, n_classes=10)
    G, D = DCGANGenerator(c), DCGANDiscriminator(c)
    y = torch.arange(4)
    x = G(torch.randn(4, 8), y)
    assert x.shape == (4, 1, 8, 8) and x.abs().max() <= 1
    assert D(x, y).shape == (4,)
    with pytest.raises(ValueError, match="labels"):
        G(torch.randn(4, 8))
    with pytest.raises(ValueError, match="unconditional"):
        DCGANGenerator(DCGANConfig(n_classes=0))(torch.randn(4, 32), y)


def test_modes_covered_counts_real_and_collapsed_samples():
    g = torch.Generator().manual_seed(0)
    real = ring_of_gaussians(4000, g, std=0.05)
    assert modes_covered(real, ring_centers(), radius=0.15)["covered"] == 8
    one = ring_centers()[3] + 0.01 * torch.randn(500, 2, generator=g)
    result = modes_covered(one, ring_centers(), radius=0.15)
    assert result["covered"] == 1 and result["good_fraction"] == 1.0


def test_packed_discriminator_and_short_training_run():
    torch.manual_seed(0)
    G, D = MLPGenerator(hidden=16), MLPDiscriminator(hidden=16, pack=2)
    assert D(torch.randn(6, 2)).shape == (3,)
    with pytest.raises(ValueError, match="pack"):
        D(torch.randn(5, 2))
    history = train_gan(G, D, lambda n, g: (ring_of_gaussians(n, g), None),
                        GANTrainConfig(steps=20, batch_size=32))
    assert len(history.d_loss) == 20 and all(0 <= p <= 1 for p in history.d_fake)


def test_the_discriminator_can_have_its_own_learning_rate():
    """lr_d sets D's Adam step alone: Adam's first step moves every weight by about lr,
    so D barely moves at lr_d = 1e-8 while G moves by about lr."""
    torch.manual_seed(0)
    G, D = MLPGenerator(hidden=8), MLPDiscriminator(hidden=8)
    g0, d0 = (torch.cat([p.detach().flatten().clone() for p in m.parameters()])
              for m in (G, D))
    train_gan(G, D, lambda n, g: (ring_of_gaussians(n, g), None),
              GANTrainConfig(steps=1, batch_size=16, lr=1e-2, lr_d=1e-8))
    g1, d1 = (torch.cat([p.detach().flatten() for p in m.parameters()]) for m in (G, D))
    assert (d1 - d0).abs().max() < 1e-7
    assert (g1 - g0).abs().max() > 5e-3


def test_ring_gan_returns_samples_and_their_mode_count():
    short = GANTrainConfig(steps=3, batch_size=16, lr=1e-3, lr_d=1e-4)
    points, cover = ring_gan(batch_std=True, config=short, n_samples=50)
    assert points.shape == (50, 2) and set(cover) == {"covered", "good_fraction"}
    again, _ = ring_gan(batch_std=True, config=short, n_samples=50)
    torch.testing.assert_close(points, again)  # seeded: the same run twice


def test_bad_inputs():
    with pytest.raises(ValueError, match="lr_d"):
        GANTrainConfig(lr_d=0.0)
    with pytest.raises(ValueError, match="kind"):
        generator_loss(torch.zeros(2), "hinge")
    with pytest.raises(ValueError, match="loss"):
        GANTrainConfig(loss="hinge")
    with pytest.raises(ValueError, match="n_critic"):
        GANTrainConfig(n_critic=0)
    with pytest.raises(TypeError, match="GANTrainConfig"):
        train_gan(MLPGenerator(), MLPDiscriminator(), lambda n, g: None, {"steps": 1})
