"""Generate the Colab notebooks (book/NN_x.ipynb) from the MyST chapters (book/NN_x.md).

The .md chapter is the one source; its notebook is derived from it and committed, because
Colab opens notebooks from GitHub and cannot read MyST markdown. Two changes are made:

1. A first code cell installs dlbook when, and only when, it runs in Colab. It installs the
   package alone: Colab's own torch and numpy satisfy dlbook's loose ranges and stay as they are.
2. A ``literalinclude`` of package code (which Colab would show as raw text) becomes a code
   cell that displays the same source with ``dlbook.show_source``; MyST labels are dropped and
   citations shown as ``[key]`` (the bibliography is on the book's website).

Usage: ``python -m booktools.notebooks`` rewrites every notebook; ``--check`` only reports
(exit 1) notebooks that are missing or differ from what the chapter generates.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
import yaml

from booktools import BOOK, ROOT

INSTALL_TAG = "colab-install"
LITERALINCLUDE = re.compile(
    r"^(?P<fence>`{3,}|~{3,})\{literalinclude\}\s+(?P<path>\S+)\n(?P<options>(?::.*\n)*)"
    r"(?P=fence)[ \t]*$",
    re.MULTILINE,
)


def repository_url(root: Path = ROOT) -> str:
    """The repository the book is published from, as _config.yml names it."""
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf8"))
    return config["repository"]["url"].rstrip("/")


def install_cell(root: Path = ROOT) -> nbformat.NotebookNode:
    """The first cell of every Colab notebook: installs dlbook in Colab, does nothing elsewhere."""
    source = (
        "# In Colab, install the book's package. torch, numpy and matplotlib are Colab's own:\n"
        "# dlbook accepts the versions there, so pip leaves them untouched.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        "    import subprocess\n"
        "\n"
        "    subprocess.run(\n"
        '        [sys.executable, "-m", "pip", "install", "-q",\n'
        f'         "dlbook @ git+{repository_url(root)}"],\n'
        "        check=True,\n"
        "    )"
    )
    return nbformat.v4.new_code_cell(source, metadata={"tags": [INSTALL_TAG]})


def module_and_name(path: str, options: str) -> tuple[str, str] | None:
    """Map ``../dlbook/autograd.py`` with ``:pyobject: Value`` to ("dlbook.autograd", "Value")."""
    match = re.search(r"^:pyobject:\s*(\S+)", options, re.MULTILINE)
    parts = Path(path).with_suffix("").parts
    if match is None or "dlbook" not in parts:
        return None
    module = ".".join(parts[parts.index("dlbook"):])
    return module, match.group(1)


MYST_LABEL = re.compile(r"^\([\w-]+\)=\n", re.MULTILINE)
CITATION = re.compile(r"\{cite:[pt]\}`([^`]+)`")


def plain_markdown(source: str) -> str:
    """Drop MyST target labels and show citation keys as [key], for Jupyter's plain markdown."""
    source = MYST_LABEL.sub("", source)
    return CITATION.sub(lambda m: "[" + ", ".join(k.strip() for k in m[1].split(",")) + "]",
                        source)


def split_markdown(source: str) -> list[nbformat.NotebookNode]:
    """Split a markdown cell around its literalincludes, each replaced by a show_source cell."""
    source = plain_markdown(source)
    cells, start = [], 0
    for match in LITERALINCLUDE.finditer(source):
        target = module_and_name(match["path"], match["options"])
        if target is None:
            continue
        module, name = target
        before = source[start:match.start()].strip()
        if before:
            cells.append(nbformat.v4.new_markdown_cell(before))
        owner = name.split(".")[0]
        cells.append(nbformat.v4.new_code_cell(
            f"from dlbook import show_source\nfrom {module} import {owner}\n\n"
            f"show_source({name})"))
        start = match.end()
    rest = source[start:].strip()
    if rest or not cells:
        cells.append(nbformat.v4.new_markdown_cell(rest))
    return cells


def read_chapter(chapter: Path) -> nbformat.NotebookNode:
    """A MyST-markdown chapter as a notebook, read with myst-nb's reader as the site build does."""
    from myst_nb.core.read import read_myst_markdown_notebook

    return read_myst_markdown_notebook(Path(chapter).read_text(encoding="utf8"), path=chapter)


def colab_notebook(chapter: Path, root: Path = ROOT) -> nbformat.NotebookNode:
    """Build the Colab notebook for one chapter."""
    source_nb = read_chapter(chapter)
    cells = [install_cell(root)]
    for cell in source_nb.cells:
        if cell.cell_type == "markdown":
            cells.extend(split_markdown(cell.source))
        else:
            new = nbformat.v4.new_code_cell(cell.source)
            if cell.metadata.get("tags"):
                new.metadata["tags"] = list(cell.metadata["tags"])
            cells.append(new)
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python",
                                 "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["colab"] = {"provenance": []}
    for i, cell in enumerate(nb.cells):  # stable ids, so regenerating changes nothing
        cell["id"] = f"cell-{i}"
    return nb


def chapters(book: Path = BOOK) -> list[Path]:
    """Every chapter (a markdown file in book/ with a jupytext header)."""
    return sorted(p for p in book.glob("*.md")
                  if "jupytext:" in p.read_text(encoding="utf8")[:400])


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def stale_notebooks(root: Path = ROOT) -> list[Path]:
    """Notebooks that are missing or not what their chapter generates."""
    stale = []
    for chapter in chapters(root / "book"):
        target = chapter.with_suffix(".ipynb")
        if not target.is_file() or target.read_text(encoding="utf8") != render(
                colab_notebook(chapter, root)):
            stale.append(target)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale notebooks, write none")
    args = parser.parse_args(argv)
    stale = stale_notebooks()
    if args.check:
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)} (run: python -m booktools.notebooks)")
        return 1 if stale else 0
    for path in stale:
        path.write_text(render(colab_notebook(path.with_suffix(".md"))), encoding="utf8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
