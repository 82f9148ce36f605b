"""A multilayer perceptron with hand-written backward passes in matrix form.

Every layer has ``forward(x)``, which keeps what the backward pass will need, and
``backward(grad_out)``, which adds the gradients of its parameters into ``grad_*`` and
returns the gradient with respect to its input. No autograd is used: the tensors are
plain PyTorch tensors (so the code runs on any device), and ``tests/test_mlp.py`` checks
every gradient against ``torch.autograd`` in float64. Layouts follow PyTorch: a batch is
``(B, D)`` and a weight matrix is ``(D_out, D_in)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

import torch
from torch import nn

from dlbook.utils import check_positive_int, check_real


def init_weight(
    fan_in: int,
    fan_out: int,
    scheme: Union[str, float] = "he",
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """A (fan_out, fan_in) weight matrix drawn from N(0, std^2).

    ``"he"``: std = sqrt(2 / fan_in), which keeps the variance of ReLU activations
    constant from layer to layer (He et al., 2015, eq. 10). ``"glorot"``: std = sqrt(2 /
    (fan_in + fan_out)), the compromise of Glorot and Bengio (2010, eq. 12) for tanh. A
    float is used as the std itself.
    """
    check_positive_int(fan_in, "fan_in")
    check_positive_int(fan_out, "fan_out")
    if scheme == "he":
        std = math.sqrt(2.0 / fan_in)
    elif scheme == "glorot":
        std = math.sqrt(2.0 / (fan_in + fan_out))
    elif (
        isinstance(scheme, (int, float))
        and not isinstance(scheme, bool)
        and math.isfinite(scheme)
        and scheme >= 0
    ):
        std = float(scheme)
    else:
        raise ValueError(f"init must be 'he', 'glorot' or a std >= 0, got {scheme!r}")
    w = torch.randn(fan_out, fan_in, generator=generator, dtype=dtype)
    return (std * w).to(device)


class Linear:
    """An affine layer ``y = x W^T + b`` with its backward pass written out."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        if weight.dim() != 2 or bias.shape != (weight.shape[0],):
            raise ValueError(
                f"weight must be (D_out, D_in) and bias (D_out,), got "
                f"{tuple(weight.shape)} and {tuple(bias.shape)}"
            )
        self.weight, self.bias = weight, bias  # (D_out, D_in), (D_out,)
        self.zero_grad()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, D_in) -> (B, D_out)."""
        if (
            not isinstance(x, torch.Tensor)
            or x.dim() != 2
            or x.shape[1] != self.weight.shape[1]
        ):
            raise ValueError(
                f"x must have shape (B, {self.weight.shape[1]}), got "
                f"{tuple(getattr(x, 'shape', ())) or type(x).__name__}"
            )
        self.x = x  # the backward pass needs the input
        return x @ self.weight.T + self.bias

    def backward(self, grad_out: torch.Tensor) -> torch.Tensor:
        """grad_out = dL/dy, (B, D_out). Adds dL/dW = grad_out^T x and dL/db = sum over
        the batch of grad_out; returns dL/dx = grad_out W, (B, D_in)."""
        self.grad_weight += grad_out.T @ self.x  # (D_out, B) @ (B, D_in)
        self.grad_bias += grad_out.sum(dim=0)
        return grad_out @ self.weight  # (B, D_out) @ (D_out, D_in)

    def parameters(self) -> list[torch.Tensor]:
        return [self.weight, self.bias]

    def gradients(self) -> list[torch.Tensor]:
        return [self.grad_weight, self.grad_bias]

    def zero_grad(self) -> None:
        self.grad_weight = torch.zeros_like(self.weight)
        self.grad_bias = torch.zeros_like(self.bias)


class ReLU:
    """s(z) = max(z, 0); s'(z) = 1 where z > 0, else 0."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.positive = z > 0
        return z * self.positive

    def backward(self, grad_out: torch.Tensor) -> torch.Tensor:
        return grad_out * self.positive


class Tanh:
    """s(z) = tanh z; s'(z) = 1 - tanh(z)^2, computed from the stored output."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.out = torch.tanh(z)
        return self.out

    def backward(self, grad_out: torch.Tensor) -> torch.Tensor:
        return grad_out * (1 - self.out**2)


class Sigmoid:
    """s(z) = 1 / (1 + e^-z); s'(z) = s(z) (1 - s(z))."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.out = torch.sigmoid(z)
        return self.out

    def backward(self, grad_out: torch.Tensor) -> torch.Tensor:
        return grad_out * self.out * (1 - self.out)


class Dropout:
    """Inverted dropout (Srivastava et al., 2014): in training, zero each entry with
    probability p and scale the survivors by 1 / (1 - p), so the expected output equals
    the input and evaluation needs no change. In evaluation mode it is the identity."""

    def __init__(self, p: float, generator: torch.Generator | None = None):
        check_real(p, "dropout probability p", 0.0, 1.0, high_open=True)
        self.p, self.generator, self.training = p, generator, True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            self.mask = None
            return x
        keep = torch.rand(x.shape, generator=self.generator, dtype=x.dtype) >= self.p
        # the same mask is reused backwards
        self.mask = keep.to(x.device) / (1 - self.p)
        return x * self.mask

    def backward(self, grad_out: torch.Tensor) -> torch.Tensor:
        return grad_out if self.mask is None else grad_out * self.mask


ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}
TORCH_ACTIVATIONS = {ReLU: nn.ReLU, Tanh: nn.Tanh, Sigmoid: nn.Sigmoid}


def log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """log softmax along the last axis, computed stably: subtracting the row maximum
    leaves the result unchanged (softmax is shift-invariant) and makes every exponent <=
    0, so exp never overflows; log-sum-exp is then at least log 1 = 0, so log never sees
    0."""
    shifted = logits - logits.max(dim=-1, keepdim=True).values
    return shifted - shifted.exp().sum(dim=-1, keepdim=True).log()


