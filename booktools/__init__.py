"""Plumbing that builds and tests the book (not part of the dlbook package readers install).

- ``cache``: where executed chapters are cached, keyed on the package's code.
- ``notebooks``: the Colab notebooks generated from the MyST chapters, with the glued values
  of their last execution; ``myst``: their markdown, MyST turned into plain markdown.
- ``sphinx_ext``: a small Sphinx extension (offline MathJax, the cache path, build checks).

The repository's address is written in one place, ``repository.url`` in ``_config.yml`` (Jupyter
Book's buttons read it there); everything else reads it through :func:`repository_url`, and
``tests/test_book.py`` checks that the README, pyproject.toml and the notebooks agree with it.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"


def book_config(root: Path = ROOT) -> dict:
    """The Jupyter Book configuration, ``_config.yml``."""
    return yaml.safe_load((root / "_config.yml").read_text(encoding="utf8"))


def repository_url(root: Path = ROOT) -> str:
    """The repository the book is published from, ``https://github.com/OWNER/NAME``."""
    return book_config(root)["repository"]["url"].rstrip("/")


def repository_branch(root: Path = ROOT) -> str:
    """The branch the website and Colab read the book from."""
    return book_config(root)["repository"].get("branch", "main")


def site_url(root: Path = ROOT) -> str:
    """The book's website, ending in ``/``.

    ``html.baseurl`` in ``_config.yml`` when it is set; otherwise the GitHub Pages address of
    the repository (``https://github.com/OWNER/NAME`` is published at
    ``https://OWNER.github.io/NAME/``), where Jupyter Book's ``ghp-import`` puts the site.
    """
    config = book_config(root)
    baseurl = (config.get("html") or {}).get("baseurl")
    if baseurl:
        return baseurl.rstrip("/") + "/"
    url = repository_url(root)
    match = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)(?:\.git)?", url)
    if match is None:
        raise ValueError(f"_config.yml: set html.baseurl, the website of a repository that is "
                         f"not on GitHub (repository.url is {url!r})")
    owner, name = match.groups()
    return f"https://{owner.lower()}.github.io/{name}/"
