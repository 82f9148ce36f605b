"""pytest collects every MyST chapter in book/ and executes it cell by cell through nbval.

nbval only reads .ipynb files, so ``MystChapter`` reads the chapter with myst-nb's own reader
(the one the site build uses, so both see the same notebook) and hands its cells to nbval.
The sources hold no outputs, so nbval runs in lax mode: a cell fails only when it raises,
including a hidden ``assert`` cell.

Nothing is written to the execution cache here: under pytest-xdist each chapter runs on one
thread, while readers run it with PyTorch's default threads. The site build executes every
chapter again the way a reader does and caches that execution; the determinism test
(tests/site) then re-runs each chapter in that same setting and compares.
"""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

from nbval import plugin as nbval_plugin

from booktools import BOOK
from booktools.notebooks import read_chapter


def is_chapter(path: Path) -> bool:
    """A chapter is a markdown file in book/ with a jupytext header (the preface is not); a
    name starting with "_" (book/_template.md) marks a file that is not a chapter."""
    if path.suffix != ".md" or path.parent != BOOK or path.name.startswith("_"):
        return False
    head = path.read_text(encoding="utf8")[:400]
    return head.startswith("---") and "jupytext:" in head


class MystChapter(nbval_plugin.IPyNbFile):
    """One chapter: a pytest collector whose items are its code cells, run in one kernel."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.compare_outputs = False  # lax: the sources hold no reference outputs
        self.cells: list[nbval_plugin.IPyNbCell] = []

    def collect(self):
        nb = read_chapter(self.path)
        # nbval reads notebooks with nbformat.read; hand it the parsed chapter instead.
        with mock.patch.object(nbval_plugin.nbformat, "read", lambda *a, **k: nb):
            self.cells = list(super().collect())
        yield from self.cells


def pytest_configure(config):
    # Run chapters in the interpreter pytest runs in (the book's environment).
    config.option.nbval_current_env = True
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # Parallel workers share the cores: one thread per worker (and per chapter kernel,
        # which inherits this) instead of every worker's torch starting one per core.
        # Small tensor operations run many times slower when threads outnumber cores.
        os.environ["OMP_NUM_THREADS"] = "1"
        os.environ["MKL_NUM_THREADS"] = "1"


def pytest_collect_file(file_path: Path, parent):
    if is_chapter(file_path):
        return MystChapter.from_parent(parent, path=file_path)
    return None
