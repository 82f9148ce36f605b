"""Box-and-arrow diagrams for the chapters, drawn with matplotlib so they need no image
files.

``unrolled_rnn`` (chapter 5) draws a recurrent network unrolled over time with the
backward flow of backpropagation through time, ``lstm_cell`` (chapter 5) one LSTM step
and ``encoder_decoder`` (chapter 5) the LSTM encoder-decoder; ``residual_block``
(chapter 4) draws a plain and a residual block side by side, ``dense_block`` (chapter
4) DenseNet's block; ``transformer_blocks`` and ``norm_placement`` (chapter 6) draw
Transformer blocks. Each function draws into a given ``Axes`` and returns it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import Circle, FancyBboxPatch

FORWARD, BACKWARD = "#333333", "#c62828"
NODE_RADIUS = 0.22  # the circles of lstm_cell's element-wise operations
GATE_SIZE = (0.8, 0.5)  # width and height of lstm_cell's non-linearities


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
        (4.6, "decoder block", ["masked self-attention", "cross-attention"]),
    )
    for x0, title, attentions in specs:
        stream = x0 - 2.2
        ax.text(x0 - 0.4, top + 0.6, title, ha="center", fontsize=11)
        ax.plot(
            [stream, stream],
            [0.0, top],
            color="#999999",
            lw=8,
            alpha=0.35,
            solid_capstyle="butt",
        )
        ax.text(stream, top + 0.15, r"$\mathbf{x}$", ha="center", fontsize=11)
        for i, name in enumerate(attentions + ["MLP"]):
            y = top - 0.8 - 1.7 * i
            box(
                ax, (x0, y + 0.35), "layer norm", width=2.8, height=0.4, color="#eeeeee"
            )
            box(ax, (x0, y - 0.35), name, width=2.8, height=0.5)
            arrow(ax, (stream + 0.08, y + 0.35), (x0 - 1.42, y + 0.35))
            arrow(ax, (x0, y + 0.14), (x0, y - 0.09))
            arrow(ax, (x0 - 1.42, y - 0.35), (stream + 0.2, y - 0.35))
            ax.add_patch(  # the residual addition, on the stream
                Circle((stream, y - 0.35), 0.17, facecolor="white", edgecolor="black")
            )
            ax.text(stream, y - 0.35, "+", ha="center", va="center", fontsize=12)
            if name == "cross-attention":
                arrow(ax, (x0 + 2.1, y - 0.35), (x0 + 1.42, y - 0.35))
                ax.text(x0 + 2.15, y - 0.35, "encoder\noutput", fontsize=8, va="center")
        arrow(ax, (stream, 0.05), (stream, -0.3))
        ax.text(stream, -0.55, "to the next block", ha="center", fontsize=9)
    return _finish(ax, (-2.8, 7.6), (-0.8, 6.9))


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
        # pre-LN's stream ends at the final norm's box, which then sits below it
        _stream(ax, stream, top, 0.0 if post else 0.6)
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
        if not post:  # the final norm: on the stream's axis, below its end
            arrow(ax, (stream, 0.6), (stream, 0.57))
            box(ax, (stream, 0.35), r"$\mathrm{LN}$", width=0.8, height=0.4,
                color="#eeeeee")  # fmt: skip
            ax.text(stream + 0.55, 0.35, "once, after the last block", va="center",
                    fontsize=9)  # fmt: skip
        arrow(ax, (stream, 0.05 if post else 0.15), (stream, -0.3))
    ax.text(1.0, -0.75, "every path from input to output\npasses 2 norms per block",
            ha="center", fontsize=9)  # fmt: skip
    ax.text(6.0, -0.75, "an identity path from input\nto the final norm",
            ha="center", fontsize=9)  # fmt: skip
    return _finish(ax, (-1.0, 8.6), (-1.3, 6.9))


def dense_block(ax: plt.Axes, n_layers: int = 3) -> plt.Axes:
    """A dense block: layer l reads the concatenation [x_0, ..., x_{l-1}] of the block's
    input and every earlier layer's output, and the block returns all of them.

    Each x_j runs down to a lane of its own below the row of outputs, and each
    concatenation reads the lanes through one riser; lines meet only at the dots where a
    lane joins a riser, so no arrow crosses a box.
    """
    if not isinstance(n_layers, int) or n_layers < 1:
        raise ValueError(f"n_layers must be an int >= 1, got {n_layers!r}")
    xs = [2.2 * i for i in range(n_layers + 1)]
    risers = [x - 0.9 for x in xs]  # the x of layer i's concatenation box and riser
    # lane j lies below lane j + 1, so the drop from x_j crosses no other lane
    lanes = [-0.6 - 0.3 * (n_layers - 1 - j) for j in range(n_layers)]
    line = dict(color=FORWARD, lw=1.4, solid_capstyle="round")
    box(ax, (xs[0], 0.0), r"$\mathbf{x}_0$", width=0.7, color="#fff3cd")
    for j, lane in enumerate(lanes):  # x_j feeds every later concatenation
        ax.plot([xs[j], xs[j], risers[-1]], [-0.25, lane, lane], **line)
        ax.plot(risers[j + 1 :], [lane] * (n_layers - j), "o", color=FORWARD, ms=4)
    for i in range(1, n_layers + 1):
        x = xs[i]
        arrow(ax, (risers[i], lanes[0]), (risers[i], 1.38))
        box(ax, (risers[i], 1.6), r"$[\cdot]$", width=0.5, height=0.4, color="#d4edda")
        box(ax, (x, 1.6), rf"$H_{{{i}}}$", width=0.8)
        arrow(ax, (x - 0.65, 1.6), (x - 0.4, 1.6))
        box(ax, (x, 0.0), rf"$\mathbf{{x}}_{{{i}}}$", width=0.7, color="#fff3cd")
        arrow(ax, (x, 1.35), (x, 0.25))
    ax.text(xs[-1] / 2, lanes[0] - 0.55,
            r"$\mathbf{x}_\ell = H_\ell([\mathbf{x}_0, \ldots, \mathbf{x}_{\ell-1}])$;"
            r" the block returns $[\mathbf{x}_0, \ldots, \mathbf{x}_L]$,"
            r" $C + Lk$ channels", ha="center", fontsize=10)  # fmt: skip
    ax.text(risers[1] - 0.25, 2.1, r"$[\cdot]$: concatenate channels", fontsize=9)
    return _finish(ax, (-0.8, xs[-1] + 0.8), (lanes[0] - 0.9, 2.4))


def _node(ax: plt.Axes, center: tuple[float, float], text: str) -> None:
    """A small circle for an element-wise operation (+ or the product ⊙)."""
    ax.add_patch(Circle(center, NODE_RADIUS, facecolor="#d4edda",
                        edgecolor="#555555", zorder=3))  # fmt: skip
    ax.text(*center, text, ha="center", va="center", fontsize=12, zorder=4)


def _gate(ax: plt.Axes, center: tuple[float, float], text: str) -> None:
    """A gate's non-linearity: a small box with its function, in 12 pt."""
    x, y = center
    ax.add_patch(
        FancyBboxPatch(
            (x - GATE_SIZE[0] / 2, y - GATE_SIZE[1] / 2),
            *GATE_SIZE,
            boxstyle="round,pad=0.02",
            facecolor="#fde2c8",
            edgecolor="#555555",
            zorder=3,
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=12, zorder=4)


def _path(ax: plt.Axes, points: list[tuple[float, float]]) -> None:
    """A polyline through points whose last segment ends in an arrowhead."""
    xs, ys = zip(*points)
    if len(points) > 2:
        ax.plot(xs[:-1], ys[:-1], color=FORWARD, lw=1.4, solid_capstyle="round")
    arrow(ax, points[-2], points[-1])


def lstm_cell(ax: plt.Axes) -> plt.Axes:
    """One LSTM step: the cell state runs along the top, c_{t-1} -> (⊙ f_t) -> (+ i_t ⊙
    g_t) -> c_t; the gates f_t, i_t, o_t (sigmoid) and the candidate g_t (tanh) all read
    h_{t-1} and x_t; h_t = o_t ⊙ tanh(c_t) leaves on the right."""
    r, top, gate_y, bus_y = NODE_RADIUS, 3.4, 1.0, 0.0
    gate_h = GATE_SIZE[1]
    x_f, x_i, x_g, x_o, x_h = 1.3, 2.4, 3.5, 4.8, 6.0
    # the cell's outline, behind everything: lines enter and leave through it
    outline = FancyBboxPatch((0.0, -0.55), 6.8, 4.4, boxstyle="round,pad=0.05",
                             facecolor="#f5f5f5", edgecolor="#bbbbbb")  # fmt: skip
    outline.set(zorder=0, gid="outline")  # tests/test_diagrams.py skips it
    ax.add_patch(outline)
    mem = dict(color=FORWARD, lw=2.6, solid_capstyle="butt")
    # the cell state: c_{t-1} -> forget product -> sum -> c_t
    ax.text(-0.75, top, r"$\mathbf{c}_{t-1}$", ha="right", va="center", fontsize=12)
    ax.plot([-0.7, x_f - r], [top, top], **mem)
    ax.plot([x_f + r, x_g - r], [top, top], **mem)
    ax.annotate("", xy=(7.4, top), xytext=(x_g + r, top),
                arrowprops=dict(arrowstyle="-|>", color=FORWARD, lw=2.6))  # fmt: skip
    ax.text(7.5, top, r"$\mathbf{c}_t$", ha="left", va="center", fontsize=12)
    _node(ax, (x_f, top), r"$\odot$")
    _node(ax, (x_g, top), r"$+$")
    # the four gates, each reading [h_{t-1}, x_t] from the bus below
    sigma, tanh = r"$\sigma$", r"$\tanh$"
    for x, fn in ((x_f, sigma), (x_i, sigma), (x_g, tanh), (x_o, sigma)):
        _gate(ax, (x, gate_y), fn)
        arrow(ax, (x, bus_y), (x, gate_y - gate_h / 2 - 0.02))
    ax.text(-0.75, bus_y, r"$\mathbf{h}_{t-1}$", ha="right", va="center", fontsize=12)
    ax.plot([-0.7, x_o], [bus_y, bus_y], color=FORWARD, lw=1.4)
    ax.text(0.4, -1.05, r"$\mathbf{x}_t$", ha="center", va="top", fontsize=12)
    ax.plot([0.4, 0.4], [-1.0, bus_y], color=FORWARD, lw=1.4)
    ax.plot([0.4, x_f, x_i, x_g], [bus_y] * 4, "o", color=FORWARD, ms=4)
    # gate outputs: f_t up to the forget product, i_t and g_t meet, o_t to the output
    top_gate = gate_y + gate_h / 2
    arrow(ax, (x_f, top_gate), (x_f, top - r))
    ax.text(x_f + 0.1, 2.2, r"$\mathbf{f}_t$", va="center", fontsize=12)
    prod_y = 2.3
    _node(ax, (x_g, prod_y), r"$\odot$")
    _path(ax, [(x_i, top_gate), (x_i, prod_y), (x_g - r, prod_y)])
    ax.text(x_i - 0.1, 1.8, r"$\mathbf{i}_t$", ha="right", va="center", fontsize=12)
    arrow(ax, (x_g, top_gate), (x_g, prod_y - r))
    ax.text(x_g + 0.1, 1.7, r"$\mathbf{g}_t$", va="center", fontsize=12)
    arrow(ax, (x_g, prod_y + r), (x_g, top - r))
    _lstm_output(ax, (x_o, top_gate), x_h, top)
    return _finish(ax, (-1.7, 8.2), (-1.6, 4.05))


def _lstm_output(
    ax: plt.Axes, o_gate: tuple[float, float], x_h: float, top: float
) -> None:
    """lstm_cell's output, h_t = o_t ⊙ tanh(c_t): c_t drops from the cell's path at
    height top through tanh to a product with o_t, read from the top of its gate."""
    r, gate_h, tanh_y, out_y = NODE_RADIUS, GATE_SIZE[1], 2.45, 1.5
    x_o, top_gate = o_gate
    _gate(ax, (x_h, tanh_y), r"$\tanh$")
    arrow(ax, (x_h, top), (x_h, tanh_y + gate_h / 2 + 0.02))
    ax.plot([x_h], [top], "o", color=FORWARD, ms=4)
    _node(ax, (x_h, out_y), r"$\odot$")
    arrow(ax, (x_h, tanh_y - gate_h / 2), (x_h, out_y + r))
    _path(ax, [(x_o, top_gate), (x_o, out_y), (x_h - r, out_y)])
    ax.text(x_o + 0.1, 1.8, r"$\mathbf{o}_t$", va="bottom", fontsize=12)
    arrow(ax, (x_h + r, out_y), (7.4, out_y))
    ax.text(7.5, out_y, r"$\mathbf{h}_t$", ha="left", va="center", fontsize=12)


def encoder_decoder(ax: plt.Axes, source: str = "idg") -> plt.Axes:
    """The LSTM encoder-decoder, training on reversal with teacher forcing: the encoder
    reads the source, its final state (h, c) is the only link to the decoder, and the
    decoder's input at step t is the true target token t - 1, starting with BOS."""
    if not isinstance(source, str) or not source:
        raise ValueError(f"source must be a non-empty string, got {source!r}")
    target = source[::-1]
    step, cell_y, in_y, out_y = 1.5, 1.0, -0.3, 2.3
    enc_xs = [step * s for s in range(len(source))]
    dec_xs = [enc_xs[-1] + 2.7 + step * t for t in range(len(target) + 1)]
    cell = dict(width=1.0, height=0.55)
    token = dict(width=0.8, height=0.45)
    for x, letter in zip(enc_xs, source):
        box(ax, (x, cell_y), "LSTM", **cell)
        box(ax, (x, in_y), letter, color="#fff3cd", **token)
        arrow(ax, (x, in_y + 0.23), (x, cell_y - 0.28))
    for x, (read, write) in zip(dec_xs, zip(["BOS", *target], [*target, "EOS"])):
        box(ax, (x, cell_y), "LSTM", color="#d4edda", **cell)
        box(ax, (x, in_y), read, color="#fff3cd", **token)
        arrow(ax, (x, in_y + 0.23), (x, cell_y - 0.28))
        box(ax, (x, out_y), write, color="#f8d7da", **token)
        arrow(ax, (x, cell_y + 0.28), (x, out_y - 0.23))
    for xs in (enc_xs, dec_xs):  # the state (h, c) passed along each network
        for a, b in zip(xs, xs[1:]):
            arrow(ax, (a + 0.5, cell_y), (b - 0.5, cell_y))
    # the bridge: the encoder's final state is the decoder's initial state
    arrow(ax, (enc_xs[-1] + 0.5, cell_y), (dec_xs[0] - 0.5, cell_y))
    bridge_x = (enc_xs[-1] + dec_xs[0]) / 2
    ax.text(bridge_x, cell_y + 0.12, "context", ha="center", va="bottom", fontsize=10)
    ax.text(bridge_x, cell_y - 0.12, r"$(\mathbf{h}_S, \mathbf{c}_S)$", ha="center",
            va="top", fontsize=10)  # fmt: skip
    ax.text((enc_xs[0] + enc_xs[-1]) / 2, out_y + 0.55, "encoder", ha="center",
            fontsize=11)  # fmt: skip
    ax.text((dec_xs[0] + dec_xs[-1]) / 2, out_y + 0.55, "decoder", ha="center",
            fontsize=11)  # fmt: skip
    ax.text((enc_xs[0] + enc_xs[-1]) / 2, in_y - 0.45, "source", ha="center",
            va="top", fontsize=10)  # fmt: skip
    ax.text((dec_xs[0] + dec_xs[-1]) / 2, in_y - 0.45,
            "input at step $t$: the true token $t - 1$ (teacher forcing)",
            ha="center", va="top", fontsize=10)  # fmt: skip
    ax.text(dec_xs[0] - 0.6, out_y, "predicted:", ha="right", va="center", fontsize=10)
    return _finish(ax, (-0.7, dec_xs[-1] + 0.7), (in_y - 0.9, out_y + 0.9))
