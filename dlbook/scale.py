"""Training at scale on one device: compute and memory arithmetic, large-batch learning
rates, gradient accumulation, mixed precision, and checkpoints that resume exactly.

Chapter 9 builds on this module; ``dlbook.ddp`` runs the same steps on several
processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import random
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from dlbook import checkpoint

# The schedule and the step are the book's one training recipe, kept in dlbook.train;
# they are re-exported here because chapter 9 uses them as scale.warmup_cosine and
# scale.accumulation_step.
from dlbook.train import make_scheduler, warmup_cosine  # noqa: F401
from dlbook.train import train_step as accumulation_step  # noqa: F401
from dlbook.utils import check_positive_int


def training_flops(n_params: float, n_tokens: float) -> float:
    """Approximate floating-point operations to train a dense model: C = 6 N D.

    Each parameter costs one multiply and one add per token in the forward pass (2N) and
    twice that in the backward pass (4N): Kaplan et al. (2020), section 2.1.

    Args:
        n_params: number of parameters N (embeddings excluded in Kaplan's convention).
        n_tokens: number of training tokens D.
    """
    for name, value in (("n_params", n_params), ("n_tokens", n_tokens)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    return 6.0 * float(n_params) * float(n_tokens)


def memory_per_parameter(
    optimizer: str = "adam", mixed_precision: bool = False
) -> dict:
    """Bytes of training state per parameter, by part (activations not included).

    float32 training keeps weights and gradients in 4 bytes each; mixed precision keeps
    16-bit weights and gradients plus a float32 master copy (Micikevicius et al., 2018).
    Adam adds two float32 moments, SGD with momentum one.

    Args:
        optimizer: ``"sgd"``, ``"momentum"`` or ``"adam"``.
        mixed_precision: whether weights and gradients are 16-bit with a float32 master
            copy.
    """
    states = {"sgd": 0, "momentum": 1, "adam": 2}
    if optimizer not in states:
        raise ValueError(
            f"optimizer must be one of {sorted(states)}, got {optimizer!r}"
        )
    width = 2 if mixed_precision else 4
    parts = {"weights": width, "gradients": width}
    if mixed_precision:
        parts["master weights"] = 4
    for name in ("first moment", "second moment")[: states[optimizer]]:
        parts[name] = 4
    return parts


def zero_bytes_per_parameter(
    stage: int,
    world_size: int,
    weight_bytes: float = 2,
    grad_bytes: float = 2,
    optimizer_bytes: float = 12,
) -> dict[str, float]:
    """Bytes of training state each of ``world_size`` data-parallel processes keeps per
    parameter under ZeRO ``stage`` (0: plain data parallelism).

    Stage 1 shards the optimizer state, stage 2 also the gradients, stage 3 (FSDP) also
    the weights: Rajbhandari et al. (2020), figure 1, whose defaults are mixed-precision
    Adam (16-bit weights and gradients; K = 12 bytes of float32 master weights and
    moments).
    """
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"stage must be 0, 1, 2 or 3, got {stage!r}")
    check_positive_int(world_size, "world_size")
    sharded = (
        ("optimizer state", optimizer_bytes, 1),
        ("gradients", grad_bytes, 2),
        ("weights", weight_bytes, 3),
    )
    return {
        part: size / world_size if stage >= first else size
        for part, size, first in sharded
    }


def compute_optimal(
    compute: float, tokens_per_parameter: float = 20.0
) -> tuple[float, float]:
    """Chinchilla's rule of thumb: the model size and data that spend ``compute`` FLOPs
    best, ``(N, D)``.

    With C = 6 N D and D = r N, N = sqrt(C / (6 r)); Hoffmann et al. (2022) find that N
    and D grow alike, at about r = 20 tokens per parameter (their table 3).
    """
    for name, value in (
        ("compute", compute),
        ("tokens_per_parameter", tokens_per_parameter),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    n_params = (compute / (6.0 * tokens_per_parameter)) ** 0.5
    return n_params, tokens_per_parameter * n_params


def scaled_lr(base_lr: float, batch_size: int, base_batch_size: int = 256) -> float:
    """Linear scaling rule: multiply the learning rate by k when the batch grows k-fold.

    eta = base_lr * batch_size / base_batch_size (Goyal et al., 2017, section 2.1).
    """
    if base_lr <= 0:
        raise ValueError(f"base_lr must be positive, got {base_lr!r}")
    for name, value in (
        ("batch_size", batch_size),
        ("base_batch_size", base_batch_size),
    ):
        check_positive_int(value, name)
    return base_lr * batch_size / base_batch_size


def amp_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for a device, or None for plain float32.

    ``"auto"`` picks bfloat16 on the CPU and on GPUs that support it, float16 on older
    GPUs (which then need a gradient scaler, :func:`make_grad_scaler`).

    Args:
        device: where the model computes.
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``.
    """
    choices = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision == "auto":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            return torch.float16
        return torch.bfloat16
    if precision not in choices:
        raise ValueError(
            f"precision must be 'auto' or one of {sorted(choices)}, got {precision!r}"
        )
    return choices[precision]


def autocast(
    device: torch.device, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager:
    """A context that runs matrix products in ``dtype`` (no-op when ``dtype`` is
    None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_grad_scaler(
    device: torch.device, dtype: torch.dtype | None
) -> torch.amp.GradScaler:
    """Loss scaling for float16 (Micikevicius et al., 2018, section 3.2); a no-op
    otherwise.

    bfloat16 has float32's exponent range, so its small gradients do not underflow.
    """
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


def saved_activation_bytes(
    model: nn.Module,
    batch: Any,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    dtype: torch.dtype | None = None,
) -> int:
    """Bytes of the tensors autograd keeps from one forward pass for the backward pass.

    This is the activation memory that mixed precision shrinks. Weights that autograd
    keeps count too: the float32 parameters themselves, or under autocast their 16-bit
    copies.
    """
    seen: dict = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[(t.data_ptr(), t.dtype, tuple(t.shape))] = t.numel() * t.element_size()
        return t

    device = next(model.parameters()).device
    with (
        torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
        autocast(device, dtype),
    ):
        loss_fn(model, batch)
    return sum(seen.values())


def capture_rng_state() -> dict:
    """The state of Python's, NumPy's, torch's and every CUDA generator, safe to
    checkpoint."""
    _, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    return {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: dict) -> None:
    """Restore generators from :func:`capture_rng_state`, so random draws continue
    exactly."""
    missing = {"python", "numpy", "torch", "cuda"} - set(state)
    if missing:
        raise ValueError(f"RNG state lacks {sorted(missing)}")
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["gauss"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


def fingerprint(model: nn.Module, config: Any = None) -> str:
    """A short hash of the parameter names, shapes and dtypes and of the run's config.

    A checkpoint stores it; loading into a different model or config is refused.
    """
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    described = {
        "parameters": [
            [n, list(t.shape), str(t.dtype)] for n, t in model.state_dict().items()
        ],
        "config": config,
    }
    text = json.dumps(described, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _run_header(fingerprint: str, world_size: int | None) -> dict:
    header = {"fingerprint": fingerprint}
    if world_size is not None:
        check_positive_int(world_size, "world_size")
        header["world_size"] = world_size
    return header


def save_checkpoint(
    path: str | Path, state: dict, *, fingerprint: str, world_size: int | None = None
) -> None:
    """Write a :func:`training_state` in the book's checkpoint format, replacing the
    last one.

    :func:`dlbook.checkpoint.save_checkpoint` writes atomically (a temporary file,
    fsync, ``os.replace``), so a crash while saving leaves the previous checkpoint
    intact. ``world_size``, if given, is stored in the file's header, so that
    :func:`load_checkpoint` can name it when a resume has another number of processes.
    """
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")
    checkpoint.save_checkpoint(
        path,
        kind="training_state",
        config=_run_header(fingerprint, world_size),
        state_dict=state,
        force=True,
    )


def load_checkpoint(
    path: str | Path, *, fingerprint: str, world_size: int | None = None
) -> dict:
    """Read a state saved by :func:`save_checkpoint`, verified, for the run
    ``fingerprint`` on ``world_size`` processes.

    Raises ``ValueError`` naming the file and the problem when it is corrupted or
    truncated, was written by another number of processes, or was saved for another
    model or config.
    """
    header, _ = checkpoint.read_verified(path)  # checks the file; unpickles nothing
    config = header["config"] if isinstance(header["config"], dict) else {}
    saved_world = config.get("world_size")  # absent in files written without it
    if world_size is not None and saved_world is not None and saved_world != world_size:
        raise ValueError(
            f"{path} was written by {saved_world} process(es), this run has "
            f"{world_size}: a run resumes only on the number of processes that "
            f"saved it (each one's data shard, random generators and the "
            f"effective batch depend on it)"
        )
    # the fingerprint, which also covers the world size, is what must match
    expected = _run_header(fingerprint, saved_world)
    saved = checkpoint.load_checkpoint(
        path, kind="training_state", expected_config=expected
    )
    return saved.state_dict


def training_state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    step: int,
    data_position: dict,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
    rng: list | None = None,
) -> dict:
    """Everything needed to continue a run exactly, as a dict for
    :func:`save_checkpoint`.

    Args:
        step: optimizer steps taken so far.
        data_position: where the data stream stands, e.g. ``{"epoch": 3, "batch": 17}``.
        rng: one :func:`capture_rng_state` per process (rank order); this process's if
            None.
    """
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict()
        if scaler is not None and scaler.is_enabled()
        else None,
        "step": step,
        "data_position": dict(data_position),
        "rng": rng if rng is not None else [capture_rng_state()],
    }


def restore_training_state(
    state: dict,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
    rank: int = 0,
) -> tuple:
    """Load a :func:`training_state` into live objects; returns
    ``(step, data_position)``.

    The random generators are restored last, to the state of process ``rank``.
    """
    if len(state["rng"]) <= rank:
        raise ValueError(
            f"checkpoint holds RNG states of {len(state['rng'])} process(es), "
            f"cannot resume rank {rank}"
        )
    getattr(model, "module", model).load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state["scaler"] is not None:
        scaler.load_state_dict(state["scaler"])
    restore_rng_state(state["rng"][rank])
    return state["step"], dict(state["data_position"])


@dataclasses.dataclass(frozen=True)
class NoiseScale:
    """The gradient noise scale and the two quantities it is the ratio of."""

    grad_sq: float  # estimate of |G|^2, the squared norm of the true gradient
    trace_sigma: float  # estimate of tr(Sigma), per-example gradient variance, summed
    b_simple: float  # trace_sigma / grad_sq, in examples


def gradient_noise_scale(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    batches: list[Any],
    batch_size: int,
) -> NoiseScale:
    """Estimate the gradient noise scale ``B_simple = tr(Sigma) / |G|^2`` (McCandlish et
    al., 2018, appendix A.1) from the gradients of k batches of ``batch_size`` examples.

    With ``b = batch_size`` and ``B = k b``, the mean loss gradient of a batch of size b
    has ``E|g_b|^2 = |G|^2 + tr(Sigma) / b``. The k small gradients give ``E|g_b|^2``
    (their mean squared norm) and their mean is the gradient of all B examples, so
    ``|G|^2 = (B |g_B|^2 - b |g_b|^2) / (B - b)`` and
    ``tr(Sigma) = (|g_b|^2 - |g_B|^2) / (1/b - 1/B)``, both unbiased.
    ``loss_fn(model, batch)`` must return the *mean* loss of the batch.
    """
    check_positive_int(batch_size, "batch_size")
    if len(batches) < 2:
        raise ValueError(f"batches must hold at least 2 batches, got {len(batches)}")
    params = [p for p in model.parameters() if p.requires_grad]
    grads = []
    for batch in batches:
        loss = loss_fn(model, batch)
        grads.append(
            torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)])
        )
    small, large = batch_size, batch_size * len(batches)
    small_sq = torch.stack([g.square().sum() for g in grads]).mean().item()
    large_sq = torch.stack(grads).mean(0).square().sum().item()
    grad_sq = (large * large_sq - small * small_sq) / (large - small)
    trace_sigma = (small_sq - large_sq) / (1 / small - 1 / large)
    return NoiseScale(grad_sq, trace_sigma, trace_sigma / grad_sq)
