"""The built site's pages: Colab links, downloads, offline math, search index.

Run after the site build (the README's test command does): ``pytest tests/site``.
"""

import re

import pytest

from booktools import ROOT
from booktools.notebooks import chapters

CHAPTERS = chapters()


@pytest.fixture(scope="module")
def site():
    html = ROOT / "_build" / "html"
    if not (html / "index.html").is_file():
        pytest.fail("build the site first: jupyter-book build --all -W -n --keep-going .")
    return html


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


# A tqdm bar line: "desc:  42%|####      | 21/50 [00:01<00:02, 12.3it/s]"
BAR = re.compile(r"(?P<desc>[^\r\n|]*?)\s*\d+%\|")
WARNING = re.compile(r"\b[A-Z]\w*Warning\b|\bwarnings\.warn\b|/site-packages/|\.py:\d+: ")


def output_blocks(html: str) -> list[str]:
    """The text of every code-cell output on a page, as the reader sees it (unescaped)."""
    import html as html_lib

    blocks = re.findall(r'<div class="cell_output[^"]*"[^>]*>(.*?)</div>\s*</div>', html, re.S)
    pres = [p for b in blocks for p in re.findall(r"<pre[^>]*>(.*?)</pre>", b, re.S)]
    return [html_lib.unescape(re.sub(r"<[^>]+>", "", p)) for p in pres]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_progress_bars_show_one_final_line_each(site, chapter):
    html = (site / "book" / f"{chapter.stem}.html").read_text()
    for text in output_blocks(html):
        bars = [m.group("desc").strip() for line in re.split(r"[\r\n]+", text)
                for m in [BAR.search(line)] if m]
        assert len(bars) == len(set(bars)), f"a progress bar left several lines: {bars[:6]}"
        assert not re.search(r"(^|\s)0%\|", text), f"a stale 0% progress line: {text[:300]}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_no_warning_text_in_any_output(site, chapter):
    html = (site / "book" / f"{chapter.stem}.html").read_text()
    for text in output_blocks(html):
        found = WARNING.search(text)
        start = max(0, found.start() - 200) if found else 0
        assert not found, f"warning text in an output: ...{text[start:start + 400]}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_glued_numbers_read_as_powers_of_ten_not_e_notation(site, chapter):
    html = (site / "book" / f"{chapter.stem}.html").read_text()
    pasted = re.findall(r'<span class="pasted-text">([^<]*)</span>', html)
    assert pasted, "no glued value on the page"
    e_notation = [t for t in pasted if re.fullmatch(r"[-+]?\d+(\.\d+)?e[-+]?\d+", t.strip())]
    assert not e_notation, f"numbers in e notation in the prose: {e_notation[:5]}"
