"""Optimizers from scratch: SGD with momentum and weight decay, Adam and AdamW.

Each optimizer holds a list of parameter tensors and updates them in place when given
their gradients, ``optimizer.step(gradients)``. No autograd is involved, so they work
with the hand-written ``dlbook.mlp.MLP``. The update rules are written exactly as
``torch.optim`` applies them, and ``tests/test_optim.py`` checks that both produce the
same parameters, step after step.
"""

from __future__ import annotations

from typing import Sequence

import torch

from dlbook.utils import check_real


def _check_params(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    params = list(params)
    if not params or not all(isinstance(p, torch.Tensor) for p in params):
        raise TypeError("params must be a non-empty sequence of tensors")
    return params


class Optimizer:
    """Common part: the parameters, a step counter, and a check of the gradients'
    shapes."""

    def __init__(self, params: Sequence[torch.Tensor], lr: float, weight_decay: float):
        check_real(lr, "lr", 0.0, low_open=True)
        check_real(weight_decay, "weight_decay", 0.0)
        self.params = _check_params(params)
        self.lr, self.weight_decay, self.t = lr, weight_decay, 0

    def step(self, grads: Sequence[torch.Tensor]) -> None:
        grads = list(grads)
        if not all(isinstance(g, torch.Tensor) for g in grads):
            raise TypeError(
                f"grads must be tensors, got {[type(g).__name__ for g in grads]}"
            )
        if len(grads) != len(self.params):
            raise ValueError(f"expected {len(self.params)} gradients, got {len(grads)}")
        for p, g in zip(self.params, grads):
            if g.shape != p.shape:
                raise ValueError(
                    f"gradient of shape {tuple(g.shape)} for a parameter "
                    f"of shape "
                    f"{tuple(p.shape)}"
                )
        self.t += 1
        # harmless without autograd; needed if params require grad
        with torch.no_grad():
            for i, (p, g) in enumerate(zip(self.params, grads)):
                self.update(i, p, g)

    def update(self, i: int, p: torch.Tensor, g: torch.Tensor) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with momentum and L2 weight decay, in torch.optim's
    form:

        g <- g + lambda * theta                     (weight decay: gradient of lambda/2
        theta.theta) v <- mu * v + g                             (momentum buffer, v_0 =
        0) theta <- theta - eta * v                    (or eta * (g + mu * v) with
        Nesterov)

    With a constant learning rate this equals the form v <- mu v - eta g; theta <- theta
    + v.
    """

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ):
        super().__init__(params, lr, weight_decay)
        check_real(momentum, "momentum", 0.0, 1.0, high_open=True)
        if nesterov and momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.momentum, self.nesterov = momentum, nesterov
        self.velocity = [torch.zeros_like(p) for p in self.params]

    def update(self, i: int, p: torch.Tensor, g: torch.Tensor) -> None:
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            v = self.velocity[i]
            v.mul_(self.momentum).add_(g)
            g = g + self.momentum * v if self.nesterov else v
        p.sub_(self.lr * g)


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015, Algorithm 1), with L2 weight decay added to the
    gradient as torch.optim.Adam does:

        m <- beta1 m + (1 - beta1) g;   v <- beta2 v + (1 - beta2) g^2
        m_hat = m / (1 - beta1^t);      v_hat = v / (1 - beta2^t)
        theta <- theta - eta * m_hat / (sqrt(v_hat) + eps)
    """

    decoupled = False  # AdamW sets this: decay the weights directly instead of via g

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, lr, weight_decay)
        if (
            not isinstance(betas, (tuple, list))
            or len(betas) != 2
            or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)
        ):
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
        check_real(eps, "eps", 0.0, low_open=True)
        self.betas, self.eps = betas, eps
        self.m = [torch.zeros_like(p) for p in self.params]  # first moment of g
        self.v = [torch.zeros_like(p) for p in self.params]  # second moment of g

    def update(self, i: int, p: torch.Tensor, g: torch.Tensor) -> None:
        beta1, beta2 = self.betas
        if self.weight_decay and self.decoupled:
            # AdamW: shrink theta, leave g alone
            p.mul_(1 - self.lr * self.weight_decay)
        elif self.weight_decay:
            g = g + self.weight_decay * p
        self.m[i].mul_(beta1).add_((1 - beta1) * g)
        self.v[i].mul_(beta2).add_((1 - beta2) * g * g)
        m_hat = self.m[i] / (1 - beta1**self.t)  # bias correction: m and v start at 0
        v_hat = self.v[i] / (1 - beta2**self.t)
        p.sub_(self.lr * m_hat / (v_hat.sqrt() + self.eps))


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019): each step
    multiplies the parameters by (1 - eta * lambda) before the Adam update, so the decay
    is not rescaled by Adam's per-parameter step sizes."""

    decoupled = True

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ):
        super().__init__(params, lr, betas, eps, weight_decay)
