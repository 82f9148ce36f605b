"""Each derivative rule of dlbook.autograd against its closed form, in both modes, including
the points where a rule is a convention (relu at 0), so the mutations of ``tools/mutate.py``
fail."""

import math

import pytest
import torch

from dlbook.autograd import Dual, Value, grad_forward, grad_reverse

# (f, its derivative, points): written out by hand, not derived from the code under test
RULES = [
    (lambda x: x * x, lambda x: 2 * x, [-1.5, 0.0, 2.0]),
    (lambda x: x**3, lambda x: 3 * x**2, [-2.0, 0.5, 1.0]),
    (lambda x: x**0.5, lambda x: 0.5 / math.sqrt(x), [0.25, 4.0]),
    (lambda x: x.exp(), lambda x: math.exp(x), [-1.0, 0.0, 1.3]),
    (lambda x: x.log(), lambda x: 1 / x, [0.2, 1.0, 5.0]),
    (lambda x: x.sin(), lambda x: math.cos(x), [-1.0, 0.0, 2.0]),
    (lambda x: x.cos(), lambda x: -math.sin(x), [-1.0, 0.5, 2.0]),
    (lambda x: x.tanh(), lambda x: 1 - math.tanh(x) ** 2, [-2.0, 0.0, 0.7]),
    (lambda x: x.relu(), lambda x: 1.0 if x > 0 else 0.0, [-1.0, 0.0, 2.0]),
    (lambda x: 3.0 / x, lambda x: -3.0 / x**2, [-2.0, 0.5]),
    (lambda x: 1.0 - x, lambda x: -1.0, [0.3]),
]


RULE_NAMES = ["square", "cube", "sqrt", "exp", "log", "sin", "cos", "tanh", "relu", "reciprocal",
              "rsub"]


@pytest.mark.parametrize("f, df, points", RULES, ids=RULE_NAMES)
def test_each_rule_has_its_closed_form_derivative_in_both_modes(f, df, points):
    for x in points:
        for grad in (grad_reverse, grad_forward):
            _, (g,) = grad(f, [x])
            assert g == pytest.approx(df(x), rel=1e-12, abs=1e-12), (grad.__name__, x)


def test_relu_derivative_at_zero_is_zero_as_in_torch():
    x = torch.zeros((), dtype=torch.float64, requires_grad=True)
    torch.relu(x).backward()
    assert x.grad.item() == 0.0
    assert grad_reverse(lambda v: v.relu(), [0.0])[1] == [0.0]
    assert Dual(0.0, 1.0).relu().dot == 0.0


def test_products_and_quotients_of_two_inputs():
    def f(a, b):
        return a * b + a / b - b**2 * a.tanh()

    a, b = 0.7, -1.3
    da = b + 1 / b - b**2 * (1 - math.tanh(a) ** 2)
    db = a - a / b**2 - 2 * b * math.tanh(a)
    for grad in (grad_reverse, grad_forward):
        _, (ga, gb) = grad(f, [a, b])
        assert (ga, gb) == (pytest.approx(da, rel=1e-12), pytest.approx(db, rel=1e-12))


def test_backward_starts_from_zero_every_time():
    x = Value(2.0)
    y = x * x
    y.backward()
    y.backward()
    assert x.grad == 4.0
