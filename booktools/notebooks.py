"""Generate the Colab notebooks (book/NN_x.ipynb) from the MyST chapters (book/NN_x.md).

The .md chapter is the one source; its notebook is derived from it and committed, because
Colab opens notebooks from GitHub and cannot read MyST markdown. The notebook reads like the
chapter's page on the website:

1. A first code cell installs dlbook when, and only when, it runs in Colab. It installs the
   package alone (Colab's own torch and numpy satisfy dlbook's loose ranges and stay as they
   are), and when pip fails it says which URL it tried and what to do.
2. A ``literalinclude`` of package code (which Colab would show as raw text) becomes a code
   cell that displays the same source with ``dlbook.show_source``.
3. No MyST is left in the markdown: glued numbers become their values, formatted as the site
   formats them; cross-references become links to the website, citations "(Goodfellow et al.,
   2016)" linking to its bibliography, directives plain markdown (admonitions are quotes).

Glued values come from the chapter's last execution whose code cells are the chapter's code
cells now: the newest such record in the execution cache (``booktools.cache``; any version of
the package), else the values the committed notebook already holds in its metadata. Where
there are none, the text names the value and points to the code that computes it.

Values never make a notebook stale: ``--check`` regenerates each notebook with the values it
already holds, so only a change of text, code or structure is reported, and a re-execution
that changes a last digit is not.

Usage: ``python -m booktools.notebooks`` (re)writes every notebook that differs from what its
chapter generates; run twice, it writes nothing the second time. ``--check`` only reports
(exit 1) notebooks that are missing or stale.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from dataclasses import replace
from pathlib import Path

import nbformat

from booktools import BOOK, ROOT, repository_url
from booktools.myst import GLUE_MIMES, GLUE_REFERENCE, Context, Glued, book_index, to_markdown

INSTALL_TAG = "colab-install"
METADATA_KEY = "dlbook"  # notebook metadata: {"code": hash of the code cells, "glue": values}
LITERALINCLUDE = re.compile(
    r"^(?P<fence>`{3,}|~{3,})\{literalinclude\}\s+(?P<path>\S+)\n(?P<options>(?::.*\n)*)"
    r"(?P=fence)[ \t]*$",
    re.MULTILINE,
)

# --------------------------------------------------------------------------------------------
# The install cell


def install_cell(root: Path = ROOT) -> nbformat.NotebookNode:
    """The first cell of every Colab notebook: installs dlbook in Colab, does nothing elsewhere."""
    source = (
        "# In Colab, install the book's package. torch, numpy and matplotlib are Colab's own:\n"
        "# dlbook accepts the versions there, so pip leaves them untouched.\n"
        "import subprocess\n"
        "import sys\n"
        "\n"
        f'DLBOOK = "git+{repository_url(root)}"\n'
        'if "google.colab" in sys.modules:\n'
        '    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", '
        'f"dlbook @ {DLBOOK}"],\n'
        "                         capture_output=True, text=True)\n"
        "    if pip.returncode != 0:\n"
        "        raise RuntimeError(\n"
        '            f"pip could not install dlbook from {DLBOOK}. Check that this runtime is "\n'
        '            "online and that the repository opens in a browser, then run this cell "\n'
        '            "again; or install dlbook another way, e.g. pip install a clone of it.\\n"\n'
        '            f"pip said:\\n{pip.stderr.strip()}")'
    )
    return nbformat.v4.new_code_cell(source, metadata={"tags": [INSTALL_TAG]})


# --------------------------------------------------------------------------------------------
# Glued values


def code_hash(nb: nbformat.NotebookNode) -> str:
    """A hash of a chapter's code cells: values glued by the same code belong to it."""
    digest = hashlib.sha256()
    for cell in nb.cells:
        if cell.cell_type == "code":
            digest.update(cell.source.encode() + b"\0")
    return digest.hexdigest()[:16]


def glue_values(executed: nbformat.NotebookNode) -> Glued:
    """The values an executed chapter glued: outputs that myst-nb's ``glue`` records with
    metadata ``scrapbook`` and mime types prefixed ``application/papermill.record/``."""
    values = {}
    for cell in executed.cells:
        for output in cell.get("outputs", []):
            scrapbook = output.get("metadata", {}).get("scrapbook")
            if not scrapbook:
                continue
            prefix = scrapbook.get("mime_prefix", "")
            data = {mime[len(prefix):]: value for mime, value in output.get("data", {}).items()
                    if mime.startswith(prefix) and mime[len(prefix):] in GLUE_MIMES}
            if data:
                values[scrapbook["name"]] = {k: "".join(v) if isinstance(v, list) else v
                                             for k, v in sorted(data.items())}
    return values


def cached_values(source_nb: nbformat.NotebookNode, root: Path = ROOT) -> Glued | None:
    """The glued values of the newest cached execution of exactly these code cells.

    The site build caches every chapter it executes (``booktools.cache``). Every cache folder
    counts (there is one per state of the package), because the package changes more often
    than the chapter: the newest execution of the chapter's code is its last one.
    """
    from jupyter_cache import get_cache

    from booktools.cache import execution_cache_path

    newest = None
    for database in sorted(execution_cache_path(root).parent.glob("*/global.db")):
        cache = get_cache(str(database.parent))
        try:
            record = cache.match_cache_notebook(source_nb)  # jupyter-cache's key: the code
        except KeyError:
            continue
        if newest is None or record.created > newest[0]:
            newest = (record.created, glue_values(cache.get_cache_bundle(record.pk).nb))
    return newest[1] if newest else None


def committed_values(target: Path, code: str) -> Glued | None:
    """The values a committed notebook holds, if they were glued by this code."""
    if not target.is_file():
        return None
    try:
        meta = json.loads(target.read_text(encoding="utf8"))["metadata"].get(METADATA_KEY, {})
    except (ValueError, KeyError):
        return None
    return meta.get("glue") if meta.get("code") == code else None


