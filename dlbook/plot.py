"""The figure helpers chapters share: training curves, decision boundaries and image
grids.

Every figure has a white face colour and dark-grey ink, so it reads the same on the
book's light and dark themes. Each function returns the matplotlib ``Figure`` and draws
into ``ax`` when one is given.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence, Union

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap

from dlbook.train import History
from dlbook.utils import check_positive_int, check_real

COLORS = plt.get_cmap("tab10").colors  # one colour per class or per run
INK = "#333333"


def new_figure(ncols: int = 1, width: float = 5.0, height: float = 3.5):
    """A figure with ``ncols`` axes side by side, white background."""
    check_positive_int(ncols, "ncols")
    check_real(width, "width", 0.0, low_open=True)
    check_real(height, "height", 0.0, low_open=True)
    fig, axes = plt.subplots(
        1, ncols, figsize=(width * ncols, height), facecolor="white", squeeze=False
    )
    return fig, list(axes[0])


def _as_histories(histories) -> dict[str, History]:
    if isinstance(histories, History):
        return {"": histories}
    if isinstance(histories, Mapping) and all(
        isinstance(h, History) for h in histories.values()
    ):
        return dict(histories)
    raise TypeError(
        f"expected a History or a dict of name -> History, got "
        f"{type(histories).__name__}"
    )


def training_curves(
    histories: Union[History, Mapping[str, History]],
    *,
    accuracy: bool = True,
    log_loss: bool = False,
    axes: Sequence[plt.Axes] | None = None,
) -> plt.Figure:
    """Loss per epoch (training solid, validation dashed) and, when ``accuracy`` is true
    and the runs are classification, validation accuracy, for one run or a dict of named
    runs."""
    runs = _as_histories(histories)
    show_acc = accuracy and any(
        h.val_acc and not math.isnan(h.val_acc[0]) for h in runs.values()
    )
    if axes is None:
        fig, axes = new_figure(2 if show_acc else 1)
    fig = axes[0].figure
    for color, (name, h) in zip(COLORS * 10, runs.items()):
        epochs = np.arange(1, len(h.train_loss) + 1)
        label = f"{name} " if name else ""
        axes[0].plot(epochs, h.train_loss, color=color, label=f"{label}train")
        if h.val_loss:
            axes[0].plot(
                epochs, h.val_loss, "--", color=color, label=f"{label}validation"
            )
        if show_acc and h.val_acc:
            axes[1].plot(
                epochs,
                100 * np.asarray(h.val_acc),
                "--",
                color=color,
                label=f"{label}validation",
            )
    axes[0].set_ylabel("loss")
    if log_loss:
        axes[0].set_yscale("log")
    if show_acc:
        axes[1].set_ylabel("accuracy (%)")
    for ax in axes[: 2 if show_acc else 1]:
        ax.set_xlabel("epoch")
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


@torch.no_grad()
def _grid_classes(
    model_or_fn: Callable, xx: np.ndarray, yy: np.ndarray, device
) -> np.ndarray:
    """The predicted class at every point of a grid (a threshold at 0 for a single
    score)."""
    points = torch.tensor(
        np.c_[xx.ravel(), yy.ravel()], dtype=torch.float32, device=device
    )
    was_training = getattr(model_or_fn, "training", None)
    if was_training is not None:
        model_or_fn.eval()
    scores = model_or_fn(points)
    if was_training:
        model_or_fn.train()
    scores = torch.as_tensor(scores).float()
    classes = (
        scores.argmax(dim=1)
        if scores.dim() == 2 and scores.shape[1] > 1
        else (scores.reshape(-1) > 0).long()
    )
    return classes.cpu().numpy().reshape(xx.shape)


def decision_boundary(
    model_or_fn: Callable,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    ax: plt.Axes | None = None,
    resolution: int = 200,
    margin: float = 0.5,
    title: str | None = None,
) -> plt.Figure:
    """Shade the plane by the class ``model_or_fn`` predicts and scatter the points on
    top.

    Args:
        model_or_fn: maps points (N, 2) to class scores (N, C) or to one score (N,) or
            (N, 1), read as class 1 when positive. A module is evaluated in eval mode on
            its device.
        x: points, shape (N, 2). y: their integer classes, shape (N,).
    """
    x, y = torch.as_tensor(x).cpu(), torch.as_tensor(y).cpu()
    if x.dim() != 2 or x.shape[1] != 2 or y.shape != (len(x),):
        raise ValueError(
            f"x must be (N, 2) and y (N,), got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    params = (
        list(model_or_fn.parameters()) if hasattr(model_or_fn, "parameters") else []
    )
    device = params[0].device if params else torch.device("cpu")
    points, labels = x.float().numpy(), y.numpy()
    lo, hi = points.min(axis=0) - margin, points.max(axis=0) + margin
    xx, yy = np.meshgrid(
        np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution)
    )
    classes = _grid_classes(model_or_fn, xx, yy, device)
    n_classes = int(max(classes.max(), labels.max()) + 1)
    if ax is None:
        fig, (ax,) = new_figure(1, width=4.5, height=4.0)
    light = ListedColormap([_lighten(c) for c in COLORS[:n_classes]])
    ax.contourf(xx, yy, classes, levels=np.arange(n_classes + 1) - 0.5, cmap=light)
    ax.scatter(
        points[:, 0],
        points[:, 1],
        c=[COLORS[int(c)] for c in labels],
        s=12,
        edgecolors="white",
        linewidths=0.4,
    )
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if title:
        ax.set_title(title)
    return ax.figure


def _lighten(color: Sequence[float], amount: float = 0.6) -> tuple[float, float, float]:
    """Mix a colour with white, for the background regions."""
    return tuple(c + (1 - c) * amount for c in color[:3])


def image_grid(
    images: torch.Tensor,
    labels: Sequence | None = None,
    ncols: int = 10,
    *,
    predictions: Sequence | None = None,
    size: float = 1.0,
    cmap: str = "gray_r",
    vmin: float | None = None,
    vmax: float | None = None,
) -> plt.Figure:
    """Show grey-scale images in a grid, each titled with its label (and prediction, red
    when wrong). ``images`` is (N, H, W), (N, 1, H, W) or flat (N, H*W) with square
    images. ``vmin`` and ``vmax`` fix the colour scale shared by all images (default:
    each its own)."""
    images = torch.as_tensor(images).detach().cpu().float()
    if images.dim() == 2:
        side = math.isqrt(images.shape[1])
        if side * side != images.shape[1]:
            raise ValueError(
                f"flat images must have a square number of pixels, got "
                f"{images.shape[1]}"
            )
        images = images.view(-1, side, side)  # (N, H, W)
    elif images.dim() == 4 and images.shape[1] == 1:
        images = images[:, 0]  # (N, H, W)
    if images.dim() != 3 or len(images) == 0:
        raise ValueError(
            f"images must be (N, H, W), (N, 1, H, W) or (N, H*W), got "
            f"{tuple(images.shape)}"
        )
    check_positive_int(ncols, "ncols")
    check_real(size, "size", 0.0, low_open=True)
    for name, seq in (("labels", labels), ("predictions", predictions)):
        if seq is not None and len(seq) < len(images):
            raise ValueError(
                f"{name} must have one entry per image ({len(images)}), got {len(seq)}"
            )
    n, ncols = len(images), min(ncols, len(images))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(size * ncols, size * nrows * 1.15),
        facecolor="white",
        squeeze=False,
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i].numpy(), cmap=cmap, vmin=vmin, vmax=vmax)
        title, color = _image_title(i, labels, predictions)
        if title:
            ax.set_title(title, fontsize=9, color=color)
    fig.tight_layout()
    return fig


def _image_title(i: int, labels, predictions) -> tuple[str, str]:
    label = None if labels is None else int(labels[i])
    if predictions is None:
        return ("" if label is None else str(label)), INK
    pred = int(predictions[i])
    wrong = label is not None and pred != label
    text = f"{label} -> {pred}" if wrong else str(pred)
    return text, ("#c62828" if wrong else INK)


def tile_picture(images: torch.Tensor, cols: int, limit: float = 1.0) -> torch.Tensor:
    """Small images (rows * cols, 1, h, w), row-major, as one (rows (h+1) - 1, cols
    (w+1) - 1) picture with a one-pixel NaN gap between tiles, values clamped to
    [-limit, limit]."""
    check_positive_int(cols, "cols")
    if images.dim() != 4 or images.shape[1] != 1 or len(images) % cols:
        raise ValueError(
            f"images must be (rows * {cols}, 1, h, w), got {tuple(images.shape)}"
        )
    h, w = images.shape[2:]
    tiles = torch.full((len(images) // cols, cols, h + 1, w + 1), float("nan"))
    tiles[:, :, :h, :w] = (
        images.detach().cpu().float().clamp(-limit, limit).view(-1, cols, h, w)
    )
    picture = tiles.permute(0, 2, 1, 3).reshape(
        tiles.shape[0] * (h + 1), cols * (w + 1)
    )
    return picture[:-1, :-1]


def show_tiles(
    images: torch.Tensor,
    column_titles: Sequence[str],
    limit: float = 1.0,
    row_titles: Sequence[str] | None = None,
    ax=None,
):
    """Grey-scale images (rows * cols, 1, h, w), row-major, drawn with one ``imshow``
    (much faster than one axes per image), a title above each column and optionally one
    per row. Values from -limit (white) to limit (black). Returns the Figure."""
    cols = len(column_titles)
    picture = tile_picture(images, cols, limit)
    h, w = images.shape[2:]
    rows = len(images) // cols
    if ax is None:
        _, ax = plt.subplots(
            figsize=(0.75 * cols + (1.2 if row_titles else 0), 0.75 * rows + 0.3),
            facecolor="white",
        )
    ax.imshow(picture.numpy(), cmap="gray_r", vmin=-limit, vmax=limit)
    ax.set_xticks(
        [(w + 1) * c + (w - 1) / 2 for c in range(cols)], column_titles, fontsize=9
    )
    ax.xaxis.tick_top()
    if row_titles is not None:
        if len(row_titles) != rows:
            raise ValueError(f"need {rows} row_titles, got {len(row_titles)}")
        ax.set_yticks(
            [(h + 1) * r + (h - 1) / 2 for r in range(rows)], row_titles, fontsize=9
        )
    else:
        ax.set_yticks([])
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    return ax.figure
