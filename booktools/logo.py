"""Draw the book's logo and favicon from one of its own computations.

The logo is chapter 1's valley: the loss surface q(x, y) = (1 - x)^2 + 5 (y - x^2)^2 as
contour lines, and the path gradient descent takes down it with learning rate 0.03, each
gradient computed by the book's reverse-mode engine (``dlbook.autograd.grad_reverse``).

Usage: ``python -m booktools.logo`` writes ``_static/logo.svg`` (the sidebar),
``_static/logo-dark.svg`` (the same for the dark theme) and ``_static/favicon.png`` (64 x 64);
all are committed, so the build does not need to run this. Run it again only to change the
drawing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from booktools import ROOT  # noqa: E402
from dlbook.autograd import grad_reverse  # noqa: E402

STATIC = ROOT / "_static"
INK, ACCENT = "#2b4c7e", "#e0712b"  # contour lines, the descent path
INK_DARK = "#9db8e0"  # contour lines on the dark theme


def q(x, y):
    """Chapter 1's valley: its minimum is at (1, 1)."""
    return (1 - x) ** 2 + 5 * (y - x**2) ** 2


def descent_path(lr: float = 0.03, steps: int = 400, start=(-1.5, 2.0)) -> np.ndarray:
    """Points of gradient descent on q, gradients from dlbook's engine; shape (steps + 1, 2)."""
    point, path = list(start), [list(start)]
    for _ in range(steps):
        _, grad = grad_reverse(q, point)
        point = [p - lr * g for p, g in zip(point, grad)]
        path.append(point)
    return np.array(path)


def draw(size_inches: float, line_width: float, levels: int, ink: str = INK) -> plt.Figure:
    """The valley's contours and the descent path on a transparent, square canvas."""
    xs, ys = np.meshgrid(np.linspace(-2.0, 2.0, 300), np.linspace(-1.0, 3.0, 300))
    fig = plt.figure(figsize=(size_inches, size_inches))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.contour(xs, ys, np.log1p(q(xs, ys)), levels=levels, colors=ink,
               linewidths=line_width * 0.5, alpha=0.8)
    path = descent_path()
    ax.plot(path[:, 0], path[:, 1], color=ACCENT, linewidth=line_width, solid_capstyle="round")
    ax.plot(*path[0], "o", color=ACCENT, markersize=line_width * 2.5)
    ax.plot(1, 1, "*", color=ACCENT, markersize=line_width * 5)
    ax.set_xlim(-2.0, 2.0)
    ax.set_ylim(-1.0, 3.0)
    ax.set_axis_off()
    return fig


def main() -> int:
    STATIC.mkdir(exist_ok=True)
    plt.rcParams["svg.hashsalt"] = "dlbook"  # the same SVG every time
    fig = draw(2.0, 2.5, 12)
    fig.savefig(STATIC / "logo.svg", transparent=True, metadata={"Date": None})
    plt.close(fig)
    fig = draw(2.0, 2.5, 12, ink=INK_DARK)
    fig.savefig(STATIC / "logo-dark.svg", transparent=True, metadata={"Date": None})
    plt.close(fig)
    fig = draw(1.0, 3.0, 6)
    fig.savefig(STATIC / "favicon.png", dpi=64, transparent=True)
    plt.close(fig)
    for name in ("logo.svg", "logo-dark.svg", "favicon.png"):
        print(f"wrote {Path(STATIC / name).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
