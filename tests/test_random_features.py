"""dlbook.random_features against NumPy's least squares and scikit-learn's ridge regression."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge

from dlbook.random_features import fit_output_layer, random_relu_features, width_sweep


def _data(n, p, k=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(n, p, generator=gen, dtype=torch.float64),
            torch.randn(n, k, generator=gen, dtype=torch.float64))


@pytest.mark.parametrize("n,p", [(40, 10), (20, 20), (10, 40)])
def test_min_norm_matches_numpy_lstsq(n, p):
    features, targets = _data(n, p)
    expected = np.linalg.lstsq(features.numpy(), targets.numpy(), rcond=None)[0]  # min-norm
    assert np.allclose(fit_output_layer(features, targets).numpy(), expected, atol=1e-8)


@pytest.mark.parametrize("n,p", [(40, 10), (10, 40)])
@pytest.mark.parametrize("lam", [1e-3, 1.0])
def test_ridge_matches_sklearn(n, p, lam):
    features, targets = _data(n, p)
    expected = Ridge(alpha=lam, fit_intercept=False, solver="cholesky").fit(
        features.numpy(), targets.numpy()).coef_.T
    assert np.allclose(fit_output_layer(features, targets, lam).numpy(), expected, atol=1e-8)


def test_over_parameterized_fit_is_exact_and_tends_to_min_norm_as_ridge_vanishes():
    features, targets = _data(10, 40)
    beta = fit_output_layer(features, targets)
    assert torch.allclose(features @ beta, targets, atol=1e-10)
    assert torch.allclose(fit_output_layer(features, targets, 1e-9), beta, atol=1e-6)


def test_gradient_descent_from_zero_reaches_the_min_norm_solution():
    features, targets = _data(10, 40)
    beta = torch.zeros(40, 3, dtype=torch.float64)
    lr = 1 / torch.linalg.matrix_norm(features, ord=2).item() ** 2
    for _ in range(20000):
        beta -= lr * features.T @ (features @ beta - targets)
    assert torch.allclose(beta, fit_output_layer(features, targets), atol=1e-8)


def test_features_and_sweep_shapes_and_errors():
    x = torch.randn(5, 4, dtype=torch.float64)
    w = torch.randn(7, 4, dtype=torch.float64)
    assert torch.equal(random_relu_features(x, w), torch.relu(x @ w.T))
    with pytest.raises(ValueError, match="weight"):
        random_relu_features(x, torch.randn(7, 3))
    with pytest.raises(ValueError, match="ridge"):
        fit_output_layer(x, x, ridge=-1.0)
    with pytest.raises(ValueError, match="same N"):
        fit_output_layer(x, x[:3])
    y = torch.tensor([0, 1, 2, 0, 1])
    gen = torch.Generator().manual_seed(0)
    result = width_sweep((x, y, x, y), [2, 5, 9], draws=3, generator=gen)
    assert result.widths == (2, 5, 9) and len(result.test_mse) == 3
    assert result.train_mse[-1] < 1e-12  # 9 features > 5 examples: an exact fit
    with pytest.raises(ValueError, match="draws"):
        width_sweep((x, y, x, y), [2], draws=0, generator=torch.Generator())


def test_sweep_with_a_ridge_grid_keeps_the_penalty_of_lowest_validation_error():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(30, 4, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (30,), generator=gen)
    x_val = torch.randn(20, 4, generator=gen, dtype=torch.float64)
    y_val = torch.randint(0, 3, (20,), generator=gen)
    grid = [1e-2, 1.0, 100.0]
    tuned = width_sweep((x, y, x, y), [8, 50], draws=1, generator=torch.Generator().manual_seed(0),
                        ridge=grid, val=(x_val, y_val))
    singles = [width_sweep((x, y, x, y), [8, 50], draws=1,
                           generator=torch.Generator().manual_seed(0), ridge=lam,
                           val=(x_val, y_val)) for lam in grid]
    for i in range(2):
        best = min(range(len(grid)), key=lambda j: singles[j].val_mse[i])
        assert tuned.ridge[i] == grid[best]
        assert tuned.val_mse[i] == singles[best].val_mse[i]
        assert tuned.test_mse[i] == singles[best].test_mse[i]
    # the validation error is the squared error of one-hot targets, computed by hand
    weight = torch.randn(8, 4, generator=torch.Generator().manual_seed(0),
                         dtype=torch.float64) / 2
    beta = fit_output_layer(random_relu_features(x, weight),
                            torch.nn.functional.one_hot(y, 3).double(), 1.0)
    out = random_relu_features(x_val, weight) @ beta
    expected = ((out - torch.nn.functional.one_hot(y_val, 3)) ** 2).sum(1).mean().item()
    assert np.isclose(singles[1].val_mse[0], expected)
    with pytest.raises(ValueError, match="val set"):
        width_sweep((x, y, x, y), [2], draws=1, generator=gen, ridge=grid)
    assert np.isnan(width_sweep((x, y, x, y), [2], draws=1, generator=gen).val_mse[0])
