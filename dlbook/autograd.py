"""Automatic differentiation on scalars, in reverse mode (``Value``) and forward mode
(``Dual``).

Chapter 1 builds both from the derivative rules of a first calculus course. ``Value``
records every elementary operation in a graph while computing forward; ``backward()``
then walks the graph once from the output to the inputs, applying the chain rule.
``Dual`` carries a value and one directional derivative forward alongside each other,
with no graph at all.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Callable, Sequence, Union

Number = Union[int, float]


def _check_number(x: object, what: str) -> float:
    """Return ``x`` as a float, or raise a TypeError that says what came instead."""
    # the common cases first: much cheaper than the check against Real
    if type(x) is float:
        return x
    if type(x) is int:
        return float(x)
    if isinstance(x, bool) or not isinstance(x, Real):
        raise TypeError(
            f"{what} must be a real number (int or float), got {type(x).__name__}: "
            f"{x!r}"
        )
    return float(x)


class Value:
    """A scalar that remembers how it was computed, so gradients can flow back through
    it.

    Attributes:
        data: the number this node holds.
        grad: d(output)/d(this node), filled in by ``backward()`` on the output.
    """

    # Fixed attributes make each of the many small nodes cheaper to create and to read.
    __slots__ = ("data", "grad", "_parents", "_op", "label", "_backward")

    def __init__(
        self,
        data: Number,
        _parents: tuple[Value, ...] = (),
        _op: str = "",
        label: str = "",
    ):
        # Every operation below makes a float; only numbers from outside need the full
        # check.
        self.data = data if type(data) is float else _check_number(data, "Value data")
        self.grad = 0.0
        self._parents = _parents
        self._op = _op  # the operation that made this node, for drawing the graph
        self.label = label
        # Applies the chain rule for this node's operation: adds this node's gradient,
        # times the local derivative, into each parent's gradient.
        self._backward: Callable[[], None] = lambda: None

    @staticmethod
    def _lift(other: Value | Number) -> Value:
        """Wrap a plain number as a constant node, so ``2 * x`` and ``x * 2`` both
        work."""
        if isinstance(other, Value):
            return other
        return Value(_check_number(other, "operand"))

    def __add__(self, other: Value | Number) -> Value:
        other = self._lift(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():
            # d(a + b)/da = 1 and d(a + b)/db = 1
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other: Value | Number) -> Value:
        other = self._lift(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward():
            # d(a * b)/da = b and d(a * b)/db = a
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __pow__(self, exponent: Number) -> Value:
        k = _check_number(exponent, "exponent")
        if self.data == 0 and k < 1:
            raise ValueError(f"0 ** {k} has no derivative at 0; use an exponent >= 1")
        if self.data < 0 and not k.is_integer():
            raise ValueError(
                f"a negative base ({self.data}) needs an integer exponent, got {k}"
            )
        out = Value(self.data**k, (self,), f"**{k:g}")

        def _backward():
            # d(a ** k)/da = k * a ** (k - 1)
            self.grad += k * self.data ** (k - 1) * out.grad

        out._backward = _backward
        return out

    def exp(self) -> Value:
        out = Value(math.exp(self.data), (self,), "exp")

        def _backward():
            self.grad += out.data * out.grad  # d(e^a)/da = e^a

        out._backward = _backward
        return out

    def log(self) -> Value:
        if self.data <= 0:
            raise ValueError(f"log needs a positive argument, got {self.data}")
        out = Value(math.log(self.data), (self,), "log")

        def _backward():
            self.grad += out.grad / self.data  # d(log a)/da = 1 / a

        out._backward = _backward
        return out

    def sin(self) -> Value:
        out = Value(math.sin(self.data), (self,), "sin")

        def _backward():
            self.grad += math.cos(self.data) * out.grad

        out._backward = _backward
        return out

    def cos(self) -> Value:
        out = Value(math.cos(self.data), (self,), "cos")

        def _backward():
            self.grad += -math.sin(self.data) * out.grad

        out._backward = _backward
        return out

    def tanh(self) -> Value:
        out = Value(math.tanh(self.data), (self,), "tanh")

        def _backward():
            self.grad += (1.0 - out.data**2) * out.grad  # d(tanh a)/da = 1 - tanh(a)^2

        out._backward = _backward
        return out

    def relu(self) -> Value:
        out = Value(max(self.data, 0.0), (self,), "relu")

        def _backward():
            # we take the derivative at 0 to be 0
            self.grad += (self.data > 0) * out.grad

        out._backward = _backward
        return out

    # The remaining operators are compositions of the ones above.
    def __neg__(self) -> Value:
        return self * -1

    def __sub__(self, other: Value | Number) -> Value:
        return self + (-self._lift(other))

    def __truediv__(self, other: Value | Number) -> Value:
        other = self._lift(other)
        if other.data == 0:
            raise ZeroDivisionError("division by a Value whose data is 0")
        return self * other**-1

    def __radd__(self, other: Number) -> Value:
        return self + other

    def __rmul__(self, other: Number) -> Value:
        return self * other

    def __rsub__(self, other: Number) -> Value:
        return self._lift(other) - self

    def __rtruediv__(self, other: Number) -> Value:
        return self._lift(other) / self

    def backward(self) -> None:
        """Fill in ``grad`` of every node this one depends on (reverse accumulation).

        Nodes are visited in reverse topological order, so a node's gradient is complete
        (every path through it has added its share) before it is passed on to its
        parents.
        """
        order = topological_order(self)
        for node in order:
            node.grad = 0.0  # gradients from an earlier backward() do not carry over
        self.grad = 1.0  # d(output)/d(output)
        for node in reversed(order):
            node._backward()

    def __repr__(self) -> str:
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g})"


def topological_order(root: Value) -> list[Value]:
    """Return every node ``root`` depends on, each after all of its parents.

    An explicit stack instead of recursion, so graphs thousands of nodes deep do not hit
    Python's recursion limit.
    """
    order: list[Value] = []
    visited: set[int] = set()
    stack: list[tuple[Value, bool]] = [(root, False)]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for parent in node._parents:
            if id(parent) not in visited:
                stack.append((parent, False))
    return order


class Dual:
    """A dual number ``a + b*eps`` with ``eps**2 = 0``: a value and its derivative,
    carried forward.

    Seeding an input with ``dot=1`` (and every other input with 0) makes ``dot`` of any
    result the derivative with respect to that input: one forward pass per input.
    """

    def __init__(self, val: Number, dot: Number = 0.0):
        self.val = _check_number(val, "Dual val")
        self.dot = _check_number(dot, "Dual dot")

    @staticmethod
    def _lift(other: Dual | Number) -> Dual:
        return (
            other if isinstance(other, Dual) else Dual(_check_number(other, "operand"))
        )

    def __add__(self, other: Dual | Number) -> Dual:
        other = self._lift(other)
        return Dual(self.val + other.val, self.dot + other.dot)

    def __mul__(self, other: Dual | Number) -> Dual:
        other = self._lift(other)
        # (a + a' eps)(b + b' eps) = ab + (a'b + ab') eps: the product rule
        return Dual(self.val * other.val, self.dot * other.val + self.val * other.dot)

    def __pow__(self, exponent: Number) -> Dual:
        k = _check_number(exponent, "exponent")
        if self.val == 0 and k < 1:
            raise ValueError(f"0 ** {k} has no derivative at 0; use an exponent >= 1")
        if self.val < 0 and not k.is_integer():
            raise ValueError(
                f"a negative base ({self.val}) needs an integer exponent, got {k}"
            )
        return Dual(self.val**k, k * self.val ** (k - 1) * self.dot)

    def exp(self) -> Dual:
        e = math.exp(self.val)
        return Dual(e, e * self.dot)

    def log(self) -> Dual:
        if self.val <= 0:
            raise ValueError(f"log needs a positive argument, got {self.val}")
        return Dual(math.log(self.val), self.dot / self.val)

    def sin(self) -> Dual:
        return Dual(math.sin(self.val), math.cos(self.val) * self.dot)

    def cos(self) -> Dual:
        return Dual(math.cos(self.val), -math.sin(self.val) * self.dot)

    def tanh(self) -> Dual:
        t = math.tanh(self.val)
        return Dual(t, (1.0 - t * t) * self.dot)

    def relu(self) -> Dual:
        return Dual(max(self.val, 0.0), (self.val > 0) * self.dot)

    def __neg__(self) -> Dual:
        return self * -1

    def __sub__(self, other: Dual | Number) -> Dual:
        return self + (-self._lift(other))

    def __truediv__(self, other: Dual | Number) -> Dual:
        other = self._lift(other)
        if other.val == 0:
            raise ZeroDivisionError("division by a Dual whose val is 0")
        return self * other**-1

    def __radd__(self, other: Number) -> Dual:
        return self + other

    def __rmul__(self, other: Number) -> Dual:
        return self * other

    def __rsub__(self, other: Number) -> Dual:
        return self._lift(other) - self

    def __rtruediv__(self, other: Number) -> Dual:
        return self._lift(other) / self

    def __repr__(self) -> str:
        return f"Dual(val={self.val:.6g}, dot={self.dot:.6g})"


def _check_function(f: Callable, xs: Sequence[Number]) -> None:
    if not callable(f):
        raise TypeError(f"f must be callable, got {type(f).__name__}")
    if isinstance(xs, (str, bytes)) or not hasattr(xs, "__len__"):
        raise TypeError(f"xs must be a sequence of numbers, got {type(xs).__name__}")


def grad_reverse(
    f: Callable[..., Value], xs: Sequence[Number]
) -> tuple[float, list[float]]:
    """Return ``f(xs)`` and its gradient by one forward and one backward pass."""
    _check_function(f, xs)
    inputs = [Value(_check_number(x, "input")) for x in xs]
    out = f(*inputs)
    if not isinstance(out, Value):
        raise TypeError(f"f must return a Value, got {type(out).__name__}")
    out.backward()
    return out.data, [x.grad for x in inputs]


def grad_forward(
    f: Callable[..., Dual], xs: Sequence[Number]
) -> tuple[float, list[float]]:
    """Return ``f(xs)`` and its gradient by forward mode: one pass per input."""
    _check_function(f, xs)
    values = [_check_number(x, "input") for x in xs]
    grads, out = [], None
    for i in range(len(values)):
        out = f(*[Dual(v, 1.0 if j == i else 0.0) for j, v in enumerate(values)])
        if not isinstance(out, Dual):
            raise TypeError(f"f must return a Dual, got {type(out).__name__}")
        grads.append(out.dot)
    if out is None:
        raise ValueError("xs must hold at least one input")
    return out.val, grads
