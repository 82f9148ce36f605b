"""Random-features regression, the smallest model that shows double descent (chapter 3).

A network whose hidden layer is random and frozen, ``phi(x) = ReLU(W x)`` with ``p``
units, and whose output layer is fitted by least squares. Below ``p = n`` training
examples the fit is an ordinary least-squares problem; above it there are many exact
fits, and the minimum-norm one is taken, the one that gradient descent started from zero
converges to. Sweeping ``p`` through ``n`` gives the double-descent curve of Belkin et
al. (2019).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from dlbook.utils import check_int


def random_relu_features(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The features ``ReLU(x W^T)`` of inputs ``x`` (N, D) under fixed weights ``W`` (p,
    D); returns (N, p)."""
    if x.dim() != 2 or weight.dim() != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"need x (N, D) and weight (p, D), got {tuple(x.shape)} and "
            f"{tuple(weight.shape)}"
        )
    return torch.relu(x @ weight.T)


def fit_output_layer(
    features: torch.Tensor, targets: torch.Tensor, ridge: float = 0.0
) -> torch.Tensor:
    """Output weights ``beta`` (p, K) for ``features`` (N, p) and ``targets`` (N, K).

    With ``ridge = 0``: the minimum-norm least-squares solution ``pinv(F) Y``, which is
    the ordinary least-squares fit when ``p <= N`` and ``F`` has full rank, and the
    exact fit of smallest ``||beta||`` when ``p > N``. With ``ridge = lam > 0``: the
    minimizer of ``||F beta - Y||^2 + lam ||beta||^2``, solved in whichever of the (p,
    p) and (N, N) forms is smaller.
    """
    if features.dim() != 2 or targets.dim() != 2 or len(features) != len(targets):
        raise ValueError(
            f"need features (N, p) and targets (N, K) with the same N, "
            f"got "
            f"{tuple(features.shape)} and {tuple(targets.shape)}"
        )
    if not ridge >= 0:
        raise ValueError(f"ridge must be >= 0, got {ridge!r}")
    if ridge == 0:
        return torch.linalg.pinv(features) @ targets
    n, p = features.shape
    if p <= n:  # (F^T F + lam I) beta = F^T Y
        gram = features.T @ features + ridge * torch.eye(
            p, dtype=features.dtype, device=features.device
        )
        return torch.linalg.solve(gram, features.T @ targets)
    # beta = F^T (F F^T + lam I)^-1 Y: the same minimizer, through an (N, N) system
    gram = features @ features.T + ridge * torch.eye(
        n, dtype=features.dtype, device=features.device
    )
    return features.T @ torch.linalg.solve(gram, targets)


@dataclass(frozen=True)
class SweepResult:
    """Per width, the median over draws of the random weights."""

    widths: tuple[int, ...]
    train_mse: tuple[float, ...]  # squared error per example on the training set
    test_mse: tuple[float, ...]  # the same on the test set
    # share of test examples whose largest output is wrong
    test_error: tuple[float, ...]
    norm: tuple[float, ...]  # ||beta||, the size of the fitted output layer
    # squared error per example on the validation set (NaN without one)
    val_mse: tuple[float, ...] = ()
    ridge: tuple[float, ...] = ()  # the penalty used (picked on validation from a grid)


def _mse(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Squared error per example, summed over the K outputs."""
    return (outputs - targets).pow(2).sum(1).mean().item()


def _fit_one_draw(
    weight: torch.Tensor,
    data: tuple[torch.Tensor, ...],
    val: tuple[torch.Tensor, torch.Tensor] | None,
    ridges: tuple[float, ...],
) -> dict[str, float]:
    """Fit the output layer for one draw of hidden weights ``weight`` (p, D), with each
    penalty in ``ridges``; keep the fit of lowest validation error and score it."""
    x_train, targets, x_test, y_test, test_targets = data
    features = random_relu_features(x_train, weight)  # (N, p)
    val_features = None if val is None else random_relu_features(val[0], weight)
    best = None
    for ridge in ridges:
        beta = fit_output_layer(features, targets, ridge)  # (p, K)
        val_mse = math.nan if val is None else _mse(val_features @ beta, val[1])
        if best is None or val_mse < best[0]:
            best = (val_mse, ridge, beta)
    val_mse, ridge, beta = best
    test_out = random_relu_features(x_test, weight) @ beta  # (N_test, K)
    return {
        "train_mse": _mse(features @ beta, targets),
        "test_mse": _mse(test_out, test_targets),
        "test_error": (test_out.argmax(1) != y_test).double().mean().item(),
        "norm": beta.norm().item(),
        "val_mse": val_mse,
        "ridge": ridge,
    }


def width_sweep(
    data: tuple[torch.Tensor, ...],
    widths: list[int],
    draws: int,
    generator: torch.Generator,
    ridge: float | Sequence[float] = 0.0,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> SweepResult:
    """Fit random-features models of every width to one-hot targets, ``draws`` times
    each.

    ``data`` is ``(x_train, y_train, x_test, y_test)``: inputs (N, D) and integer labels
    (N,). The hidden weights are N(0, 1/D), drawn from ``generator`` (on the CPU).
    ``val`` is an optional validation set ``(x_val, y_val)``. ``ridge`` is one penalty,
    or a grid of them: then every draw keeps the penalty of lowest validation error.
    """
    check_int(draws, "draws", minimum=1)
    for width in widths:
        check_int(width, "width", minimum=1)
    ridges = (ridge,) if isinstance(ridge, (int, float)) else tuple(ridge)
    if not ridges:
        raise ValueError("ridge must be a number or a non-empty grid, got an empty one")
    if len(ridges) > 1 and val is None:
        raise ValueError(f"a grid of {len(ridges)} ridge penalties needs a val set")
    x_train, y_train, x_test, y_test = data
    labels = (y_train, y_test) if val is None else (y_train, y_test, val[1])
    n_classes = int(max(y.max() for y in labels)) + 1

    def one_hot(y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(y, n_classes).to(x_train.dtype)

    fit_data = (x_train, one_hot(y_train), x_test, y_test, one_hot(y_test))
    val_data = None if val is None else (val[0], one_hot(val[1]))
    keys = ("train_mse", "test_mse", "test_error", "norm", "val_mse", "ridge")
    rows = {key: [] for key in keys}
    for width in widths:
        runs = {key: [] for key in keys}
        for _ in range(draws):
            # (p, D), drawn on the CPU so that every device sees the same weights
            weight = torch.randn(
                width, x_train.shape[1], generator=generator, dtype=x_train.dtype
            ) / math.sqrt(x_train.shape[1])
            scores = _fit_one_draw(
                weight.to(x_train.device), fit_data, val_data, ridges
            )
            for key in keys:
                runs[key].append(scores[key])
        for key in keys:
            rows[key].append(float(torch.tensor(runs[key]).median()))
    return SweepResult(tuple(widths), *(tuple(rows[key]) for key in keys))
