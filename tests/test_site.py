"""The built site: Colab links, offline math, downloads, search.

These tests build the site without executing the chapters (``DLBOOK_NO_EXECUTE=1``): they check
the pages' structure, which does not depend on outputs. The strict build with outputs is the
README's build command.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from booktools import ROOT
from booktools.notebooks import chapters

CHAPTERS = chapters()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, DLBOOK_NO_EXECUTE="1")
    jb = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run([str(jb), "build", "--all", "--path-output", str(out), str(ROOT)],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out / "_build" / "html"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_page_links_to_its_colab_notebook(site, chapter):
    html = (site / "book" / f"{chapter.stem}.html").read_text()
    links = re.findall(r'href="https://colab\.research\.google\.com/github/([^"]+)"', html)
    assert links, "no Open-in-Colab link"
    for link in links:
        # owner/repo/blob/branch/path: the path must be a notebook in this repository.
        path = link.split("/", 4)[4]
        assert path == f"book/{chapter.stem}.ipynb" and (ROOT / path).is_file(), link


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_page_offers_ipynb_and_md_downloads(site, chapter):
    html = (site / "book" / f"{chapter.stem}.html").read_text()
    for suffix in (".ipynb", ".md"):
        href = f"../_sources/book/{chapter.stem}{suffix}"
        assert href in html, f"no download link {href}"
        assert (site / "_sources" / "book" / f"{chapter.stem}{suffix}").is_file()


def test_math_is_served_from_the_site_not_a_cdn(site):
    for page in site.rglob("*.html"):
        html = page.read_text()
        assert "cdn.jsdelivr.net" not in html and "mathjax@" not in html, page
    html = (site / "book" / "01_autodiff.html").read_text()
    src = re.search(r'<script[^>]*src="([^"]*mathjax/tex-mml-chtml\.js)[^"]*"', html).group(1)
    assert (site / "book" / src.split("?")[0]).resolve().is_file()
    assert (site / "_static/mathjax/output/chtml/fonts/woff-v2").is_dir()


def test_search_index_covers_the_chapters(site):
    index = (site / "searchindex.js").read_text()
    assert (site / "search.html").is_file()
    assert "revers" in index and "autodiff" in index  # stemmed terms from chapter 1
