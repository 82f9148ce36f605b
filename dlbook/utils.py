"""Small helpers every chapter shares: the device, the seed, and showing code."""

from __future__ import annotations

import inspect
import os
import random
from typing import Any

import numpy as np
import torch


def get_device(prefer: str | None = None) -> torch.device:
    """Return the device every chapter computes on: CUDA when present, else the CPU.

    This is the one place the book chooses a device. ``prefer`` (or the environment
    variable ``DLBOOK_DEVICE``) overrides the choice, e.g. ``"cpu"`` to compare timings.
    """
    choice = prefer or os.environ.get("DLBOOK_DEVICE")
    if choice is not None:
        if not isinstance(choice, str) or choice.split(":")[0] not in ("cpu", "cuda", "mps"):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'mps', got {choice!r}")
        if choice.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {choice!r} was asked for, but CUDA is not available")
        return torch.device(choice)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's random number generators (CPU and CUDA).

    On a GPU, seeds are not enough: cuDNN may pick a different, non-deterministic algorithm
    from one run to the next, and cuBLAS needs a fixed workspace to repeat its sums exactly.
    Both are pinned here, so a chapter prints the same numbers every time it runs.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def glue(name: str, value: Any, display: bool = False) -> None:
    """Record a computed value under ``name`` so the book's text can quote it.

    The HTML book inserts it with ``{glue:text}`name:.2f``` (myst-nb). Where myst-nb is not
    installed, as in Colab, this does nothing: the reader sees the value in the cell's output.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"glue name must be an identifier, got {name!r}")
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        # numpy and torch scalars become Python numbers, which {glue:text} can format
        value = value.item()
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return
    myst_glue(name, value, display=display)


def show_source(obj: Any) -> Any:
    """Display the source code of a dlbook function or class.

    The HTML book shows package code with ``literalinclude``; notebooks opened in Colab
    call this instead, so the reader sees the same code in both places.
    """
    if not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismethod(obj)):
        raise TypeError(
            f"show_source expects a function, method or class, got {type(obj).__name__}")
    source = inspect.getsource(obj)
    try:
        from IPython.display import Code

        return Code(source, language="python")
    except ImportError:  # outside Jupyter: plain text is fine
        print(source)
        return None
