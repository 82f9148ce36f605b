"""The whole book as one PDF (``booktools/pdf.py``, run at the end of the site build).

Run after the site build (the README's test command does): ``pytest tests/site``.
"""

import os
import re
import unicodedata
from pathlib import Path

import pytest

from booktools import ROOT
from booktools.notebooks import chapters

BUILD = Path(os.environ.get("DLBOOK_BUILD_DIR", ROOT / "_build"))  # another build: set this
PDF = BUILD / "pdf" / "dlbook.pdf"


def chapter_title(path) -> str:
    """"# 4. Convolutional networks" -> "Convolutional networks"."""
    heading = re.search(r"^# (?:\d+\.\s+)?(.+)$", path.read_text(encoding="utf8"), re.MULTILINE)
    return heading.group(1).strip()


@pytest.fixture(scope="module")
def text():
    pypdf = pytest.importorskip("pypdf")
    if not PDF.is_file():
        pytest.fail(f"no {PDF}: the site build makes it (unless DLBOOK_PDF=0)")
    reader = pypdf.PdfReader(str(PDF))
    # whitespace collapsed (a title may wrap), ligatures undone ("ﬀ" -> "ff")
    text = " ".join(page.extract_text() or "" for page in reader.pages)
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text))


def test_pdf_is_in_the_site_for_the_landing_page_link():
    site_copy = BUILD / "html" / "dlbook.pdf"
    assert site_copy.is_file() and site_copy.stat().st_size == PDF.stat().st_size
    landing = (BUILD / "html" / "book" / "index.html").read_text(encoding="utf8")
    assert 'href="../dlbook.pdf"' in landing


@pytest.mark.parametrize("chapter", chapters(), ids=lambda p: p.stem)
def test_pdf_holds_every_chapter(text, chapter):
    assert chapter_title(chapter) in text


def test_pdf_has_typeset_math_and_no_navigation(text):
    assert "\\(" not in text and "\\[" not in text, "formulas printed as raw TeX"
    assert "Skip to main content" not in text and "Ctrl+K" not in text
