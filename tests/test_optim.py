"""dlbook.optim: SGD, Adam and AdamW step for step against torch.optim (float64)."""

import pytest
import torch

from dlbook.optim import SGD, Adam, AdamW

F64 = torch.float64
STEPS = 60


def loss_and_grads(params, step):
    """A non-quadratic loss whose gradient depends on the parameters and the step, computed by
    autograd on a copy, so the two optimizers can be fed the gradient of their own parameters."""
    copies = [p.detach().clone().requires_grad_() for p in params]
    w, b = copies
    g = torch.Generator().manual_seed(step)
    x = torch.randn(8, 3, generator=g, dtype=F64)
    y = torch.randn(8, 2, generator=g, dtype=F64)
    loss = ((torch.tanh(x @ w.T + b) - y) ** 2).mean() + 0.1 * (w**4).sum()
    loss.backward()
    return [c.grad for c in copies]


def start():
    g = torch.Generator().manual_seed(123)
    return [torch.randn(2, 3, generator=g, dtype=F64), torch.randn(2, generator=g, dtype=F64)]


def run_both(ours_cls, theirs_cls, **kwargs):
    ours_params = start()
    theirs_params = [p.clone().requires_grad_() for p in start()]
    ours = ours_cls(ours_params, **kwargs)
    theirs = theirs_cls(theirs_params, **kwargs)
    for step in range(STEPS):
        ours.step(loss_and_grads(ours_params, step))
        for p, grad in zip(theirs_params, loss_and_grads(theirs_params, step)):
            p.grad = grad
        theirs.step()
        for a, b in zip(ours_params, theirs_params):
            torch.testing.assert_close(a, b.detach(), rtol=1e-11, atol=1e-12,
                                       msg=lambda m, s=step: f"step {s}: {m}")
    moved = sum((a - b).abs().sum() for a, b in zip(ours_params, start()))
    assert moved > 1e-3  # the parameters really travelled


@pytest.mark.parametrize("kwargs", [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, weight_decay=0.01),
    dict(lr=0.05, momentum=0.5, weight_decay=0.1, nesterov=True),
])
def test_sgd_matches_torch_step_for_step(kwargs):
    run_both(SGD, torch.optim.SGD, **kwargs)


@pytest.mark.parametrize("kwargs", [
    dict(lr=0.01),
    dict(lr=0.03, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=0.01, weight_decay=0.1),
])
def test_adam_matches_torch_step_for_step(kwargs):
    run_both(Adam, torch.optim.Adam, **kwargs)


@pytest.mark.parametrize("kwargs", [dict(lr=0.01), dict(lr=0.02, weight_decay=0.5)])
def test_adamw_matches_torch_step_for_step(kwargs):
    run_both(AdamW, torch.optim.AdamW, **kwargs)


def test_adam_and_adamw_differ_when_decaying():
    a, b = start(), start()
    adam, adamw = Adam(a, lr=0.01, weight_decay=0.5), AdamW(b, lr=0.01, weight_decay=0.5)
    for step in range(5):
        adam.step(loss_and_grads(a, step))
        adamw.step(loss_and_grads(b, step))
    assert (a[0] - b[0]).abs().max() > 1e-4


def test_first_adam_step_has_size_lr():
    """Bias correction makes the first step -lr * sign(g) (up to eps), whatever g's scale."""
    p = [torch.zeros(4, dtype=F64)]
    Adam(p, lr=0.1).step([torch.tensor([1e-3, -5.0, 2.0, -1e3], dtype=F64)])
    torch.testing.assert_close(p[0], torch.tensor([-0.1, 0.1, -0.1, 0.1], dtype=F64),
                               rtol=1e-4, atol=0)


@pytest.mark.parametrize("call, error, match", [
    (lambda: SGD(start(), lr=0), ValueError, "lr must be > 0"),
    (lambda: SGD(start(), lr=0.1, momentum=1.0), ValueError, r"momentum must be in \[0, 1\)"),
    (lambda: SGD(start(), lr=0.1, nesterov=True), ValueError, "nesterov=True needs momentum"),
    (lambda: SGD(start(), lr=0.1, weight_decay=-1), ValueError, "weight_decay must be >= 0"),
    (lambda: Adam(start(), betas=(0.9, 1.0)), ValueError, "betas must be two numbers"),
    (lambda: Adam(start(), eps=0), ValueError, "eps must be > 0"),
    (lambda: Adam([]), TypeError, "non-empty sequence of tensors"),
    (lambda: SGD(start(), lr=0.1).step([torch.zeros(2, 3)]), ValueError, "expected 2 gradients"),
    (lambda: SGD(start(), lr=0.1).step([torch.zeros(3, 2), torch.zeros(2)]), ValueError,
     r"gradient of shape \(3, 2\) for a parameter of shape \(2, 3\)"),
])
def test_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()
