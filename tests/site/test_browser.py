"""The built site as a reader sees it, in headless Chromium.

Run after the site build (the README's test command does): ``pytest tests/site``. It reads
``_build/html``; plain ``pytest`` leaves this folder out because the pages must exist first.
Screenshots of every chapter in light, dark and phone views are saved in
``_build/screenshots/`` by ``test_reader.py``, which also checks overflow, figures, solution
labels and console messages on every page through the DevTools protocol.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from booktools import ROOT
from booktools.notebooks import chapters

SITE = ROOT / "_build" / "html"
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)
# Flags for a closed network: no background connections Chromium would make on its own.
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--virtual-time-budget=15000"]
CHAPTERS = chapters()


@pytest.fixture(scope="module", autouse=True)
def requirements():
    if CHROMIUM is None:
        message = "Chromium is not installed (Debian/Ubuntu: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)  # in CI a missing browser is an error, not a reason to skip
        pytest.skip(message)
    if not (SITE / "index.html").is_file():
        pytest.fail("build the site first: jupyter-book build --all -W -n --keep-going .")


def chromium(url: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                           "--enable-logging=stderr", "--v=0", *extra, url],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_renders_math_figures_and_buttons(chapter, tmp_path):
    page = SITE / "book" / f"{chapter.stem}.html"
    result = chromium(page.as_uri(), tmp_path, "--dump-dom")
    dom = result.stdout
    # Math: MathJax replaced every formula; none is left as raw TeX.
    if "$" in chapter.read_text():
        assert dom.count("<mjx-container") > 0, "no formula was rendered"
    raw = re.findall(r'class="math notranslate nohighlight">\s*(\\\(|\\\[|\$\$)', dom)
    assert not raw, f"{len(raw)} formulas left as raw TeX"
    # Figures: every image the page shows is a file of the site that is a real PNG/SVG.
    images = re.findall(r'<img[^>]+src="([^"]+)"', page.read_text())
    for src in images:
        if src.startswith("data:"):
            continue
        path = (page.parent / src.split("?")[0]).resolve()
        assert path.is_file() and path.stat().st_size > 100, f"image {src} does not load"
    # Buttons: open in Colab, download as .ipynb and .md.
    assert "colab.research.google.com/github/" in dom
    assert f"{chapter.stem}.ipynb" in dom and f"{chapter.stem}.md" in dom
    # No JavaScript errors on the page.
    errors = [line for line in result.stderr.splitlines()
              if "CONSOLE" in line and ("Uncaught" in line or "Error" in line)]
    assert not errors, errors


def test_search_finds_a_chapter_term(tmp_path):
    url = (SITE / "search.html").as_uri() + "?q=backpropagation"
    dom = chromium(url, tmp_path, "--dump-dom").stdout
    assert "01_autodiff.html" in dom, "the search page did not find chapter 1"
