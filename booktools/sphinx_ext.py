"""A small Sphinx extension for the book, named in _config.yml under ``local_extensions``.

- Reads executed chapters from the cache keyed on the package's code (``booktools.cache``).
- Serves MathJax 3 from the build itself (from the ``django-static-mathjax`` wheel, which is
  just MathJax's files), so formulas render with no network.
- After the build, checks that each chapter page links to a Colab notebook that exists.
- Includes every script once per page (sphinx-thebe can register its configuration twice).
- Citations "(Goodfellow et al., 2016)" and "Goodfellow et al. (2016)": the ``author_year_round``
  referencing style of sphinxcontrib-bibtex.
- Chapter titles carry their number in the source ("# 4. Convolutional networks", which the
  Colab notebooks show); the site numbers chapters itself (``numbered`` in _toc.yml), so the
  source's number is dropped from the page's title.
- Figures at twice the pixel density: the kernels the build starts read an IPython profile
  that sets the inline backend to ``retina``; chapters change no session-wide setting.
- The theme's colour mode defaults to ``auto`` (an empty mode logs a console error).
- The ledger of claims (``booktools.ledger``): the ``ledger`` directive, read after every
  chapter was executed.
- The API page: a long default (a nested config) is shown as its class, ``TrainConfig(…)``.
- The PDF: after the HTML build, ``booktools.pdf`` prints the book from a single-page build
  (``DLBOOK_PDF=0`` skips it), whose builder gets the HTML builder's node visitors.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from pathlib import Path

import mathjax
from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.transforms import SphinxTransform
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinxcontrib.bibtex.plugin import register_plugin
from sphinxcontrib.bibtex.style.referencing import BracketStyle, PersonStyle
from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle

from booktools.cache import execution_cache_path

logger = logging.getLogger(__name__)

MATHJAX_ES5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
# The combined TeX/MathML component, plus the folders it loads pieces from on demand.
MATHJAX_PARTS = ["tex-mml-chtml.js", "input", "output", "a11y", "sre", "ui", "adaptors"]
MATHJAX_DIR = "_static/mathjax"  # inside the HTML output, never in the source _static


# --------------------------------------------------------------------------------------------
# Citations


def round_brackets() -> BracketStyle:
    return BracketStyle(left="(", right=")")


def roman_et_al() -> PersonStyle:
    return PersonStyle(other=" et al.")


@dataclasses.dataclass
class AuthorYearRound(AuthorYearReferenceStyle):
    """author_year with round brackets and a roman "et al.": "(Goodfellow et al., 2016)",
    and for ``{cite:t}`` "Goodfellow et al. (2016)"."""

    bracket_parenthetical: BracketStyle = dataclasses.field(default_factory=round_brackets)
    bracket_textual: BracketStyle = dataclasses.field(default_factory=round_brackets)
    bracket_author: BracketStyle = dataclasses.field(default_factory=round_brackets)
    bracket_label: BracketStyle = dataclasses.field(default_factory=round_brackets)
    bracket_year: BracketStyle = dataclasses.field(default_factory=round_brackets)
    person: PersonStyle = dataclasses.field(default_factory=roman_et_al)


register_plugin("sphinxcontrib.bibtex.style.referencing", "author_year_round",
                AuthorYearRound)


# --------------------------------------------------------------------------------------------
# Configuration


KERNEL_CONFIG = """\
# Written by booktools/sphinx_ext.py for the kernels the book's build starts.
# Figures at twice the pixel density, shown at their size: sharp on high-resolution screens.
c.InlineBackend.figure_formats = {"retina"}
"""


def configure(app: Sphinx, config) -> None:
    """Point the execution cache and MathJax at our local copies; set up the kernels."""
    config.nb_execution_cache_path = str(execution_cache_path(Path(app.srcdir)))
    config.mathjax_path = "mathjax/tex-mml-chtml.js"  # relative to _static
    # The kernels myst-nb starts inherit this process's environment, so IPYTHONDIR points
    # them at a profile of the build's own (next to the HTML output, never in the sources).
    profile = Path(app.outdir).parent / "ipython" / "profile_default"
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "ipython_kernel_config.py").write_text(KERNEL_CONFIG, encoding="utf8")
    os.environ["IPYTHONDIR"] = str(profile.parent)
    # The logo with light lines on the dark theme, and the book's title beside it.
    logo = config.html_theme_options.setdefault("logo", {})
    logo.setdefault("image_dark", "_static/logo-dark.svg")
    logo.setdefault("text", config.html_title)


def make_static_folder(app: Sphinx) -> None:
    """The theme copies the dark logo into ``_static/`` when the builder starts, before
    Sphinx made that folder: in a fresh output folder it would become a file named
    ``_static``."""
    (Path(app.outdir) / "_static").mkdir(parents=True, exist_ok=True)


def theme_mode(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """An explicit colour mode: the theme logs "Got invalid theme mode" for an empty one."""
    if not context.get("default_mode"):
        context["default_mode"] = "auto"


# --------------------------------------------------------------------------------------------
# The API page: signatures a reader can take in

LONG_DEFAULT = 40  # characters: a default longer than this is shown as its class, "Config(…)"


def split_parameters(signature: str) -> list[str]:
    """``"(a, b=f(1, 2))"`` -> ``["a", "b=f(1, 2)"]``: commas at bracket depth 0 only."""
    parts, depth, current, quote = [], 0, "", None
    for char in signature.strip()[1:-1]:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        current += char
    if current.strip():
        parts.append(current.strip())
    return parts


def short_default(parameter: str) -> str:
    """``cfg: A = A(b=B(c=1, ...))`` -> ``cfg: A = A(…)`` when the default is long."""
    match = re.match(r"^(?P<head>[^=]*?(?:\s=\s|=))(?P<default>.*)$", parameter, re.DOTALL)
    if not match or len(match["default"]) <= LONG_DEFAULT:
        return parameter
    call = re.match(r"^(?P<name>[A-Za-z_][\w.]*)\(", match["default"])
    return match["head"] + (f"{call['name']}(…)" if call else match["default"][:LONG_DEFAULT] + "…")


def shorten_signature(app, what, name, obj, options, signature, return_annotation):
    """Nested dataclass defaults make signatures of ten lines (``train_digits``): show each
    long default as its class, ``TrainConfig(…)``; the class's own entry lists its fields."""
    if not signature or len(signature) <= LONG_DEFAULT:
        return None
    parameters = [short_default(p) for p in split_parameters(signature)]
    return "(" + ", ".join(parameters) + ")", return_annotation


