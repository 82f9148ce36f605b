"""Drawing a ``Value`` computational graph with matplotlib (no Graphviz, so it runs
anywhere)."""

from __future__ import annotations

import matplotlib.pyplot as plt

from dlbook.autograd import Value, topological_order


def graph_layers(root: Value) -> dict[int, int]:
    """Give each node (by ``id``) a column: inputs at 0, others right of their deepest
    parent."""
    if not isinstance(root, Value):
        raise TypeError(f"root must be a Value, got {type(root).__name__}")
    depth: dict[int, int] = {}
    for node in topological_order(root):  # parents come before children
        depth[id(node)] = 1 + max((depth[id(p)] for p in node._parents), default=-1)
    return depth


def draw_graph(
    root: Value, ax: plt.Axes | None = None, show_grad: bool = True
) -> plt.Axes:
    """Draw the graph that computed ``root``, inputs on the left, the output on the
    right.

    Each node shows its label (or the operation that made it), its value and, if
    ``show_grad``, the gradient ``backward()`` stored in it.
    """
    depth = graph_layers(root)
    nodes = topological_order(root)
    columns: dict[int, list[Value]] = {}
    for node in nodes:
        columns.setdefault(depth[id(node)], []).append(node)
    pos = {}
    for col, members in columns.items():
        for row, node in enumerate(members):
            pos[id(node)] = (col * 2.2, -(row - (len(members) - 1) / 2) * 1.3)
    if ax is None:
        width = 2.2 * len(columns) + 1
        _, ax = plt.subplots(
            figsize=(min(width, 12), 1.3 * max(map(len, columns.values())) + 1.2)
        )
    for node in nodes:
        for parent in node._parents:
            ax.annotate(
                "",
                xy=pos[id(node)],
                xytext=pos[id(parent)],
                arrowprops=dict(
                    arrowstyle="->", color="#555555", shrinkA=26, shrinkB=26
                ),
            )
    for node in nodes:
        x, y = pos[id(node)]
        name = node.label or "const"
        if node._op:
            name = f"{node.label} ({node._op})" if node.label else node._op
        text = f"{name}\n{node.data:.3g}"
        if show_grad:
            text += f"\ngrad {node.grad:.3g}"
        is_input = not node._parents
        ax.text(
            x,
            y,
            text,
            ha="center",
            va="center",
            fontsize=9,
            color="#111111",
            bbox=dict(
                boxstyle="round,pad=0.4",
                fc="#cfe3f7" if is_input else "#fbe3c4",
                ec="#333333",
            ),
        )
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - 1.1, max(xs) + 1.1)
    ax.set_ylim(min(ys) - 0.9, max(ys) + 0.9)
    ax.axis("off")
    ax.figure.set_facecolor("white")
    return ax
