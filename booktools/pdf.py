"""The whole book as one PDF, printed from the site by headless Chromium (no TeX).

1. ``jupyter-book build --builder singlehtml`` writes every page into one HTML file; the
   chapters' executed outputs come from the execution cache the site build just filled, so
   nothing runs again.
2. A print copy of that page opens every folded block (hidden code cells and solutions),
   since paper cannot unfold them.
3. Chromium prints it (``--print-to-pdf``) after MathJax has typeset every formula: the virtual
   time budget lets the page's scripts finish first. The site's stylesheet has print rules
   (no navigation or buttons, one chapter per page).

The PDF is written to ``_build/pdf/dlbook.pdf`` and copied into the site as ``dlbook.pdf``
(the landing page links to it). The site build runs this at its end
(``booktools.sphinx_ext``; ``DLBOOK_PDF=0`` skips it); by hand::

    python -m booktools.pdf [--config _config.yml] [--path-output .]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from booktools import ROOT

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
PRINT_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-pdf-header-footer",
               "--run-all-compositor-stages-before-draw", "--virtual-time-budget=180000"]
PDF_NAME = "dlbook.pdf"


def chromium() -> str:
    found = next((shutil.which(n) for n in CHROMIUM_NAMES if shutil.which(n)), None)
    if found is None:
        raise FileNotFoundError("the PDF needs Chromium (Debian/Ubuntu: apt-get install "
                                "chromium)")
    return found


def build_single_page(root: Path, config: Path | None, output: Path) -> Path:
    """Run Jupyter Book's singlehtml builder; returns the folder of its ``index.html``."""
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(root),
               "--builder", "singlehtml", "--path-output", str(output)]
    if config is not None:
        command += ["--config", str(config)]
    env = dict(os.environ, DLBOOK_PDF="0")  # the nested build must not print a PDF itself
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=root)
    if result.returncode != 0:
        raise RuntimeError(f"the single-page build failed:\n{result.stdout[-3000:]}\n"
                           f"{result.stderr[-3000:]}")
    folder = output / "_build" / "singlehtml"
    if not (folder / "index.html").is_file():
        raise RuntimeError(f"no {folder / 'index.html'} after the single-page build")
    return folder


def single_page(folder: Path) -> Path:
    """The page holding the whole book: Jupyter Book's ``index.html`` only redirects to it."""
    page = folder / "index.html"
    redirect = re.search(r'http-equiv="refresh"[^>]*url=([^"\']+)', page.read_text(encoding="utf8"),
                         re.IGNORECASE)
    return (folder / redirect.group(1)).resolve() if redirect else page


def print_copy(folder: Path) -> Path:
    """The single page with every folded block open, as ``print.html`` in the output's root:
    Sphinx writes the page's links to styles, scripts and images relative to that root."""
    page = single_page(folder)
    html = page.read_text(encoding="utf8")
    html = re.sub(r"<details(?![^>]*\bopen\b)", "<details open", html)  # hidden code cells
    html = html.replace("toggle-hidden", "")  # sphinx-togglebutton's folded admonitions
    html = re.sub(r'(<div class="[^"]*)\bdropdown\b', r"\1", html)  # folded solutions
    target = folder / "print.html"
    target.write_text(html, encoding="utf8")
    return target


def print_pdf(page: Path, pdf: Path) -> Path:
    """Print ``page`` to ``pdf`` with headless Chromium once its scripts have finished."""
    pdf.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dlbook-pdf-") as profile:
        result = subprocess.run([chromium(), *PRINT_FLAGS, f"--user-data-dir={profile}",
                                 f"--print-to-pdf={pdf}", page.as_uri()],
                                capture_output=True, text=True, timeout=600)
    if not pdf.is_file() or pdf.stat().st_size < 10_000:
        raise RuntimeError(f"Chromium wrote no PDF:\n{result.stderr[-3000:]}")
    return pdf


def build_pdf(root: Path = ROOT, config: Path | None = None,
              path_output: Path | None = None) -> Path:
    """Build ``_build/pdf/dlbook.pdf`` under ``path_output`` and copy it into the site."""
    output = (path_output or root).resolve()
    folder = build_single_page(root, config, output)
    pdf = print_pdf(print_copy(folder), output / "_build" / "pdf" / PDF_NAME)
    site = output / "_build" / "html"
    if site.is_dir():
        shutil.copy2(pdf, site / PDF_NAME)
    return pdf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="the book's _config.yml")
    parser.add_argument("--path-output", type=Path, default=None,
                        help="the folder holding _build/ (default: the repository)")
    args = parser.parse_args(argv)
    pdf = build_pdf(ROOT, args.config, args.path_output)
    print(f"wrote {pdf} ({pdf.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
