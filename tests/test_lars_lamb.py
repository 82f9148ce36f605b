"""dlbook.optim's LARS and LAMB against the update rules as the papers state them
(You, Gitman and Ginsburg, 2017, algorithm 1; You et al., 2020, algorithm 2), written
out independently here in float64, over several steps on layers of very different
scales, and the layer-wise step sizes the rules promise."""

import math

import pytest
import torch

from dlbook.optim import LAMB, LARS, trust_ratio


def _layers():
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(8, 5, dtype=torch.float64, generator=gen) * 3.0,
            torch.randn(5, dtype=torch.float64, generator=gen) * 0.01,
            torch.zeros(4, dtype=torch.float64)]  # a bias at zero: ratio 1


def _grads(step):
    gen = torch.Generator().manual_seed(100 + step)
    return [torch.randn(8, 5, dtype=torch.float64, generator=gen) * 0.1,
            torch.randn(5, dtype=torch.float64, generator=gen) * 10.0,
            torch.randn(4, dtype=torch.float64, generator=gen)]


def _norm(x):
    return math.sqrt(sum(v * v for v in x.flatten().tolist()))


def test_lars_follows_algorithm_1():
    lr, mu, beta, eta = 0.5, 0.9, 1e-4, 0.01
    ours = [p.clone() for p in _layers()]
    opt = LARS(ours, lr=lr, momentum=mu, weight_decay=beta, trust_coefficient=eta)
    ref, vel = [p.clone() for p in _layers()], [None] * 3
    for step in range(5):
        grads = _grads(step)
        opt.step(grads)
        for i, (w, g) in enumerate(zip(ref, grads)):
            wn, gn = _norm(w), _norm(g)
            local = eta * wn / (gn + beta * wn) if wn > 0 and gn > 0 else eta
            upd = lr * local * (g + beta * w)
            vel[i] = upd if vel[i] is None else mu * vel[i] + upd
            ref[i] = w - vel[i]
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


def test_lamb_follows_algorithm_2():
    lr, b1, b2, eps, lam = 0.01, 0.9, 0.999, 1e-6, 0.01
    ours = [p.clone() for p in _layers()]
    opt = LAMB(ours, lr=lr, betas=(b1, b2), eps=eps, weight_decay=lam)
    ref = [p.clone() for p in _layers()]
    m = [torch.zeros_like(p) for p in ref]
    v = [torch.zeros_like(p) for p in ref]
    for t in range(1, 6):
        grads = _grads(t)
        opt.step(grads)
        for i, g in enumerate(grads):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g**2
            r = (m[i] / (1 - b1**t)) / ((v[i] / (1 - b2**t)).sqrt() + eps) + lam * ref[i]
            wn, rn = _norm(ref[i]), _norm(r)
            ratio = wn / rn if wn > 0 and rn > 0 else 1.0
            ref[i] = ref[i] - lr * ratio * r
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("make", [
    lambda ps: LAMB(ps, lr=0.01, weight_decay=0.0),
    lambda ps: LARS(ps, lr=1.0, momentum=0.0, trust_coefficient=0.01),
])
def test_each_layer_moves_by_the_same_fraction_of_its_norm(make):
    params = _layers()[:2]  # norms 3 and 0.01 apart by 10^3, gradients the other way
    before = [p.clone() for p in params]
    make(params).step(_grads(0)[:2])
    fractions = [(p - b).norm() / b.norm() for p, b in zip(params, before)]
    torch.testing.assert_close(fractions[0], torch.tensor(0.01, dtype=torch.float64))
    torch.testing.assert_close(fractions[1], torch.tensor(0.01, dtype=torch.float64))


def test_trust_ratio_and_errors():
    assert trust_ratio(torch.tensor(2.0), torch.tensor(4.0)).item() == 0.5
    assert trust_ratio(torch.tensor(0.0), torch.tensor(4.0)).item() == 1.0
    assert trust_ratio(torch.tensor(2.0), torch.tensor(0.0)).item() == 1.0
    with pytest.raises(ValueError, match="momentum"):
        LARS([torch.zeros(2)], momentum=1.0)
    with pytest.raises(ValueError, match="trust_coefficient"):
        LARS([torch.zeros(2)], trust_coefficient=0.0)
