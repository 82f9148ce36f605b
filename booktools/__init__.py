"""Plumbing that builds and tests the book (not part of the dlbook package readers install).

- ``cache``: where executed chapters are cached, keyed on the package's code, so the site
  build reuses the outputs of the test run instead of executing every chapter twice.
- ``notebooks``: the Colab notebooks generated from the MyST chapters.
- ``sphinx_ext``: a small Sphinx extension (offline MathJax, the cache path, build checks).
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
