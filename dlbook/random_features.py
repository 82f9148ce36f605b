"""Random-features regression, the smallest model that shows double descent (chapter 3).

A network whose hidden layer is random and frozen, ``phi(x) = ReLU(W x)`` with ``p``
units, and whose output layer is fitted by least squares. Below ``p = n`` training
examples the fit is an ordinary least-squares problem; above it there are many exact
fits, and the minimum-norm one is taken, the one that gradient descent started from zero
converges to. Sweeping ``p`` through ``n`` gives the double-descent curve of Belkin et
al. (2019).
"""

from __future__ import annotations

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


def width_sweep(
    data: tuple[torch.Tensor, ...],
    widths: list[int],
    draws: int,
    generator: torch.Generator,
    ridge: float = 0.0,
) -> SweepResult:
    """Fit random-features models of every width to one-hot targets, ``draws`` times
    each.

    ``data`` is ``(x_train, y_train, x_test, y_test)``: inputs (N, D) and integer labels
    (N,). The hidden weights are N(0, 1/D), drawn from ``generator`` (on the CPU).
    """
    check_int(draws, "draws", minimum=1)
    for width in widths:
        check_int(width, "width", minimum=1)
    x_train, y_train, x_test, y_test = data
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    targets = torch.nn.functional.one_hot(y_train, n_classes).to(x_train.dtype)
    test_targets = torch.nn.functional.one_hot(y_test, n_classes).to(x_test.dtype)
    rows = {key: [] for key in ("train_mse", "test_mse", "test_error", "norm")}
    for width in widths:
        runs = {key: [] for key in rows}
        for _ in range(draws):
            weight = (
                torch.randn(
                    width,
                    x_train.shape[1],
                    generator=generator,
                    # (p, D)
                    dtype=x_train.dtype,
                )
                / x_train.shape[1] ** 0.5
            )
            weight = weight.to(x_train.device)
            features = random_relu_features(x_train, weight)  # (N, p)
            beta = fit_output_layer(features, targets, ridge)  # (p, K)
            test_out = random_relu_features(x_test, weight) @ beta  # (N_test, K)
            runs["train_mse"].append(
                (features @ beta - targets).pow(2).sum(1).mean().item()
            )
            runs["test_mse"].append(
                (test_out - test_targets).pow(2).sum(1).mean().item()
            )
            runs["test_error"].append(
                (test_out.argmax(1) != y_test).double().mean().item()
            )
            runs["norm"].append(beta.norm().item())
        for key in rows:
            rows[key].append(float(torch.tensor(runs[key]).median()))
    return SweepResult(
        tuple(widths),
        *(tuple(rows[key]) for key in ("train_mse", "test_mse", "test_error", "norm")),
    )
