"""Box-and-arrow diagrams for the chapters, drawn with matplotlib so they need no image
files.

``unrolled_rnn`` (chapter 5) draws a recurrent network unrolled over time with the
backward flow of backpropagation through time; ``residual_block`` (chapter 4) draws a
plain and a residual block side by side. Each function draws into a given ``Axes`` and
returns it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

FORWARD, BACKWARD = "#333333", "#c62828"


def box(
    ax: plt.Axes,
    center: tuple[float, float],
    text: str,
    width: float = 0.9,
    height: float = 0.5,
    color: str = "#dbe9f6",
) -> None:
    """A rounded box with centred text."""
    x, y = center
    ax.add_patch(
        FancyBboxPatch(
            (x - width / 2, y - height / 2),
            width,
            height,
            boxstyle="round,pad=0.02",
            facecolor=color,
            edgecolor="#555555",
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=10)


def arrow(
    ax: plt.Axes,
    start: tuple[float, float],
    end: tuple[float, float],
    color: str = FORWARD,
    dashed: bool = False,
    label: str | None = None,
    curve: float = 0.0,
) -> None:
    """An arrow from start to end, optionally dashed, curved and labelled at its
    middle."""
    ax.annotate(
        "",
        xy=end,
        xytext=start,
        arrowprops=dict(
            arrowstyle="-|>",
            color=color,
            lw=1.4,
            linestyle="--" if dashed else "-",
            connectionstyle=f"arc3,rad={curve}",
        ),
    )
    if label:
        ax.text(
            (start[0] + end[0]) / 2,
            (start[1] + end[1]) / 2 + 0.12 + abs(curve) * 0.8,
            label,
            ha="center",
            va="bottom",
            fontsize=9,
            color=color,
        )


def _finish(
    ax: plt.Axes, xlim: tuple[float, float], ylim: tuple[float, float]
) -> plt.Axes:
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.axis("off")
    return ax


def unrolled_rnn(ax: plt.Axes, steps: int = 4) -> plt.Axes:
    """Inputs x_t feed states h_t, each state feeds the next, the loss reads h_T; red
    dashed arrows show the gradient flowing back through the Jacobians J_t = dh_t /
    dh_{t-1}."""
    if not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an int >= 2, got {steps!r}")
    xs = [1.6 * t for t in range(steps + 1)]
    box(ax, (xs[0], 1.0), r"$\mathbf{h}_0$", color="#eeeeee")
    for t in range(1, steps + 1):
        name = "T" if t == steps else str(t)
        box(ax, (xs[t], 0.0), rf"$\mathbf{{x}}_{{{name}}}$", color="#fff3cd")
        box(ax, (xs[t], 1.0), rf"$\mathbf{{h}}_{{{name}}}$")
        arrow(ax, (xs[t], 0.25), (xs[t], 0.75))
        arrow(
            ax,
            (xs[t - 1] + 0.45, 1.0),
            (xs[t] - 0.45, 1.0),
            label=r"$W_{hh}$" if t == 1 else None,
        )
        prev = "T" if t == steps else str(t)
        arrow(
            ax,
            (xs[t] - 0.45, 1.3),
            (xs[t - 1] + 0.45, 1.3),
            color=BACKWARD,
            dashed=True,
            label=rf"$J_{{{prev}}}$",
            curve=0.35,
        )
    box(ax, (xs[-1], 2.3), r"$L$", color="#f8d7da")
    arrow(ax, (xs[-1], 1.25), (xs[-1], 2.05))
    ax.text(
        xs[0], 2.3, "forward: black\nbackward: red, dashed", fontsize=9, va="center"
    )
    return _finish(ax, (-0.7, xs[-1] + 0.7), (-0.5, 2.8))


def residual_block(ax: plt.Axes) -> plt.Axes:
    """A plain block (left) and a residual block (right): conv-BN-ReLU-conv-BN, then
    ReLU, with the identity shortcut added before the last ReLU on the right."""
    for x0, title, residual in (
        (0.0, "plain block", False),
        (3.2, "residual block", True),
    ):
        ax.text(x0, 5.3, title, ha="center", fontsize=11)
        box(ax, (x0, 4.8), r"$\mathbf{x}$", width=0.6, height=0.4, color="#fff3cd")
        box(ax, (x0, 4.0), "3x3 conv, BN", width=1.6)
        box(ax, (x0, 3.1), "ReLU", width=1.6)
        box(ax, (x0, 2.2), "3x3 conv, BN", width=1.6)
        box(ax, (x0, 0.6), "ReLU", width=1.6)
        for top, bottom in ((4.6, 4.25), (3.75, 3.35), (2.85, 2.45)):
            arrow(ax, (x0, top), (x0, bottom))
        if residual:
            box(ax, (x0, 1.4), "+", width=0.4, height=0.4, color="#d4edda")
            arrow(ax, (x0, 1.95), (x0, 1.6))
            arrow(ax, (x0, 1.2), (x0, 0.85))
            arrow(ax, (x0 + 0.3, 4.8), (x0 + 0.2, 1.45), curve=-0.55)
            ax.text(x0 + 1.75, 2.6, "identity\nshortcut", fontsize=9, ha="center")
        else:
            arrow(ax, (x0, 1.95), (x0, 0.85))
        arrow(ax, (x0, 0.35), (x0, -0.05))
        ax.text(x0, -0.3, r"$\mathbf{y}$", ha="center", fontsize=11)
    return _finish(ax, (-1.3, 4.9), (-0.6, 5.6))


def transformer_blocks(ax: plt.Axes) -> plt.Axes:
    """A pre-LN encoder block (left) and decoder block (right): every sub-layer reads a
    layer norm of the residual stream (grey, flowing down) and adds its output back to
    it."""
    top = 6.0
    specs = (
        (0.0, "encoder block", ["self-attention"]),
        (4.2, "decoder block", ["masked self-attention", "cross-attention"]),
    )
    for x0, title, attentions in specs:
        stream = x0 - 1.6
        ax.text(x0 - 0.4, top + 0.6, title, ha="center", fontsize=11)
        ax.plot(
            [stream, stream],
            [0.0, top],
            color="#999999",
            lw=8,
            alpha=0.35,
            solid_capstyle="butt",
        )
        ax.text(stream, top + 0.15, "x", ha="center", fontsize=10)
        for i, name in enumerate(attentions + ["MLP"]):
            y = top - 0.8 - 1.7 * i
            box(
                ax, (x0, y + 0.35), "layer norm", width=2.8, height=0.4, color="#eeeeee"
            )
            box(ax, (x0, y - 0.35), name, width=2.8, height=0.5)
            arrow(ax, (stream + 0.08, y + 0.35), (x0 - 1.42, y + 0.35))
            arrow(ax, (x0, y + 0.14), (x0, y - 0.09))
            arrow(ax, (x0 - 1.42, y - 0.35), (stream + 0.12, y - 0.75))
            ax.text(stream, y - 0.8, "+", ha="center", va="center", fontsize=14)
            if name == "cross-attention":
                arrow(ax, (x0 + 2.1, y - 0.35), (x0 + 1.42, y - 0.35))
                ax.text(x0 + 2.15, y - 0.35, "encoder\noutput", fontsize=8, va="center")
        arrow(ax, (stream, 0.05), (stream, -0.3))
        ax.text(stream, -0.55, "to the next block", ha="center", fontsize=9)
    return _finish(ax, (-2.2, 7.2), (-0.8, 6.9))
