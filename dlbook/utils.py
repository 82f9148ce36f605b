"""Small helpers every chapter shares: the device, the seed, timing, showing code, and
the argument checks every public function of the package uses."""

from __future__ import annotations

import inspect
import math
import os
import random
import time
import warnings
from numbers import Integral, Real
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

with warnings.catch_warnings():
    # Without ipywidgets, tqdm.auto warns once ("IProgress not found") and falls back to
    # a text bar, which is what the printed book wants; the warning is silenced. Every
    # module that shows progress imports ``tqdm`` from here.
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm  # noqa: F401 (for the modules that show progress)

    # is tqdm.auto the widget?
    from tqdm.notebook import tqdm as notebook_tqdm  # noqa: F401

# what the API page documents; ``tqdm`` is imported from here but is tqdm's own
__all__ = [
    "check_ids",
    "check_int",
    "check_positive_int",
    "check_real",
    "count_parameters",
    "get_device",
    "glue",
    "model_device",
    "set_seed",
    "show_source",
    "time_runs",
]


def check_int(
    value: object, name: str, minimum: int | None = None, maximum: int | None = None
) -> int:
    """Return ``value`` as an int after checking it is one (``True`` is not) within the
    bounds.

    Raises a TypeError for a non-integer and a ValueError for one out of range; both
    name the argument, what was expected and what came.
    """
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}: {value!r}")
    if (minimum is not None and value < minimum) or (
        maximum is not None and value > maximum
    ):
        if minimum is not None and maximum is not None:
            expected = f"in [{minimum}, {maximum}]"
        else:
            expected = f">= {minimum}" if maximum is None else f"<= {maximum}"
        raise ValueError(f"{name} must be an int {expected}, got {value!r}")
    return int(value)


def check_positive_int(value: object, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int after checking it is a size: an int (not a bool) >=
    ``minimum``.

    A TypeError for a non-integer (``True``, ``2.0``, ``"3"``), a ValueError for one too
    small; both name the argument, what was expected and what came.
    """
    expected = "a positive int" if minimum == 1 else f"an int >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(
            f"{name} must be {expected}, got {type(value).__name__}: {value!r}"
        )
    if value < minimum:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return int(value)


def check_real(
    value: object,
    name: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a float after checking it is a finite real number in the
    interval from ``low`` to ``high`` (closed ends unless ``low_open`` / ``high_open``).

    A probability is ``check_real(p, "p", 0, 1)``; a learning rate
    ``check_real(lr, "lr", 0, low_open=True)``. NaN and infinity are refused: no
    argument of the book means either.
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(
            f"{name} must be a real number, got {type(value).__name__}: {value!r}"
        )
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if math.isfinite(value) and not too_low and not too_high:
        return value
    if low is not None and high is not None:
        expected = (
            f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        )
    elif low is not None:
        expected = f"{'>' if low_open else '>='} {low:g}"
    elif high is not None:
        expected = f"{'<' if high_open else '<='} {high:g}"
    else:
        expected = "finite"
    if not math.isfinite(value) and expected != "finite":
        expected = f"finite and {expected}"
    raise ValueError(f"{name} must be {expected}, got {value!r}")


def check_ids(
    idx: object, vocab_size: int, name: str = "idx", dim: int = 2
) -> torch.Tensor:
    """Check that ``idx`` is an int64 tensor of ``dim`` dimensions whose ids lie in
    ``[0, vocab_size)``, what an ``nn.Embedding`` of ``vocab_size`` rows can look up.

    Without this check an id out of range fails deep inside torch ("index out of range
    in self") on the CPU, and as an asynchronous device assert on CUDA.
    """
    if not isinstance(idx, torch.Tensor):
        raise TypeError(f"{name} must be an int64 tensor, got {type(idx).__name__}")
    if idx.dim() != dim or idx.dtype != torch.long:
        shape = "(B, T)" if dim == 2 else f"{dim}-D"
        raise ValueError(
            f"{name} must be {shape} int64 ids, got shape "
            f"{tuple(idx.shape)} and dtype {idx.dtype}"
        )
    if idx.numel() and (bool(idx.min() < 0) or bool(idx.max() >= vocab_size)):
        raise ValueError(
            f"{name} must hold ids in [0, {vocab_size}), got values in "
            f"[{idx.min().item()}, {idx.max().item()}]"
        )
    return idx


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters live (the CPU for a model without any)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    tensor = next(model.parameters(), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def count_parameters(model: nn.Module) -> int:
    """The number of distinct parameters; a tied weight (shared by two layers) counts
    once."""
    # parameters() yields each tensor once
    return sum(p.numel() for p in model.parameters())


def time_runs(
    fn: Callable[[], Any], repeats: int = 5, device: torch.device | None = None
) -> list[float]:
    """Call ``fn()`` ``repeats`` times and return each call's wall-clock time in
    seconds.

    Take the ``min`` to estimate the cost without interruptions, or the median for a
    typical run. On a GPU, work is asynchronous: with a CUDA ``device`` the clock is
    read only after the device has finished.
    """
    check_positive_int(repeats, "repeats")
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    cuda = device is not None and torch.device(device).type == "cuda"
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def get_device(prefer: str | None = None) -> torch.device:
    """Return the device every chapter computes on: CUDA when present, else the CPU.

    This is the one place the book chooses a device. ``prefer`` (or the environment
    variable ``DLBOOK_DEVICE``) overrides the choice, e.g. ``"cpu"`` to compare timings.
    """
    choice = prefer or os.environ.get("DLBOOK_DEVICE")
    if choice is not None:
        if not isinstance(choice, str) or choice.split(":")[0] not in (
            "cpu",
            "cuda",
            "mps",
        ):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'mps', got {choice!r}")
        if choice.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(
                f"device {choice!r} was asked for, but CUDA is not available"
            )
        return torch.device(choice)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's random number generators (CPU and CUDA).

    On a GPU, seeds are not enough: cuDNN may pick a different, non-deterministic
    algorithm from one run to the next, and cuBLAS needs a fixed workspace to repeat its
    sums exactly. Both are pinned here, so a chapter prints the same numbers every time
    it runs.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    seed += seed_offset()  # 0 except in the book's robustness check (booktools.spread)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    # read when cuBLAS starts
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def seed_offset() -> int:
    """The offset ``booktools.spread`` adds to every seed (``DLBOOK_SEED_OFFSET``,
    default 0).

    The book's robustness check re-runs each chapter with offsets 1 and 2 to see whether
    its claims hold on other seeds; readers never set it.
    """
    return int(os.environ.get("DLBOOK_SEED_OFFSET", "0"))


def make_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed`` (plus ``seed_offset()``), for the
    training loops' batch order, so that it changes with the seed offset as the weights
    do."""
    check_int(seed, "seed", minimum=0)
    return torch.Generator().manual_seed(seed + seed_offset())


def glue(name: str, value: Any, display: bool = False) -> None:
    """Record a computed value under ``name`` so the book's text can quote it.

    The HTML book inserts it with ``{glue:text}`name:.2f``` (myst-nb). Where myst-nb is
    not installed, as in Colab, this does nothing: the reader sees the value in the
    cell's output.
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
            f"show_source expects a function, method or class, got {type(obj).__name__}"
        )
    source = inspect.getsource(obj)
    try:
        from IPython.display import Code

        return Code(source, language="python")
    except ImportError:  # outside Jupyter: plain text is fine
        print(source)
        return None
