"""Every page of the built site as a reader sees it: light, dark and a 400-pixel phone.

Run after the site build (the README's test command does): ``pytest tests/site``. Each page is
opened once per view in headless Chromium (``chromium.py`` drives it through the DevTools
protocol), and what the tests assert is measured there:

- no element is wider than its container without a scrollbar (display equations included),
  and no page scrolls sideways; at 1400 px no display equation needs its scrollbar;
- every solution is labelled ("Solution to Exercise 4.2"), and no exercise answer hides in an
  unlabelled "Show code cell content" bar;
- every figure is sharp: its file has at least twice the pixels it is shown with, or is an
  SVG; and it is not shrunk so far that its text falls under 9 pixels;
- the page logs nothing at warning level or above to the console;
- and a full-page screenshot of every chapter in each view lands in ``_build/screenshots/``
  (``<chapter>-light.png``, ``-dark.png``, ``-mobile.png``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from chromium import CHROMIUM, VIEWS, WARNING_LEVELS, Browser, in_ci

from booktools import BOOK, ROOT
from booktools.notebooks import chapters

BUILD = Path(os.environ.get("DLBOOK_BUILD_DIR", ROOT / "_build"))  # another build: set this
SITE = BUILD / "html"
SHOTS = BUILD / "screenshots"
CHAPTERS = [p.stem for p in chapters()]
OTHER_PAGES = ["index", "preface", "ledger", "api", "bibliography"]
PAGES = CHAPTERS + [p for p in OTHER_PAGES if (BOOK / f"{p}.md").is_file()]
# matplotlib's default text is 10 pt at 100 dpi, about 13.9 px at full size: a figure shown at
# less than 65% of its size (at 1400 px) has tick labels under 9 px.
MIN_FIGURE_SCALE = 9 / 13.9

PROBE = r"""
(() => {
  const article = document.querySelector("article.bd-article") || document.body;
  const describe = (el) => `${el.tagName.toLowerCase()}.${[...el.classList].join(".")} ` +
      `"${(el.textContent || "").trim().replace(/\s+/g, " ").slice(0, 60)}"`;
  // MathJax's assistive MathML is invisible (clipped to a pixel) but can be wider than the
  // formula: leave it out of the measurements.
  const assistive = [...document.querySelectorAll("mjx-assistive-mml")];
  assistive.forEach((el) => el.style.setProperty("display", "none", "important"));
  // An element whose content is wider than it is fine if that content can be scrolled to:
  // the nearest box around it (itself included) that does not let content spill is a
  // scroller. Content clipped by a box that does not scroll, or spilling out of the column,
  // is not.
  const right = article.getBoundingClientRect().right;
  const overflow = [];
  for (const el of article.querySelectorAll("*")) {
    if (el.clientWidth === 0 || el.scrollWidth <= el.clientWidth + 2) continue;
    if (el.closest("mjx-assistive-mml, .visually-hidden, .sr-only")) continue;
    // MathJax's own pieces (stretchy delimiters clip their extenders on purpose): only the
    // formula's box counts.
    if (el.parentElement && el.parentElement.closest("mjx-container")) continue;
    let box = el;
    while (box && box !== article && getComputedStyle(box).overflowX === "visible") {
      box = box.parentElement;
    }
    const mode = box && box !== article ? getComputedStyle(box).overflowX : "visible";
    if (mode === "auto" || mode === "scroll") continue;
    const spill = el.getBoundingClientRect().left + el.scrollWidth - right;
    if (mode === "visible" && spill <= 2) continue;
    if (el.parentElement && el.parentElement.closest("[data-dlbook-reported]")) continue;
    el.setAttribute("data-dlbook-reported", "");
    overflow.push(`${describe(el)}: content ${el.scrollWidth} px in ${el.clientWidth} px, ` +
                  (mode === "visible" ? `spills ${Math.round(spill)} px out of the column`
                                      : `cut off by a box with overflow-x: ${mode}`));
  }
  assistive.forEach((el) => el.style.removeProperty("display"));
  const images = [...article.querySelectorAll("img")].filter((img) => img.clientWidth > 0)
    .map((img) => ({src: img.getAttribute("src"), natural: img.naturalWidth,
                    shown: img.clientWidth, width_attr: parseFloat(img.style.width) || null,
                    svg: /\.svg(\?|$)/i.test(img.getAttribute("src") || "")}));
  const solutions = [...document.querySelectorAll("div.solution > .admonition-title")]
    .map((t) => t.textContent.trim().replace(/\s+/g, " "));
  const exercises = document.querySelector("section#exercises");
  const unlabelled = exercises ? exercises.querySelectorAll(
      "details.hide.above-input, details.hide.below-input, .cell.tag_hide-cell").length : 0;
  // display formulas that still scroll after dlbook.js scaled them down (at most 20%)
  const scrolling = [...document.querySelectorAll('mjx-container[display="true"]')]
    .filter((box) => box.scrollWidth > box.clientWidth + 1).map(describe);
  const page = document.documentElement.scrollWidth - window.innerWidth;
  return {overflow, scrolling, page, images, solutions, unlabelled,
          has_exercises: !!exercises};
})()
"""


@pytest.fixture(scope="module")
def seen():
    """Every page in every view: the probe's findings and the console messages."""
    if CHROMIUM is None:
        message = "Chromium is not installed (Debian/Ubuntu: apt-get install chromium)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    if not (SITE / "index.html").is_file():
        pytest.fail("build the site first: jupyter-book build --all -W -n --keep-going .")
    SHOTS.mkdir(parents=True, exist_ok=True)
    results = {}
    with Browser() as browser:
        for page in PAGES:
            url = (SITE / "book" / f"{page}.html").as_uri()
            for view in VIEWS:
                tab = browser.tab()
                tab.open(url, view)
                found = tab.evaluate(PROBE)
                found["messages"] = list(tab.messages)
                if page in CHAPTERS:
                    shot = SHOTS / f"{page}-{view.name}.png"
                    tab.screenshot(shot, view)
                    found["screenshot"] = shot
                results[page, view.name] = found
                browser.close_tab(tab)
    return results


