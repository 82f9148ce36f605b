"""Where the site build caches executed chapters, keyed on the package's code."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from booktools import ROOT


def code_fingerprint(root: Path = ROOT) -> str:
    """Hash every file of the dlbook package and the pinned requirements.

    jupyter-cache keys a notebook on its code cells only, so without this a change to
    ``dlbook/`` would leave stale outputs in the book. Putting the fingerprint in the cache's
    path makes any change to the package start from an empty cache.
    """
    digest = hashlib.sha256()
    files = sorted(p for p in (root / "dlbook").rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts)
    for path in files + [root / "requirements.txt"]:
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def execution_cache_path(root: Path = ROOT) -> Path:
    """The jupyter-cache folder for the current state of the package."""
    override = os.environ.get("DLBOOK_CACHE_DIR")
    base = Path(override) if override else root / "_build" / ".jupyter_cache"
    return base / code_fingerprint(root)