def glue_cells(source_nb: nbformat.NotebookNode) -> dict:
    """glue name -> index of the code cell that calls ``glue("name", ...)``."""
    cells = {}
    for index, cell in enumerate(source_nb.cells):
        if cell.cell_type == "code":
            for name in re.findall(r"\bglue\(\s*[\"'](\w+)[\"']", cell.source):
                cells.setdefault(name, index)
    return cells


# --------------------------------------------------------------------------------------------
# Notebooks


def module_and_name(path: str, options: str) -> tuple[str, str] | None:
    """Map ``../dlbook/autograd.py`` with ``:pyobject: Value`` to ("dlbook.autograd", "Value")."""
    match = re.search(r"^:pyobject:\s*(\S+)", options, re.MULTILINE)
    parts = Path(path).with_suffix("").parts
    if match is None or "dlbook" not in parts:
        return None
    module = ".".join(parts[parts.index("dlbook"):])
    return module, match.group(1)


def split_markdown(source: str, ctx: Context) -> list[nbformat.NotebookNode]:
    """A chapter's markdown cell as notebook cells: plain markdown, and a show_source code
    cell for each literalinclude of package code."""
    cells, start = [], 0

    def markdown(text: str) -> None:
        text = to_markdown(text, ctx)
        if text.strip():
            cells.append(nbformat.v4.new_markdown_cell(text))

    for match in LITERALINCLUDE.finditer(source):
        target = module_and_name(match["path"], match["options"])
        if target is None:
            continue  # to_markdown links to the file
        module, name = target
        markdown(source[start:match.start()])
        owner = name.split(".")[0]
        cells.append(nbformat.v4.new_code_cell(
            f"from dlbook import show_source\nfrom {module} import {owner}\n\n"
            f"show_source({name})"))
        start = match.end()
    markdown(source[start:])
    return cells


def read_chapter(chapter: Path) -> nbformat.NotebookNode:
    """A MyST-markdown chapter as a notebook, read with myst-nb's reader as the site build does."""
    from myst_nb.core.read import read_myst_markdown_notebook

    return read_myst_markdown_notebook(Path(chapter).read_text(encoding="utf8"), path=chapter)


def colab_notebook(chapter: Path, glued: Glued | None = None, root: Path = ROOT,
                   source_nb: nbformat.NotebookNode | None = None) -> nbformat.NotebookNode:
    """Build the Colab notebook for one chapter, with the glued values ``glued`` (or none).
    ``source_nb``: the chapter as ``read_chapter`` reads it, if the caller has it already."""
    source_nb = source_nb or read_chapter(chapter)
    glued = glued or {}
    doc = Path(chapter).resolve().relative_to(root.resolve()).with_suffix("").as_posix()
    ctx = Context(book=book_index(root), doc=doc, glued=glued, glue_cells=glue_cells(source_nb))
    cells = [install_cell(root)]
    for index, cell in enumerate(source_nb.cells):
        if cell.cell_type == "markdown":
            cells.extend(split_markdown(cell.source, replace(ctx, cell=index)))
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
    if glued:
        nb.metadata[METADATA_KEY] = {"code": code_hash(source_nb), "glue": glued}
    for i, cell in enumerate(nb.cells):  # stable ids, so regenerating changes nothing
        cell["id"] = f"cell-{i}"
    return nb


def chapters(book: Path = BOOK) -> list[Path]:
    """Every chapter (a markdown file in book/ with a jupytext header); a name starting with
    "_" (book/_template.md, the skeleton of a new chapter) is not a chapter."""
    return sorted(p for p in book.glob("*.md") if not p.name.startswith("_")
                  and "jupytext:" in p.read_text(encoding="utf8")[:400])


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def expected_notebook(chapter: Path, root: Path = ROOT, fresh: bool = True) -> str:
    """The notebook text a chapter generates. ``fresh``: with the values of its last execution
    (the cache, else the committed notebook); otherwise with the committed notebook's own."""
    source_nb = read_chapter(chapter)
    glued = cached_values(source_nb, root) if fresh else None
    if glued is None:
        glued = committed_values(chapter.with_suffix(".ipynb"), code_hash(source_nb))
    return render(colab_notebook(chapter, glued, root, source_nb))


def stale_notebooks(root: Path = ROOT) -> list[Path]:
    """Notebooks that are missing or not what their chapter generates, values aside."""
    stale = []
    for chapter in chapters(root / "book"):
        target = chapter.with_suffix(".ipynb")
        if not target.is_file() or target.read_text(encoding="utf8") != expected_notebook(
                chapter, root, fresh=False):
            stale.append(target)
    return stale


def unresolved_glue(nb: nbformat.NotebookNode) -> int:
    """How many glued values a notebook shows as references, not values."""
    return sum(len(GLUE_REFERENCE.findall(c.source)) for c in nb.cells
               if c.cell_type == "markdown")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale notebooks, write none")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_notebooks()
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)} (run: python -m booktools.notebooks)")
        return 1 if stale else 0
    for chapter in chapters():
        target = chapter.with_suffix(".ipynb")
        text = expected_notebook(chapter)
        missing = unresolved_glue(nbformat.reads(text, as_version=4))
        note = (f" ({missing} glued values shown as references: the cache has no execution "
                "of this code; build the site, which executes and caches it, then rerun this)"
                if missing else "")
        if not target.is_file() or target.read_text(encoding="utf8") != text:
            target.write_text(text, encoding="utf8")
            print(f"wrote {target.relative_to(ROOT)}{note}")
        elif note:
            print(f"unchanged {target.relative_to(ROOT)}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