def each(view_names=("light", "dark", "mobile"), pages=PAGES):
    return pytest.mark.parametrize(("page", "view"), [(p, v) for p in pages for v in view_names])


@each()
def test_nothing_overflows_without_a_scrollbar(seen, page, view):
    found = seen[page, view]
    assert found["page"] <= 1, f"the page scrolls sideways by {found['page']} px"
    assert not found["overflow"], "\n".join(found["overflow"][:15])


@each(("light", "dark"))
def test_display_equations_fit_the_column_at_1400_px(seen, page, view):
    scrolling = seen[page, view]["scrolling"]
    assert not scrolling, ("display formulas wider than the column (split them with "
                           "aligned/multline):\n" + "\n".join(scrolling))


@each()
def test_console_is_silent(seen, page, view):
    loud = [str(m) for m in seen[page, view]["messages"] if m.level in WARNING_LEVELS]
    assert not loud, "\n".join(loud)


@each(("light",), CHAPTERS)
def test_every_solution_is_labelled(seen, page, view):
    found = seen[page, view]
    if not found["has_exercises"]:
        pytest.skip("no Exercises section")
    number = int(page[:2])
    assert found["solutions"], "the Exercises section has no labelled solutions"
    for title in found["solutions"]:
        assert re.match(rf"Solution to ?Exercise {number}\.\d+", title), title
    assert found["unlabelled"] == 0, (f"{found['unlabelled']} solution cells hide behind an "
                                      "unlabelled 'Show code cell content' bar")


@each(("light",))
def test_figures_are_sharp_and_legible(seen, page, view):
    soft, small = [], []
    for image in seen[page, view]["images"]:
        if image["svg"]:
            continue
        if image["natural"] < 2 * image["shown"] - 1:
            soft.append(f"{image['src']}: {image['natural']} px shown at {image['shown']} px")
        full = image["width_attr"] or image["natural"] / 2  # the size the figure was drawn for
        if image["shown"] / full < MIN_FIGURE_SCALE:
            small.append(f"{image['src']}: shown at {image['shown'] / full:.0%} of its size")
    assert not soft, "figures with fewer than 2 pixels per displayed pixel:\n" + "\n".join(soft)
    assert not small, ("figures shrunk so far that their text is under 9 px (make them "
                       "narrower or their text larger):\n" + "\n".join(small))


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_screenshots_of_every_view(seen, chapter):
    for view in VIEWS:
        shot = seen[chapter, view.name]["screenshot"]
        assert shot.is_file() and shot.stat().st_size > 20_000, f"{shot} is empty"


def test_search_snippet_is_the_chapters_prose(tmp_path):
    """Search results quote a chapter's prose, not its buttons, title and "Contents" box.
    The results page fetches each page, which a browser allows over HTTP only."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    if CHROMIUM is None:
        pytest.skip("Chromium is not installed")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(SITE))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    wait = """(async () => {
      for (let i = 0; i < 100; i++) {
        const hit = [...document.querySelectorAll("#search-results li")]
          .find((li) => li.querySelector("a[href*='06_transformer']"));
        const context = hit && hit.querySelector("p.context");
        if (context) return context.textContent;
        await new Promise((r) => setTimeout(r, 200));
      }
      return null;
    })()"""
    try:
        with Browser() as browser:
            tab = browser.tab()
            tab.open(f"http://127.0.0.1:{server.server_port}/search.html?q=transformer",
                     VIEWS[0])
            snippet = tab.evaluate(wait)
    finally:
        server.shutdown()
    assert snippet, "no search result with a summary for chapter 6"
    assert "Contents" not in snippet and "Attention and the Transformer" not in snippet[:60], \
        snippet
