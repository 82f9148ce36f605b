"""The optimizers' update rules written out in plain Python for a few steps, and Adam against
torch.optim.Adam where eps matters (tiny gradients), so the mutations of ``tools/mutate.py``
fail."""

import math

import pytest
import torch

from dlbook.optim import SGD, Adam, AdamW

F64 = torch.float64
GRADS = [0.5, -1.5, 2.0, 0.25, -0.75]  # the gradient fed at each step (one scalar parameter)


def run(optimizer_cls, theta0=1.0, grads=GRADS, **kwargs):
    p = torch.tensor([theta0], dtype=F64)
    opt = optimizer_cls([p], **kwargs)
    path = []
    for g in grads:
        opt.step([torch.tensor([g], dtype=F64)])
        path.append(p.item())
    return path


def test_adam_by_hand():
    lr, b1, b2, eps = 0.1, 0.8, 0.95, 1e-3
    theta, m, v, expected = 1.0, 0.0, 0.0, []
    for t, g in enumerate(GRADS, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        theta -= lr * m_hat / (math.sqrt(v_hat) + eps)
        expected.append(theta)
    assert run(Adam, lr=lr, betas=(b1, b2), eps=eps) == pytest.approx(expected, rel=1e-12)


def test_adamw_by_hand():
    lr, b1, b2, eps, wd = 0.05, 0.9, 0.99, 1e-8, 0.3
    theta, m, v, expected = 2.0, 0.0, 0.0, []
    for t, g in enumerate(GRADS, start=1):
        theta *= 1 - lr * wd  # decoupled: the decay is not rescaled by Adam's step size
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        theta -= lr * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
        expected.append(theta)
    got = run(AdamW, theta0=2.0, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_by_hand(nesterov):
    lr, mu, wd = 0.1, 0.7, 0.05
    theta, buf, expected = 1.0, 0.0, []
    for g in GRADS:
        g = g + wd * theta
        buf = mu * buf + g
        theta -= lr * (g + mu * buf if nesterov else buf)
        expected.append(theta)
    got = run(SGD, lr=lr, momentum=mu, weight_decay=wd, nesterov=nesterov)
    assert got == pytest.approx(expected, rel=1e-12)


def test_adam_with_tiny_gradients_matches_torch():
    """Gradients of size 1e-8 are the size of eps: where eps enters the denominator shows."""
    gen = torch.Generator().manual_seed(0)
    ours_p = torch.randn(6, generator=gen, dtype=F64)
    theirs_p = ours_p.clone().requires_grad_()
    ours = Adam([ours_p], lr=0.01, eps=1e-8)
    theirs = torch.optim.Adam([theirs_p], lr=0.01, eps=1e-8)
    for _ in range(6):
        g = 1e-8 * torch.randn(6, generator=gen, dtype=F64)
        ours.step([g])
        theirs_p.grad = g.clone()
        theirs.step()
        torch.testing.assert_close(ours_p, theirs_p.detach(), rtol=1e-12, atol=1e-14)
