"""A neural network made of ``Value`` scalars: slow, but every number in it can be
inspected.

Chapter 1 trains it with the reverse-mode engine of ``dlbook.autograd`` to show that a
network is nothing more than a large expression whose gradient ``backward()`` can
compute. Later chapters do the same with tensors and PyTorch.
"""

from __future__ import annotations

import random
from typing import Sequence

from dlbook.autograd import Number, Value
from dlbook.utils import check_positive_int, check_real


class Neuron:
    """``tanh(w . x + b)``, or ``w . x + b`` when ``linear``; weights start uniform in
    [-1, 1]."""

    def __init__(self, n_inputs: int, rng: random.Random, linear: bool = False):
        check_positive_int(n_inputs, "n_inputs")
        if not isinstance(rng, random.Random):
            raise TypeError(f"rng must be a random.Random, got {type(rng).__name__}")
        self.w = [Value(rng.uniform(-1, 1), label=f"w{i}") for i in range(n_inputs)]
        self.b = Value(0.0, label="b")
        self.linear = linear

    def __call__(self, x: Sequence[Value | Number]) -> Value:
        if len(x) != len(self.w):
            raise ValueError(f"expected {len(self.w)} inputs, got {len(x)}")
        z = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        return z if self.linear else z.tanh()

    def parameters(self) -> list[Value]:
        return self.w + [self.b]


class ScalarMLP:
    """Layers of neurons: ``sizes = [2, 8, 1]`` is 2 inputs, 8 tanh units, 1 linear
    output."""

    def __init__(self, sizes: Sequence[int], seed: int = 0):
        if len(sizes) < 2:
            raise ValueError(
                f"sizes must be at least two positive ints, got {list(sizes)!r}"
            )
        for size in sizes:
            check_positive_int(size, "every size in sizes")
        rng = random.Random(seed)
        last = len(sizes) - 2
        self.layers = [
            [Neuron(n_in, rng, linear=(i == last)) for _ in range(n_out)]
            for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]))
        ]

    def __call__(self, x: Sequence[Value | Number]) -> list[Value]:
        for layer in self.layers:
            x = [neuron(x) for neuron in layer]
        return x

    def parameters(self) -> list[Value]:
        return [
            p for layer in self.layers for neuron in layer for p in neuron.parameters()
        ]


def sgd_step(params: Sequence[Value], lr: float) -> None:
    """Move every parameter a step of size ``lr`` against its gradient."""
    check_real(lr, "lr", 0.0, low_open=True)
    for p in params:
        p.data -= lr * p.grad
