"""Draw the map of chapters for the landing page: which chapter builds on which.

Usage: ``python -m booktools.chapter_map`` writes ``_static/chapter-map.svg`` (committed; run
it again when a chapter or a dependency changes). The titles are read from the chapters.
"""

from __future__ import annotations

import re
import sys
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

from booktools import BOOK, ROOT  # noqa: E402

# chapter -> the chapters it builds on directly (the preface's "A map of the chapters", less
# what follows through another chapter: 3 needs 1 through 2, 6 needs 3 through 5)
# Part IV: 10 pre-trains chapter 6's encoder, 11 takes 10's contrastive loss to images and
# text, 12 writes 6's attention as message passing, 13 is scored against 8's diffusion, 14
# fine-tunes 7's GPT with PPO.
NEEDS = {1: [], 2: [1], 3: [2], 4: [3], 5: [3], 6: [5], 7: [6], 8: [4], 9: [7],
         10: [6], 11: [10], 12: [6], 13: [8], 14: [7]}
# (column, row) of each chapter: arrows run left to right within a row, down between rows
# (and 1 -> 2 vertically)
PLACE = {1: (0, 0), 2: (0, 1), 3: (1, 0.5), 4: (2, 0), 5: (2, 1), 8: (3, 0), 6: (3, 1),
         7: (4, 1), 9: (5, 1), 12: (1, 2), 10: (2, 2), 11: (3, 2), 13: (4, 0), 14: (5, 2)}
PART = {1: 0, 2: 0, 3: 1, 4: 1, 5: 1, 6: 1, 7: 2, 8: 2, 9: 2, 10: 3, 11: 3, 12: 3, 13: 3, 14: 3}
PARTS = ["Part I: Foundations", "Part II: Architectures", "Part III: Generative models and scale",
         "Part IV: Beyond supervised learning"]
FILL = ["#e8f0fb", "#eaf6ec", "#fcefe3", "#f3e8f7"]
EDGE = ["#2b4c7e", "#2e7d4f", "#b5561b", "#6b3d8a"]
INK, ARROW = "#1f2937", "#4b5563"


def titles() -> dict[int, str]:
    """Chapter number -> title, from each chapter's first heading ("# 4. Convolutional ...")."""
    found = {}
    for path in sorted(BOOK.glob("[0-9]*.md")):
        match = re.search(r"^# (\d+)\.\s+(.+)$", path.read_text(encoding="utf8"), re.MULTILINE)
        if match:
            found[int(match[1])] = match[2].strip()
    return found


def wrapped(title: str, width: int = 18) -> str:
    """A title broken into lines of at most ``width`` characters where it can be."""
    return textwrap.fill(title, width=width, break_long_words=False)


def draw() -> plt.Figure:
    """Boxes coloured by part, an arrow from each chapter to those that build on it."""
    names = titles()
    step_x, step_y, box_w, box_h = 2.4, 1.1, 2.05, 0.82
    fig, ax = plt.subplots(figsize=(12.0, 4.1))
    centre = {n: (c * step_x, -r * step_y) for n, (c, r) in PLACE.items() if n in names}
    for chapter, (x, y) in centre.items():
        part = PART[chapter]
        ax.add_patch(FancyBboxPatch((x - box_w / 2, y - box_h / 2), box_w, box_h,
                                    boxstyle="round,pad=0.02,rounding_size=0.1",
                                    facecolor=FILL[part], edgecolor=EDGE[part], linewidth=1.4))
        ax.text(x, y, wrapped(f"{chapter}. {names.get(chapter, f'Chapter {chapter}')}"),
                ha="center", va="center", fontsize=9.5, color=INK, linespacing=1.15)
    for chapter, needs in NEEDS.items():
        for need in needs:
            if chapter not in centre or need not in centre:
                continue
            (x0, y0), (x1, y1) = centre[need], centre[chapter]
            down = y0 - y1 > step_y / 2 + 1e-9  # a row or more lower: bottom edge to top edge
            if abs(x0 - x1) < 1e-9 or down:
                sign = 1 if y1 < y0 else -1
                start, end = (x0, y0 - sign * box_h / 2), (x1, y1 + sign * box_h / 2)
            else:
                start, end = (x0 + box_w / 2, y0), (x1 - box_w / 2, y1)
            ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14,
                                         color=ARROW, linewidth=1.3, shrinkA=1, shrinkB=1))
    for part, name in enumerate(PARTS):
        ax.plot([], [], "s", markersize=11, markerfacecolor=FILL[part],
                markeredgecolor=EDGE[part], label=name)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=2, frameon=False,
              fontsize=11, handletextpad=0.4, columnspacing=1.6)
    columns = max(c for c, _ in PLACE.values())
    rows = max(r for _, r in PLACE.values())
    ax.set_xlim(-box_w / 2 - 0.05, columns * step_x + box_w / 2 + 0.05)
    ax.set_ylim(-rows * step_y - box_h / 2 - 0.05, box_h / 2 + 0.05)
    ax.set_aspect("equal")
    ax.set_axis_off()
    return fig


def main() -> int:
    plt.rcParams["svg.hashsalt"] = "dlbook"
    fig = draw()
    target = ROOT / "_static" / "chapter-map.svg"
    fig.savefig(target, bbox_inches="tight", transparent=False, facecolor="white",
                metadata={"Date": None})
    plt.close(fig)
    print(f"wrote {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
