"""dlbook: the code of an open deep-learning textbook.

Each module is one topic of the book and imports only more basic modules:
``autograd`` (chapter 1) stands alone; later modules build on ``utils``.

The shared helpers are imported on first use, so ``import dlbook.autograd`` stays free
of
PyTorch: chapter 1's engine needs nothing but the standard library.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["get_device", "glue", "set_seed", "show_source", "__version__"]


def __getattr__(name: str) -> Any:
    """``from dlbook import glue`` loads ``dlbook.utils`` (and PyTorch) only when
    asked."""
    if name in __all__:
        return getattr(importlib.import_module("dlbook.utils"), name)
    raise AttributeError(f"module 'dlbook' has no attribute {name!r}")
