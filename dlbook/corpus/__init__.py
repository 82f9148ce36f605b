"""The book's text corpus: a fixed snapshot of Python's own documentation topics.

Chapters 5, 7 and 9 train character models on the help pages of Python's statements and
types (what ``help("with")`` shows), which the standard library ships as
``pydoc_data.topics``. That text differs between Python versions (459 K characters on 3.10,
511 K on 3.13), so reading it from the running interpreter would give every Python its own
data and its own numbers. The book instead ships one snapshot, taken from Python 3.11.7
(the topics joined in sorted-key order, one newline between topics), and checks its SHA-256
every time it is read. The text is the Python Software Foundation's, under the PSF License
Agreement in ``LICENSE-PSF.txt`` beside this file.

This module imports nothing but the standard library, so it loads without torch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PYTHON_VERSION = "3.11.7"  # the interpreter whose pydoc_data.topics the snapshot is
FILE = Path(__file__).with_name(f"pydoc_topics_{PYTHON_VERSION}.txt")
SHA256 = "2a95af4ac93f5b719944030ce3769070ddf827d847cba42192afa8da989e5dc4"
N_CHARACTERS = 465_048
ATTRIBUTION = (
    f"Python {PYTHON_VERSION} documentation topics (pydoc_data), "
    "Copyright (c) 2001-2023 Python Software Foundation; used under the PSF License Agreement."
)


def pydoc_text() -> str:
    """Return the shipped snapshot of Python 3.11.7's ``pydoc_data.topics``, after checking it.

    Raises ``FileNotFoundError`` if the file is missing from the installed package, and
    ``ValueError`` if its SHA-256 differs from the one recorded here (a damaged or edited copy),
    so no chapter ever trains on text other than the one its numbers were measured on.
    """
    if not FILE.is_file():
        raise FileNotFoundError(f"the corpus file {FILE} is missing; reinstall dlbook")
    data = FILE.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise ValueError(
            f"the corpus file {FILE} is damaged: SHA-256 {digest}, expected {SHA256}; "
            "reinstall dlbook")
    return data.decode("utf-8")
