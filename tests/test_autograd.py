"""The scalar engines of chapter 1 against torch.autograd (float64) and central differences."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook.autograd import Dual, Value, grad_forward, grad_reverse, topological_order

N_VARS = 3
UNARY = ["neg", "sin", "cos", "tanh", "relu", "exp", "log", "square", "cube"]
BINARY = ["add", "sub", "mul", "div", "radd", "rsub", "rmul", "rdiv", "pow_const"]


def expressions(ops_unary=UNARY):
    """Random expression trees over x0..x2: ("var", i) or (op, child[, child]).

    Numbers enter through the ops that mix a constant with an expression (radd, rsub, ...).
    """
    leaves = st.tuples(st.just("var"), st.integers(0, N_VARS - 1))

    def extend(children):
        return st.one_of(
            st.tuples(st.sampled_from(ops_unary), children),
            st.tuples(st.sampled_from(BINARY), children, children),
        )

    return st.recursive(leaves, extend, max_leaves=8)


def evaluate(tree, xs):
    """Evaluate a tree on Values, Duals or torch tensors alike (they share the method names).

    Domains are kept safe by construction: exp sees a tanh (so it cannot overflow), log and
    division see ``e * e + 1`` (so they never meet zero or a negative number).
    """
    op = tree[0]
    if op == "var":
        return xs[tree[1]]
    a = evaluate(tree[1], xs)
    if op == "neg":
        return -a
    if op in ("sin", "cos", "tanh", "relu"):
        return getattr(a, op)()
    if op == "exp":
        return a.tanh().exp()
    if op == "log":
        return (a * a + 1).log()
    if op == "square":
        return a**2
    if op == "cube":
        return a**3
    b = evaluate(tree[2], xs)
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    if op == "mul":
        return a * b
    if op == "div":
        return a / (b * b + 1)
    if op == "radd":
        return 1.5 + a
    if op == "rsub":
        return 1.5 - a
    if op == "rmul":
        return 1.5 * a
    if op == "rdiv":
        return 1.5 / (a * a + 1)
    if op == "pow_const":
        return (a * a + 1) ** 1.5
    raise AssertionError(op)


def torch_grad(tree, point):
    xs = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in point]
    out = evaluate(tree, xs)
    grads = torch.autograd.grad(out, xs, allow_unused=True)
    return out.item(), [0.0 if g is None else g.item() for g in grads]


def value_grad(tree, point):
    xs = [Value(p) for p in point]
    out = evaluate(tree, xs)
    out.backward()
    return out.data, [x.grad for x in xs]


points = st.lists(st.floats(-2, 2, allow_nan=False), min_size=N_VARS, max_size=N_VARS)


@settings(max_examples=150, deadline=None)
@given(expressions(), points)
def test_reverse_mode_equals_torch_autograd(tree, point):
    value, grad = value_grad(tree, point)
    t_value, t_grad = torch_grad(tree, point)
    assert value == pytest.approx(t_value, rel=1e-9, abs=1e-12)
    assert grad == pytest.approx(t_grad, rel=1e-9, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(expressions([op for op in UNARY if op != "relu"]), points)
def test_reverse_mode_equals_central_differences(tree, point):
    # relu is left out: at its kink a central difference gives 1/2, not a derivative.
    _, grad = value_grad(tree, point)
    h = 1e-6
    for i in range(N_VARS):
        up, down = list(point), list(point)
        up[i] += h
        down[i] -= h
        f_up = float(evaluate(tree, [torch.tensor(p, dtype=torch.float64) for p in up]))
        f_down = float(evaluate(tree, [torch.tensor(p, dtype=torch.float64) for p in down]))
        assert grad[i] == pytest.approx((f_up - f_down) / (2 * h), rel=1e-4, abs=1e-5)


@settings(max_examples=100, deadline=None)
@given(expressions(), points)
def test_forward_mode_equals_reverse_mode(tree, point):
    _, reverse = value_grad(tree, point)
    forward = []
    for i in range(N_VARS):
        out = evaluate(tree, [Dual(p, 1.0 if j == i else 0.0) for j, p in enumerate(point)])
        forward.append(out.dot)
    assert forward == pytest.approx(reverse, rel=1e-9, abs=1e-12)


def test_chapter_example_by_both_modes():
    f = lambda x1, x2: x1 * x2 + x1.sin()  # noqa: E731
    for mode in (grad_forward, grad_reverse):
        value, grad = mode(f, [2.0, 5.0])
        assert value == pytest.approx(10 + math.sin(2))
        assert grad == pytest.approx([5 + math.cos(2), 2.0])


def test_a_node_used_twice_gets_both_contributions():
    x = Value(3.0)
    y = x * x + x  # x is used three times
    y.backward()
    assert x.grad == 2 * 3.0 + 1


def test_backward_twice_gives_the_same_gradient():
    x = Value(0.5)
    y = (x * x).sin()
    y.backward()
    first = x.grad
    y.backward()
    assert x.grad == first


def test_deep_graph_does_not_hit_the_recursion_limit():
    x = Value(1.0)
    y = x
    for _ in range(20_000):
        y = y * 1.0001
    y.backward()
    assert x.grad == pytest.approx(1.0001**20_000, rel=1e-9)
    assert len(topological_order(y)) == 40_001  # x, 20,000 constants and 20,000 products


@pytest.mark.parametrize("bad", ["2", None, [1.0], True])
def test_non_number_operand_is_refused(bad):
    with pytest.raises(TypeError, match="real number"):
        Value(1.0) + bad
    with pytest.raises(TypeError, match="real number"):
        Value(bad)
    with pytest.raises(TypeError, match="real number"):
        Dual(1.0) * bad


@pytest.mark.parametrize("x", [0.0, -1.0])
def test_log_of_non_positive_number_is_refused(x):
    with pytest.raises(ValueError, match="positive"):
        Value(x).log()
    with pytest.raises(ValueError, match="positive"):
        Dual(x).log()


def test_other_domain_errors_are_clear():
    with pytest.raises(ZeroDivisionError):
        Value(1.0) / Value(0.0)
    with pytest.raises(ValueError, match="integer exponent"):
        Value(-2.0) ** 0.5
    with pytest.raises(TypeError, match="must return a Value"):
        grad_reverse(lambda x: 3.0, [1.0])
    with pytest.raises(ValueError, match="at least one input"):
        grad_forward(lambda: Dual(1.0), [])
