"""Turn each chapter's exercises into sphinx-exercise directives (run once, by hand).

Before, a chapter ends with a numbered list under ``## Exercises`` and, after the list, one
``hide-cell`` code cell per solution whose first line is ``# Solution N...`` (or ``# Solution
to exercise N...``). Readers saw identical "Show code cell content" bars and could not tell
which exercise a bar answers.

After, every exercise is an ``exercise`` directive with a label (``ex-04_cnn-2``), numbered by
Sphinx per chapter ("Exercise 4.2"); a leading ``**Title.**`` becomes its title. Right after
it, its solution cells sit between the gated directives ``solution-start`` and
``solution-end``, shown folded ("Solution to Exercise 4.2"), so the code cells are still code
cells: the site executes them, and pytest's chapter collection (jupytext/myst-nb read gated
directives as markdown cells around the code cells) runs them. The code cells keep their order
(solutions follow the order of the exercises), so only their ``hide-cell`` tag changes.

Usage::

    python -m booktools.exercises book/0*.md         # rewrite the chapters in place
    python -m booktools.exercises --check book/0*.md # report what would change, write nothing
    python -m booktools.exercises --stdout book/04_cnn.md

A chapter whose exercises are already directives is left as it is, so running twice changes
nothing.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

SECTION = re.compile(r"^## Exercises[ \t]*\n", re.MULTILINE)
NEXT_SECTION = re.compile(r"^## ", re.MULTILINE)  # not "# ": comments in code cells
ITEM = re.compile(r"^(?P<number>\d+)\.[ \t]+(?P<text>.*)$")
CODE_CELL = re.compile(r"^(?P<fence>`{3,})\{code-cell\}[^\n]*\n(?P<body>.*?)^(?P=fence)[ \t]*$\n?",
                       re.MULTILINE | re.DOTALL)
SOLUTION_HEADER = re.compile(r"^#\s*Solution(?:\s+to\s+exercise)?\s+(?P<number>\d+)\b",
                             re.IGNORECASE)
TITLE = re.compile(r"^\*\*(?P<title>[^*]+?)\.?\*\*[ \t]*")


@dataclass
class Exercise:
    number: int
    text: str  # the item's markdown, dedented
    solutions: list[str] = field(default_factory=list)  # code cells, as written


def split_items(block: str) -> tuple[str, list[Exercise], str]:
    """(text before the list, the list's items, text after the list) of a markdown block."""
    lines = block.split("\n")
    intro, items, rest, i = [], [], [], 0
    while i < len(lines) and not ITEM.match(lines[i]):
        intro.append(lines[i])
        i += 1
    while i < len(lines):
        match = ITEM.match(lines[i])
        if match:
            indent = len(lines[i]) - len(match["text"])
            items.append(Exercise(int(match["number"]), match["text"]))
            i += 1
            continue
        line = lines[i]
        follows = line.startswith(" ") or (not line.strip() and i + 1 < len(lines)
                                           and lines[i + 1].startswith(" "))
        if items and follows:
            items[-1].text += "\n" + line[indent:] if line.strip() else "\n"
            i += 1
            continue
        break
    rest = lines[i:]
    return "\n".join(intro), items, "\n".join(rest)


def untagged(cell: str) -> str:
    """A code cell without its ``hide-cell`` tag (the solution's dropdown folds it instead)."""
    def drop(match: re.Match) -> str:
        tags = [t.strip() for t in match["tags"].split(",") if t.strip() != "hide-cell"]
        return f":tags: [{', '.join(tags)}]\n" if tags else ""

    cell = re.sub(r"^:tags:\s*\[(?P<tags>[^\]]*)\]\n", drop, cell, count=1, flags=re.MULTILINE)
    # An empty line after the options closed them; with no options left, drop it too.
    return re.sub(r"^(```+\{code-cell\}[^\n]*\n)\n(?=\S)", r"\1", cell, count=1)


def solution_number(cell: str) -> int | None:
    """N from the first code line ``# Solution N`` / ``# Solution to exercise N``."""
    body = cell.split("\n", 1)[1]
    for line in body.split("\n"):
        if not line.strip() or line.startswith(":") or line.strip() == "---":
            continue
        match = SOLUTION_HEADER.match(line.strip())
        return int(match["number"]) if match else None
    return None


def directive(name: str, argument: str, options: dict[str, str], body: str = "") -> str:
    head = f"````{{{name}}}" + (f" {argument}" if argument else "")
    lines = [head] + [f":{k}: {v}" for k, v in options.items()]
    if body:
        lines += ["", body.strip("\n")]
    return "\n".join(lines + ["````"])


def convert_section(section: str, stem: str) -> str:
    """The ``## Exercises`` section (heading excluded) as exercise and solution directives."""
    cells = list(CODE_CELL.finditer(section))
    text_part = section[:cells[0].start()] if cells else section
    intro, exercises, after = split_items(text_part)
    if not exercises:
        raise ValueError(f"{stem}: no numbered list under '## Exercises'")
    by_number = {e.number: e for e in exercises}
    order, current, leftover = [], None, []
    for match in cells:
        cell = match.group(0)
        number = solution_number(cell)
        if number is not None:
            if number not in by_number:
                raise ValueError(f"{stem}: a solution to exercise {number}, which the list lacks")
            current = number
        if current is None:
            leftover.append(cell)
            continue
        by_number[current].solutions.append(untagged(cell).rstrip("\n"))
        order.append(current)
    tail = section[cells[-1].end():] if cells else ""
    between = [section[a.end():b.start()] for a, b in zip(cells, cells[1:])]
    if any(part.strip() for part in between) or after.strip():
        raise ValueError(f"{stem}: text between the solution cells; convert this one by hand")
    if order != sorted(order):
        raise ValueError(f"{stem}: solutions are not in the order of the exercises, so moving "
                         "each next to its exercise would change the execution order")
    out = [intro.strip("\n")] if intro.strip() else []
    out += leftover
    for exercise in exercises:
        label = f"ex-{stem}-{exercise.number}"
        text = exercise.text.strip("\n")
        title = TITLE.match(text)
        argument = title["title"].strip() if title else ""
        if title:
            text = text[title.end():]
        out.append(directive("exercise", argument, {"label": label}, text))
        if exercise.solutions:
            out.append(directive("solution-start", label,
                                 {"label": f"sol-{stem}-{exercise.number}", "class": "dropdown"}))
            out += exercise.solutions
            out.append(directive("solution-end", "", {}))
    return "\n\n".join(out) + "\n" + ("\n" + tail.lstrip("\n") if tail.strip() else "\n")


def convert(text: str, stem: str) -> str:
    """A chapter with its exercises as directives (unchanged if they are already)."""
    start = SECTION.search(text)
    if start is None:
        return text
    end_match = NEXT_SECTION.search(text, start.end())
    end = end_match.start() if end_match else len(text)
    section = text[start.end():end]
    if "{exercise}" in section:
        return text
    return text[:start.end()] + "\n" + convert_section(section.lstrip("\n"), stem) + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="report, write nothing")
    parser.add_argument("--stdout", action="store_true", help="print the converted chapters")
    args = parser.parse_args(argv)
    changed = 0
    for path in args.chapters:
        text = path.read_text(encoding="utf8")
        new = convert(text, path.stem)
        if args.stdout:
            sys.stdout.write(new)
            continue
        if new != text:
            changed += 1
            if args.check:
                print(f"would convert {path}")
            else:
                path.write_text(new, encoding="utf8")
                print(f"converted {path}")
    return 1 if (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
