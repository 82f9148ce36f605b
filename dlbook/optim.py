"""Optimizers from scratch: SGD with momentum and weight decay, Adam and AdamW, and the
layer-wise LARS and LAMB for large batches.

Each optimizer holds a list of parameter tensors and updates them in place when given
their gradients, ``optimizer.step(gradients)``. No autograd is involved, so they work
with the hand-written ``dlbook.mlp.MLP``. The update rules are written exactly as
``torch.optim`` applies them, and ``tests/test_optim.py`` checks that both produce the
same parameters, step after step. ``torch.optim`` has no LARS or LAMB;
``tests/test_lars_lamb.py`` checks them against the papers' algorithms.
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
    default_weight_decay = 0.0  # AdamW: 1e-2, as torch.optim.AdamW

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float | None = None,
    ):
        """``weight_decay`` None means the class's ``default_weight_decay``."""
        if weight_decay is None:
            weight_decay = self.default_weight_decay
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
    default_weight_decay = 1e-2


def trust_ratio(weight_norm: torch.Tensor, update_norm: torch.Tensor) -> torch.Tensor:
    """``||w|| / ||u||`` for one layer, and 1 where either norm is 0 (a layer at zero,
    such as a bias at initialization, or no update), as in the reference
    implementations of LARS and LAMB."""
    ok = (weight_norm > 0) & (update_norm > 0)
    return torch.where(ok, weight_norm / update_norm.clamp(min=1e-30), 1.0)


class LARS(Optimizer):
    """Layer-wise adaptive rate scaling (You, Gitman and Ginsburg, 2017, algorithm 1):
    SGD with momentum whose step in each layer (each parameter tensor) is scaled by
    that layer's ratio of weight norm to gradient norm:

        lambda_l = eta_trust * ||w|| / (||g|| + beta ||w||)     (local learning rate)
        v <- mu v + lr * lambda_l * (g + beta w);   w <- w - v

    so every layer moves by about the same fraction of its weights, whatever the scale
    of its gradient.
    """

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        lr: float = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 0.001,
    ):
        super().__init__(params, lr, weight_decay)
        self.momentum = check_real(momentum, "momentum", 0.0, 1.0, high_open=True)
        self.trust = check_real(
            trust_coefficient, "trust_coefficient", 0.0, low_open=True
        )
        self.v = [torch.zeros_like(p) for p in self.params]  # momentum buffers

    def update(self, i: int, p: torch.Tensor, g: torch.Tensor) -> None:
        w_norm, g_norm = p.norm(), g.norm()
        local_lr = self.trust * trust_ratio(w_norm, g_norm + self.weight_decay * w_norm)
        self.v[i].mul_(self.momentum).add_(
            self.lr * local_lr * (g + self.weight_decay * p)
        )
        p.sub_(self.v[i])


class LAMB(Adam):
    """Layer-wise adaptive moments (You et al., 2020, algorithm 2): Adam's direction,
    plus decoupled weight decay, rescaled in each layer to a fixed fraction of the
    layer's weight norm:

        r = m_hat / (sqrt(v_hat) + eps) + lambda w
        w <- w - lr * (||w|| / ||r||) * r

    so a layer's step has norm ``lr * ||w||`` (the paper's phi is the identity here).
    """

    default_weight_decay = 0.01

    def update(self, i: int, p: torch.Tensor, g: torch.Tensor) -> None:
        beta1, beta2 = self.betas
        self.m[i].mul_(beta1).add_((1 - beta1) * g)
        self.v[i].mul_(beta2).add_((1 - beta2) * g * g)
        m_hat = self.m[i] / (1 - beta1**self.t)
        v_hat = self.v[i] / (1 - beta2**self.t)
        r = m_hat / (v_hat.sqrt() + self.eps) + self.weight_decay * p
        p.sub_(self.lr * trust_ratio(p.norm(), r.norm()) * r)
