"""A small Sphinx extension for the book, named in _config.yml under ``local_extensions``.

- Reads executed chapters from the cache keyed on the package's code (``booktools.cache``).
- Serves MathJax 3 from the build itself (from the ``django-static-mathjax`` wheel, which is
  just MathJax's files), so formulas render with no network.
- After the build, checks that each chapter page links to a Colab notebook that exists.
- Includes every script once per page (sphinx-thebe can register its configuration twice).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import mathjax
from sphinx.application import Sphinx
from sphinx.util import logging

from booktools.cache import execution_cache_path

logger = logging.getLogger(__name__)

MATHJAX_ES5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
# The combined TeX/MathML component, plus the folders it loads pieces from on demand.
MATHJAX_PARTS = ["tex-mml-chtml.js", "input", "output", "a11y", "sre", "ui", "adaptors"]
MATHJAX_DIR = "_static/mathjax"  # inside the HTML output, never in the source _static


def configure(app: Sphinx, config) -> None:
    """Point the execution cache and MathJax at our local copies."""
    config.nb_execution_cache_path = str(execution_cache_path(Path(app.srcdir)))
    config.mathjax_path = "mathjax/tex-mml-chtml.js"  # relative to _static


def copy_mathjax(app: Sphinx, exception) -> None:
    """Copy MathJax's files into the HTML output once the pages are written."""
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / MATHJAX_DIR
    for part in MATHJAX_PARTS:
        src = MATHJAX_ES5 / part
        if src.is_dir():
            shutil.copytree(src, target / part, dirs_exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target / part)


COLAB_LINK = re.compile(r'href="https://colab\.research\.google\.com/github/[^/"]+/[^/"]+/blob/'
                        r'[^/"]+/([^"]+)"')


def check_colab_links(app: Sphinx, exception) -> None:
    """Warn (an error under -W) if a chapter page lacks a Colab link to an existing .ipynb."""
    if exception is not None or app.builder.format != "html":
        return
    for docname in sorted(app.env.found_docs):
        source = Path(app.env.doc2path(docname))
        if source.suffix != ".md" or "jupytext:" not in source.read_text(encoding="utf8")[:400]:
            continue  # not a chapter
        page = Path(app.outdir) / f"{docname}.html"
        links = COLAB_LINK.findall(page.read_text(encoding="utf8"))
        if not links:
            logger.warning(f"{docname}: no 'Open in Colab' link on the page")
        for link in links:
            if not (Path(app.srcdir) / link).is_file() or not link.endswith(".ipynb"):
                logger.warning(f"{docname}: the Colab link points at {link}, "
                               "which is not a notebook in the repository")


def drop_duplicate_scripts(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """Include each script once: sphinx-thebe can add its config twice, a JavaScript error."""
    seen, unique = set(), []
    for script in context.get("script_files", []):
        # The same inline script can come with filename None and with filename "".
        key = (str(getattr(script, "filename", script) or ""),
               tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"][:] = unique  # in place: later handlers add to the same list


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", configure)
    app.connect("build-finished", copy_mathjax)
    app.connect("build-finished", check_colab_links)
    # Early: a later handler may return a template name, which ends the event for the rest.
    app.connect("html-page-context", drop_duplicate_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
