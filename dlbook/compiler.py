"""``torch.compile`` measured: graph capture, fused kernels, and compiled training
steps.

``torch.compile`` works in two stages. TorchDynamo reads a Python function's bytecode as
it runs and records the tensor operations into an FX graph; where Python needs a
tensor's *value* (an ``if`` on a sum, ``.item()``), it ends the graph there (a *graph
break*), runs that bit of Python eagerly and starts a new graph after it. Inductor then
turns each graph into code: chains of element-wise operations become one loop that reads
each input once and writes each output once, emitted as C++ with OpenMP on a CPU
(compiled with the system's C++ compiler) and as Triton kernels on a GPU.

The functions here measure both stages on small examples: how many graphs a function
becomes, which kernels Inductor writes for it, and how long compiling and running take
against eager PyTorch.
"""

from __future__ import annotations

import copy
import math
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from dlbook.train import train_step
from dlbook.utils import check_positive_int, time_runs


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GELU in its tanh approximation, written as a chain of element-wise operations.

    Eager PyTorch runs each of its eight operations as its own pass over memory; the
    result equals ``nn.functional.gelu(x, approximate="tanh")``.
    """
    inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)
    return 0.5 * x * (1.0 + torch.tanh(inner))


def normalize_if_large(x: torch.Tensor) -> torch.Tensor:
    """Scale ``x`` to unit norm if its norm exceeds 1, then apply GELU.

    The ``if`` needs the value of a tensor, which a traced graph cannot hold:
    TorchDynamo breaks the graph there.
    """
    norm = x.norm()
    if norm > 1:  # data-dependent branch: a graph break
        x = x / norm
    return gelu_tanh(x)


@dataclass(frozen=True)
class GraphReport:
    """What TorchDynamo captured from one call of a function."""

    graphs: int  # FX graphs the function was split into
    breaks: int  # graph breaks between them
    ops: int  # tensor operations captured in all graphs
    reasons: tuple[str, ...]  # why each break happened


def graph_report(fn: Callable[..., Any], *args: Any) -> GraphReport:
    """Run ``fn(*args)`` under ``torch._dynamo.explain`` and count graphs and breaks.

    ``explain`` resets TorchDynamo's caches before and after it runs, so functions
    compiled earlier in the session recompile on their next call.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    explained = torch._dynamo.explain(fn)(*args)
    return GraphReport(
        graphs=explained.graph_count,
        breaks=explained.graph_break_count,
        ops=explained.op_count,
        reasons=tuple(str(r.reason) for r in explained.break_reasons),
    )


_KERNEL = re.compile(
    r"^(\w+) = async_compile\.(?:cpp_pybinding|cpp|triton)\(", re.MULTILINE
)


def kernel_names(code: str) -> list[str]:
    """The names of the kernels (C++ or Triton) in Inductor's generated module
    ``code``."""
    return _KERNEL.findall(code)


def kernel_loop_body(code: str) -> list[str]:
    """The statements of the first vectorised CPU loop in ``code``, from its first
    load to its first store (empty for Triton code)."""
    lines = [line.strip() for line in code.splitlines()]
    start = next((i for i, s in enumerate(lines) if "loadu(" in s), None)
    if start is None:
        return []
    end = next(i for i in range(start, len(lines)) if ".store(" in lines[i])
    return lines[start : end + 1]


@dataclass(frozen=True)
class CompiledComparison:
    """Eager against compiled for one function and one input."""

    first_call_s: float  # capture + compile + run: the compile time
    eager_s: float  # median time per call
    compiled_s: float  # median time per call, after compiling
    max_abs_diff: float  # largest difference of the outputs
    code: str  # Inductor's generated module


def compare_compiled(
    fn: Callable[..., torch.Tensor],
    *args: torch.Tensor,
    repeats: int = 5,
    device: torch.device | None = None,
) -> CompiledComparison:
    """Compile ``fn``, time its first call, then time eager and compiled calls.

    The generated code is caught with ``torch._inductor.utils.run_and_get_code``, which
    resets TorchDynamo's caches before compiling (so the first call really compiles,
    from Inductor's on-disk cache if an earlier process filled it).
    """
    check_positive_int(repeats, "repeats")
    from torch._inductor.utils import run_and_get_code

    compiled = torch.compile(fn)
    start = time.perf_counter()
    out, codes = run_and_get_code(compiled, *args)
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    first = time.perf_counter() - start
    expected = fn(*args)
    eager_times = time_runs(lambda: fn(*args), repeats, device)
    compiled_times = time_runs(lambda: compiled(*args), repeats, device)
    return CompiledComparison(
        first_call_s=first,
        eager_s=float(np.median(eager_times)),
        compiled_s=float(np.median(compiled_times)),
        max_abs_diff=(out - expected).abs().max().item(),
        code="\n".join(codes),
    )


@dataclass(frozen=True)
class CompiledTraining:
    """The same training steps run eagerly and with a compiled model."""

    eager_loss: tuple[float, ...]  # loss of each step
    compiled_loss: tuple[float, ...]
    first_step_s: float  # the compiled model's first step, compile included
    eager_step_s: float  # median of the steps after the first
    compiled_step_s: float


def compare_training(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, Sequence[torch.Tensor]], torch.Tensor],
    batches: Sequence[Sequence[torch.Tensor]],
    lr: float = 1e-3,
) -> CompiledTraining:
    """Train a copy of ``model`` with AdamW on ``batches`` eagerly, and another copy
    compiled with ``torch.compile`` (forward and backward; the optimizer runs eagerly).

    Both copies start from the same weights; ``model`` itself is not changed.
    """
    if len(batches) < 2:
        raise ValueError(f"batches must hold at least 2 batches, got {len(batches)}")
    losses: dict[str, list[float]] = {"eager": [], "compiled": []}
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for name in ("eager", "compiled"):
        net = copy.deepcopy(model)
        optimizer = torch.optim.AdamW(net.parameters(), lr=lr)
        run = torch.compile(net) if name == "compiled" else net
        for batch in batches:
            start = time.perf_counter()
            # .item() waits for the step to finish, on a GPU too
            losses[name].append(train_step(run, optimizer, [batch], loss_fn).item())
            times[name].append(time.perf_counter() - start)
    return CompiledTraining(
        eager_loss=tuple(losses["eager"]),
        compiled_loss=tuple(losses["compiled"]),
        first_step_s=times["compiled"][0],
        eager_step_s=float(np.median(times["eager"][1:])),
        compiled_step_s=float(np.median(times["compiled"][1:])),
    )
