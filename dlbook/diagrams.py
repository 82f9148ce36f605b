"""Box-and-arrow diagrams for the chapters, drawn with matplotlib so they need no image
files.

``unrolled_rnn`` (chapter 5) draws a recurrent network unrolled over time with the
backward flow of backpropagation through time; ``residual_block`` (chapter 4) draws a
plain and a residual block side by side, ``dense_block`` (chapter 4) DenseNet's block;
``transformer_blocks`` and ``norm_placement`` (chapter 6) draw Transformer blocks. Each
function draws into a given ``Axes`` and returns it.
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


def _stream(ax: plt.Axes, x: float, y_top: float, y_bottom: float) -> None:
    """The residual stream: a thick grey vertical band."""
    ax.plot(
        [x, x],
        [y_bottom, y_top],
        color="#999999",
        lw=8,
        alpha=0.35,
        solid_capstyle="butt",
    )


def norm_placement(ax: plt.Axes) -> plt.Axes:
    """A post-LN encoder block (left: the layer norms sit on the residual stream, after
    each sum) and a pre-LN one (right: they sit on the branches, before each
    sub-layer)."""
    top = 6.0
    x, ln = r"\mathbf{x}", r"\mathrm{LN}"
    titles = {
        0.0: rf"post-LN: ${x} \leftarrow {ln}({x} + F({x}))$",
        5.0: rf"pre-LN: ${x} \leftarrow {x} + F({ln}({x}))$",
    }
    for x0, title in titles.items():
        stream, branch, post = x0, x0 + 2.2, x0 == 0.0
        ax.text(x0 + 1.0, top + 0.6, title, ha="center", fontsize=11)
        _stream(ax, stream, top, 0.0)
        ax.text(stream, top + 0.15, r"$\mathbf{x}$", ha="center", fontsize=11)
        for i, name in enumerate(["self-attention", "MLP"]):
            y = top - 0.7 - 2.6 * i
            if post:
                box(ax, (branch, y - 0.3), name, width=2.4, height=0.5)
                arrow(ax, (stream + 0.08, y), (branch - 1.22, y - 0.2))
            else:
                box(ax, (branch, y), r"$\mathrm{LN}$", width=2.4, height=0.4,
                    color="#eeeeee")  # fmt: skip
                box(ax, (branch, y - 0.7), name, width=2.4, height=0.5)
                arrow(ax, (stream + 0.08, y), (branch - 1.22, y))
                arrow(ax, (branch, y - 0.2), (branch, y - 0.45))
            out_y = y - 0.3 if post else y - 0.7
            arrow(ax, (branch - 1.22, out_y), (stream + 0.12, y - 1.05))
            ax.text(stream, y - 1.1, "+", ha="center", va="center", fontsize=14)
            if post:  # the norm sits on the stream itself
                box(ax, (stream, y - 1.75), r"$\mathrm{LN}$", width=0.8, height=0.4,
                    color="#f8d7da")  # fmt: skip
        if not post:
            box(ax, (stream + 0.4, 0.35), r"$\mathrm{LN}$ once, after the last block",
                width=4.0, height=0.4, color="#eeeeee")  # fmt: skip
        arrow(ax, (stream, 0.05 if post else 0.12), (stream, -0.3))
    ax.text(1.0, -0.75, "every path from input to output\npasses 2 norms per block",
            ha="center", fontsize=9)  # fmt: skip
    ax.text(6.0, -0.75, "an identity path from input\nto the final norm",
            ha="center", fontsize=9)  # fmt: skip
    return _finish(ax, (-1.0, 8.6), (-1.3, 6.9))


def dense_block(ax: plt.Axes, n_layers: int = 3) -> plt.Axes:
    """A dense block: layer l reads the concatenation [x_0, ..., x_{l-1}] of the block's
    input and every earlier layer's output, and the block returns all of them."""
    if not isinstance(n_layers, int) or n_layers < 1:
        raise ValueError(f"n_layers must be an int >= 1, got {n_layers!r}")
    xs = [2.2 * i for i in range(n_layers + 1)]
    box(ax, (xs[0], 0.0), r"$\mathbf{x}_0$", width=0.7, color="#fff3cd")
    for i in range(1, n_layers + 1):
        x = xs[i]
        box(ax, (x - 0.9, 1.6), r"$[\cdot]$", width=0.5, height=0.4, color="#d4edda")
        box(ax, (x, 1.6), rf"$H_{{{i}}}$", width=0.8)
        arrow(ax, (x - 0.65, 1.6), (x - 0.4, 1.6))
        box(ax, (x, 0.0), rf"$\mathbf{{x}}_{{{i}}}$", width=0.7, color="#fff3cd")
        arrow(ax, (x, 1.35), (x, 0.25))
        for j in range(i):  # every earlier feature map feeds the concatenation
            arrow(ax, (xs[j] + 0.2, 0.25), (x - 0.95, 1.38), curve=-0.25)
    ax.text(xs[-1] / 2, -0.8,
            r"$\mathbf{x}_\ell = H_\ell([\mathbf{x}_0, \ldots, \mathbf{x}_{\ell-1}])$;"
            r" the block returns $[\mathbf{x}_0, \ldots, \mathbf{x}_L]$,"
            r" $C + Lk$ channels", ha="center", fontsize=10)  # fmt: skip
    ax.text(xs[1] - 0.9, 2.2, r"$[\cdot]$: concatenate channels", fontsize=9)
    return _finish(ax, (-0.8, xs[-1] + 0.8), (-1.2, 2.6))