def cross_entropy(
    logits: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean softmax cross-entropy of logits (B, C) against labels y (B,), and its
    gradient.

    L = -(1/B) sum_i log softmax(z_i)[y_i];  dL/dz_i = (softmax(z_i) - onehot(y_i)) / B.
    Returns (loss, dL/dlogits) with the gradient of shape (B, C).
    """
    if logits.dim() != 2 or y.shape != (logits.shape[0],):
        raise ValueError(
            f"logits must be (B, C) and y (B,), got {tuple(logits.shape)} "
            f"and "
            f"{tuple(y.shape)}"
        )
    if y.is_floating_point() or (
        len(y) and (y.min() < 0 or y.max() >= logits.shape[1])
    ):
        raise ValueError(f"y must hold integer classes in [0, {logits.shape[1]})")
    rows = torch.arange(len(y), device=logits.device)
    log_p = log_softmax(logits)
    loss = -log_p[rows, y].mean()
    grad = log_p.exp()  # softmax
    grad[rows, y] -= 1
    return loss, grad / len(y)


@dataclass(frozen=True)
class MLPConfig:
    """Shape and settings of a from-scratch MLP."""

    sizes: tuple[int, ...] = (64, 128, 10)  # widths: input, hidden layers..., output
    activation: str = "relu"  # "relu", "tanh" or "sigmoid", after every hidden layer
    dropout: float = 0.0  # drop probability after each hidden activation
    # weight init: "he", "glorot" or a std (biases start at 0)
    init: Union[str, float] = "he"

    def __post_init__(self):
        if len(self.sizes) < 2:
            raise ValueError(
                f"sizes must list at least two positive widths, got {self.sizes!r}"
            )
        for size in self.sizes:
            check_positive_int(size, "every width in sizes")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(ACTIVATIONS)}, got "
                f"{self.activation!r}"
            )
        check_real(self.dropout, "dropout", 0.0, 1.0, high_open=True)


class MLP:
    """F(x) = W_L s(... s(W_1 x + b_1) ...) + b_L, as a list of layers run forward in
    order and backward in reverse order."""

    def __init__(
        self,
        config: MLPConfig | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ):
        config = MLPConfig() if config is None else config  # None: the default sizes
        if not isinstance(config, MLPConfig):
            raise TypeError(
                f"config must be an MLPConfig or None, got {type(config).__name__}"
            )
        self.config = config
        self.layers: list = []
        pairs = list(zip(config.sizes[:-1], config.sizes[1:]))
        for i, (d_in, d_out) in enumerate(pairs):
            w = init_weight(d_in, d_out, config.init, generator, dtype, device)
            self.layers.append(
                Linear(w, torch.zeros(d_out, dtype=dtype, device=device))
            )
            if i < len(pairs) - 1:  # no activation after the output layer
                self.layers.append(ACTIVATIONS[config.activation]())
                if config.dropout > 0:
                    self.layers.append(Dropout(config.dropout, generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, sizes[0]) -> logits (B, sizes[-1])."""
        if x.dim() != 2 or x.shape[1] != self.config.sizes[0]:
            raise ValueError(
                f"x must have shape (B, {self.config.sizes[0]}), got {tuple(x.shape)}"
            )
        for layer in self.layers:
            x = layer.forward(x)
        return x

    __call__ = forward

    def backward(self, grad_out: torch.Tensor) -> torch.Tensor:
        """Backpropagation: hand dL/d(output) to each layer in reverse; returns
        dL/dx."""
        for layer in reversed(self.layers):
            grad_out = layer.backward(grad_out)
        return grad_out

    def linears(self) -> list[Linear]:
        return [layer for layer in self.layers if isinstance(layer, Linear)]

    def parameters(self) -> list[torch.Tensor]:
        return [p for layer in self.linears() for p in layer.parameters()]

    def gradients(self) -> list[torch.Tensor]:
        return [g for layer in self.linears() for g in layer.gradients()]

    def zero_grad(self) -> None:
        for layer in self.linears():
            layer.zero_grad()

    def train(self, mode: bool = True) -> MLP:
        for layer in self.layers:
            if isinstance(layer, Dropout):
                layer.training = mode
        return self

    def eval(self) -> MLP:
        return self.train(False)

    def to_torch(self) -> nn.Sequential:
        """The same network as ``torch.nn`` modules, with copies of these weights."""
        torch_layers: list[nn.Module] = []
        for layer in self.layers:
            if isinstance(layer, Linear):
                linear = nn.Linear(
                    layer.weight.shape[1],
                    layer.weight.shape[0],
                    dtype=layer.weight.dtype,
                    device=layer.weight.device,
                )
                with torch.no_grad():
                    linear.weight.copy_(layer.weight)
                    linear.bias.copy_(layer.bias)
                torch_layers.append(linear)
            elif isinstance(layer, Dropout):
                torch_layers.append(nn.Dropout(layer.p))
            else:
                torch_layers.append(TORCH_ACTIVATIONS[type(layer)]())
        return nn.Sequential(*torch_layers)


def train_step(model: MLP, optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    """One step of minibatch gradient descent with no autograd: forward, loss, backward,
    update.

    ``optimizer`` is any object with ``step(gradients)`` that updates
    ``model.parameters()`` in place, such as ``dlbook.optim.SGD`` or
    ``dlbook.optim.Adam``. Returns the batch loss.
    """
    logits = model.forward(x)
    loss, grad_logits = cross_entropy(logits, y)
    model.zero_grad()
    model.backward(grad_logits)
    optimizer.step(model.gradients())
    return loss.item()