# --------------------------------------------------------------------------------------------
# Chapter titles

CHAPTER_NUMBER = re.compile(r"^\d+\.\s+")


class DropChapterNumber(SphinxTransform):
    """"# 4. Convolutional networks" -> "Convolutional networks" in a chapter whose number
    the table of contents gives (the site shows "4. Convolutional networks" once)."""

    default_priority = 200

    def apply(self) -> None:
        if not re.match(r"^book/\d\d_", self.env.docname):
            return
        section = next(iter(self.document.findall(nodes.section)), None)
        if section is None or not isinstance(section[0], nodes.title):
            return
        title = section[0]
        first = next(iter(title.findall(nodes.Text)), None)
        if first is not None and CHAPTER_NUMBER.match(first.astext()):
            first.parent.replace(first, nodes.Text(CHAPTER_NUMBER.sub("", first.astext())))


class ReadableNumbers(SphinxTransform):
    """A glued number in ``e`` notation (``{glue:text}`x:.0e```, "1e-05") shown with a power
    of ten ("10⁻⁵"), as the prose around it would write it (``booktools.numbers``)."""

    default_priority = 700  # after myst-nb has pasted the glued values

    def apply(self) -> None:
        from booktools.numbers import readable_number

        for node in list(self.document.findall(nodes.inline)):
            if "pasted-text" not in node.get("classes", []):
                continue
            text = node.astext()
            readable = readable_number(text)
            if readable != text:
                node.children = [nodes.Text(readable)]


