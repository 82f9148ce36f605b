"""dlbook.plot: the shared figures draw what they promise and refuse bad input."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from dlbook.plot import decision_boundary, image_grid, training_curves  # noqa: E402
from dlbook.train import History  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def history(offset=0.0):
    return History(train_loss=[1.0 + offset, 0.5, 0.3], train_acc=[0.5, 0.8, 0.9],
                   val_loss=[1.1, 0.6, 0.5], val_acc=[0.4, 0.7, 0.8 + offset], seconds=1.0)


def test_training_curves_one_run_draws_loss_and_accuracy():
    fig = training_curves(history())
    loss_ax, acc_ax = fig.axes
    assert [len(line.get_xdata()) for line in loss_ax.lines] == [3, 3]
    np.testing.assert_allclose(acc_ax.lines[0].get_ydata(), [40, 70, 80])
    assert loss_ax.get_xlabel() == "epoch" and acc_ax.get_ylabel() == "accuracy (%)"
    assert fig.get_facecolor()[:3] == (1.0, 1.0, 1.0)


def test_training_curves_compares_named_runs():
    fig = training_curves({"sgd": history(), "adam": history(0.1)}, log_loss=True)
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert labels == ["sgd train", "sgd validation", "adam train", "adam validation"]
    assert fig.axes[0].get_yscale() == "log"


def test_training_curves_regression_has_no_accuracy_panel():
    nan = math.nan
    fig = training_curves(History([1.0, 0.5], [nan, nan], [1.2, 0.7], [nan, nan]))
    assert len(fig.axes) == 1


def test_training_curves_rejects_other_things():
    with pytest.raises(TypeError, match="History or a dict"):
        training_curves([history()])


def test_decision_boundary_shades_the_predicted_classes():
    x = torch.tensor([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 1, 1])
    fig = decision_boundary(lambda p: p[:, :1], x, y, resolution=50)  # class 1 where x1 > 0
    ax = fig.axes[0]
    assert ax.get_xlabel() == "$x_1$" and len(ax.collections) >= 2
    model = nn.Linear(2, 3)
    model.train()
    decision_boundary(model, x, torch.tensor([0, 1, 2]), resolution=20)
    assert model.training  # put back in training mode


def test_decision_boundary_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"x must be \(N, 2\) and y \(N,\)"):
        decision_boundary(lambda p: p, torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize("shape", [(12, 64), (12, 8, 8), (12, 1, 8, 8)])
def test_image_grid_accepts_three_layouts(shape):
    images = torch.rand(shape)
    fig = image_grid(images, labels=list(range(12)), ncols=5)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 15 and len(shown) == 12
    assert shown[0].images[0].get_array().shape == (8, 8)
    assert shown[3].get_title() == "3"


def test_image_grid_marks_wrong_predictions():
    fig = image_grid(torch.rand(3, 16), labels=[1, 2, 3], predictions=[1, 0, 3])
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["1", "2 -> 0", "3"]
    assert fig.axes[1].title.get_color() != fig.axes[0].title.get_color()


def test_image_grid_rejects_bad_input():
    with pytest.raises(ValueError, match="square number of pixels"):
        image_grid(torch.rand(2, 10))
    with pytest.raises(ValueError, match=r"images must be \(N, H, W\)"):
        image_grid(torch.rand(2, 3, 4, 4))
    with pytest.raises(ValueError, match="ncols must be a positive int"):
        image_grid(torch.rand(2, 4, 4), ncols=0)