# --------------------------------------------------------------------------------------------
# The ledger of claims

LEDGER_DOC = "book/ledger"


class LedgerDirective(SphinxDirective):
    """``{ledger}``: the table of every glued value the chapters' text shows."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from booktools.ledger import ledger, ledger_markdown, unchecked

        root = Path(self.env.srcdir)
        rows = ledger(root)
        missing = unchecked(rows)
        text = ledger_markdown(rows, root)
        summary = (f"{len(rows)} glued values in the text of {len({r.claim.chapter for r in rows})}"
                   f" chapters; {sum(len(v) for v in missing.values())} names without an assert "
                   "found by the heuristic.")
        container = nodes.container(classes=["dlbook-ledger-page"])
        self.state.nested_parse(StringList([summary, ""] + text.split("\n")),
                                self.content_offset, container)
        return [container]


def ledger_last(app: Sphinx, env, docnames: list[str]) -> None:
    """Read the ledger after the chapters, whose execution it reads from the cache."""
    if LEDGER_DOC in docnames:
        docnames.remove(LEDGER_DOC)
        docnames.append(LEDGER_DOC)


def ledger_always(app: Sphinx, env, added, changed, removed) -> list[str]:
    """The ledger depends on every chapter's execution: read it on every build."""
    return [LEDGER_DOC] if LEDGER_DOC in env.found_docs else []


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
    if exception is not None or app.builder.name != "html":  # one page per chapter
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


# --------------------------------------------------------------------------------------------
# The PDF


def html_handlers_for_singlehtml(app: Sphinx) -> None:
    """Extensions register their nodes' HTML visitors for the builder named "html" only
    (myst-nb's folded cells, for one); the single-page build that the PDF is printed from
    writes the same HTML, so give it the same visitors."""
    if app.builder.name != "singlehtml":
        return
    handlers = app.registry.translation_handlers
    for node, visitors in handlers.get("html", {}).items():
        handlers.setdefault("singlehtml", {}).setdefault(node, visitors)


def build_pdf(app: Sphinx, exception) -> None:
    """After the HTML build, print the book to ``_build/pdf/dlbook.pdf`` (``booktools.pdf``);
    ``DLBOOK_PDF=0`` skips it. A failure is a warning, so an error under ``-W``; without
    Chromium the PDF is skipped with a note (a warning under CI, where it must be made)."""
    if exception is not None or app.builder.name != "html" or os.environ.get(
            "DLBOOK_PDF", "1") == "0":
        return
    from booktools.pdf import build_pdf as print_book
    from booktools.pdf import chromium

    try:
        chromium()
    except FileNotFoundError as error:  # a reader's machine: the site is built all the same
        (logger.warning if os.environ.get("CI") else logger.info)(f"no PDF: {error}")
        return
    config = os.environ.get("DLBOOK_CONFIG")  # the --config the build was given, if any
    try:
        pdf = print_book(Path(app.srcdir), Path(config) if config else None,
                         Path(app.outdir).parent.parent)
        logger.info(f"the book as a PDF: {pdf}")
    except (RuntimeError, FileNotFoundError, OSError) as error:
        logger.warning(f"no PDF: {error}")


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", configure)
    app.connect("html-page-context", theme_mode)
    app.add_transform(DropChapterNumber)
    app.add_post_transform(ReadableNumbers)
    app.connect("autodoc-process-signature", shorten_signature)
    app.add_directive("ledger", LedgerDirective)
    app.connect("env-get-outdated", ledger_always)
    app.connect("env-before-read-docs", ledger_last)
    app.connect("builder-inited", html_handlers_for_singlehtml)
    app.connect("builder-inited", make_static_folder, priority=100)  # before the theme's
    app.connect("build-finished", build_pdf, priority=900)  # after MathJax is copied
    app.connect("build-finished", copy_mathjax)
    app.connect("build-finished", check_colab_links)
    # Early: a later handler may return a template name, which ends the event for the rest.
    app.connect("html-page-context", drop_duplicate_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
