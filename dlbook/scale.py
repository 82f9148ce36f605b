"""Training at scale on one device: compute and memory arithmetic, large-batch learning
rates, gradient accumulation, mixed precision, and checkpoints that resume exactly.

Chapter 9 builds on this module; ``dlbook.ddp`` runs the same steps on several processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import json
import math
import os
import random
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

CHECKPOINT_MAGIC = b"DLBOOK-CHECKPOINT\n"
CHECKPOINT_VERSION = 1


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


def memory_per_parameter(optimizer: str = "adam", mixed_precision: bool = False) -> dict:
    """Bytes of training state per parameter, by part (activations not included).

    float32 training keeps weights and gradients in 4 bytes each; mixed precision keeps
    16-bit weights and gradients plus a float32 master copy (Micikevicius et al., 2018).
    Adam adds two float32 moments, SGD with momentum one.

    Args:
        optimizer: ``"sgd"``, ``"momentum"`` or ``"adam"``.
        mixed_precision: whether weights and gradients are 16-bit with a float32 master copy.
    """
    states = {"sgd": 0, "momentum": 1, "adam": 2}
    if optimizer not in states:
        raise ValueError(f"optimizer must be one of {sorted(states)}, got {optimizer!r}")
    width = 2 if mixed_precision else 4
    parts = {"weights": width, "gradients": width}
    if mixed_precision:
        parts["master weights"] = 4
    for name in ("first moment", "second moment")[: states[optimizer]]:
        parts[name] = 4
    return parts


def scaled_lr(base_lr: float, batch_size: int, base_batch_size: int = 256) -> float:
    """Linear scaling rule: multiply the learning rate by k when the batch grows k-fold.

    eta = base_lr * batch_size / base_batch_size (Goyal et al., 2017, section 2.1).
    """
    if base_lr <= 0:
        raise ValueError(f"base_lr must be positive, got {base_lr!r}")
    for name, value in (("batch_size", batch_size), ("base_batch_size", base_batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    return base_lr * batch_size / base_batch_size


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.1) -> float:
    """Learning-rate multiplier: linear warm-up, then cosine decay to ``min_ratio``.

    The warm-up ramps from 1/warmup_steps to 1 over the first ``warmup_steps`` steps, which
    keeps the large early updates of a large batch from diverging (Goyal et al., 2017, 2.2).
    """
    if not 0 <= warmup_steps <= total_steps or total_steps <= 0:
        raise ValueError(
            f"need 0 <= warmup_steps <= total_steps and total_steps > 0, "
            f"got warmup_steps={warmup_steps}, total_steps={total_steps}"
        )
    if not 0.0 <= min_ratio <= 1.0:
        raise ValueError(f"min_ratio must be in [0, 1], got {min_ratio!r}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_ratio: float = 0.1
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` following :func:`warmup_cosine`; call ``step()`` once per optimizer step."""
    warmup_cosine(0, warmup_steps, total_steps, min_ratio)  # validates the arguments
    schedule = functools.partial(
        warmup_cosine, warmup_steps=warmup_steps, total_steps=total_steps, min_ratio=min_ratio
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def amp_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for a device, or None for plain float32.

    ``"auto"`` picks bfloat16 on the CPU and on GPUs that support it, float16 on older GPUs
    (which then need a gradient scaler, :func:`make_grad_scaler`).

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
        raise ValueError(f"precision must be 'auto' or one of {sorted(choices)}, got {precision!r}")
    return choices[precision]


def autocast(
    device: torch.device, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager:
    """A context that runs matrix products in ``dtype`` (no-op when ``dtype`` is None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """Loss scaling for float16 (Micikevicius et al., 2018, section 3.2); a no-op otherwise.

    bfloat16 has float32's exponent range, so its small gradients do not underflow.
    """
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


def accumulation_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    micro_batches: Iterable[Any],
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    *,
    dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    grad_clip: float | None = None,
) -> torch.Tensor:
    """One optimizer step from k equal-sized micro-batches; returns the mean loss.

    Each micro-batch loss is divided by k, so the summed gradient is the gradient of the
    mean loss over all k micro-batches: the step equals one step on their concatenation.
    A ``DistributedDataParallel`` model synchronises gradients only on the last backward.

    Args:
        micro_batches: a list of k batches, each accepted by ``loss_fn(model, batch)``.
        dtype: autocast dtype (see :func:`amp_dtype`), None for float32.
        scaler: a gradient scaler for float16 (:func:`make_grad_scaler`), else None.
        grad_clip: maximum global gradient norm, or None.
    """
    batches = list(micro_batches)
    if not batches:
        raise ValueError("micro_batches must hold at least one batch, got none")
    device = next(model.parameters()).device
    scaler = scaler if scaler is not None else torch.amp.GradScaler(device.type, enabled=False)
    losses = []
    for i, batch in enumerate(batches):
        skip_sync = i < len(batches) - 1 and hasattr(model, "no_sync")
        with model.no_sync() if skip_sync else contextlib.nullcontext():
            with autocast(device, dtype):
                loss = loss_fn(model, batch) / len(batches)
            scaler.scale(loss).backward()  # gradients add up in .grad
        losses.append(loss.detach())
    scaler.unscale_(optimizer)  # true gradient sizes before clipping
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)  # a float16 overflow skips the step and lowers the scale
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return torch.stack(losses).sum()


def saved_activation_bytes(
    model: nn.Module, batch: Any, loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    dtype: torch.dtype | None = None,
) -> int:
    """Bytes of the tensors autograd keeps from one forward pass for the backward pass.

    This is the activation memory that mixed precision shrinks. Weights that autograd keeps
    count too: the float32 parameters themselves, or under autocast their 16-bit copies.
    """
    seen: dict = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[(t.data_ptr(), t.dtype, tuple(t.shape))] = t.numel() * t.element_size()
        return t

    device = next(model.parameters()).device
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast(device, dtype):
        loss_fn(model, batch)
    return sum(seen.values())


def capture_rng_state() -> dict:
    """The state of Python's, NumPy's, torch's and every CUDA generator, safe to checkpoint."""
    _, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    return {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: dict) -> None:
    """Restore generators from :func:`capture_rng_state`, so random draws continue exactly."""
    missing = {"python", "numpy", "torch", "cuda"} - set(state)
    if missing:
        raise ValueError(f"RNG state lacks {sorted(missing)}")
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
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
        "parameters": [[n, list(t.shape), str(t.dtype)] for n, t in model.state_dict().items()],
        "config": config,
    }
    text = json.dumps(described, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _checksum(version: int, fingerprint_: str, payload: bytes) -> str:
    digest = hashlib.sha256(f"{version}:{fingerprint_}:".encode())
    digest.update(payload)
    return digest.hexdigest()


def save_checkpoint(path: str | Path, state: dict, *, fingerprint: str) -> None:
    """Write ``state`` atomically: to a temporary file beside ``path``, then ``os.replace``.

    The file is a magic line, a JSON header (format version, fingerprint, SHA-256, size) and
    the ``torch.save`` payload. A crash or an error while writing leaves any existing file
    at ``path`` untouched, since ``os.replace`` is atomic on POSIX and Windows.
    """
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(state, buffer)  # fails here, before any file is touched, on unsavable state
    payload = buffer.getvalue()
    header = {"version": CHECKPOINT_VERSION, "fingerprint": fingerprint, "size": len(payload),
              "sha256": _checksum(CHECKPOINT_VERSION, fingerprint, payload)}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(CHECKPOINT_MAGIC + json.dumps(header).encode() + b"\n" + payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, *, fingerprint: str) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`, verifying it first.

    Raises ``ValueError`` naming the problem when the file is not a checkpoint, has another
    format version, was saved for another model or config, or is truncated or corrupted.
    Nothing is modified; callers restore state only from the dict this returns.
    """
    data = Path(path).read_bytes()
    if not data.startswith(CHECKPOINT_MAGIC):
        raise ValueError(f"{path} is not a dlbook checkpoint (missing the header line)")
    header_line, _, payload = data[len(CHECKPOINT_MAGIC):].partition(b"\n")
    try:
        header = json.loads(header_line)
        keys = ("version", "fingerprint", "size", "sha256")
        version, saved, size, digest = (header[k] for k in keys)
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path} has a corrupted header: {err}") from None
    if version != CHECKPOINT_VERSION:
        raise ValueError(
            f"{path} has format version {version}, this code reads {CHECKPOINT_VERSION}"
        )
    if saved != fingerprint:
        raise ValueError(
            f"{path} was saved for another model or config: "
            f"fingerprint {saved}, expected {fingerprint}"
        )
    if len(payload) != size:
        raise ValueError(
            f"{path} is truncated or padded: payload of {len(payload)} bytes, header says {size}"
        )
    if _checksum(version, saved, payload) != digest:
        raise ValueError(f"{path} is corrupted: its SHA-256 checksum does not match")
    # map to the CPU: a checkpoint written on a GPU must load anywhere; load_state_dict then
    # copies each tensor to the device of the parameter or optimizer state it fills
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)


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
    """Everything needed to continue a run exactly, as a dict for :func:`save_checkpoint`.

    Args:
        step: optimizer steps taken so far.
        data_position: where the data stream stands, e.g. ``{"epoch": 3, "batch": 17}``.
        rng: one :func:`capture_rng_state` per process (rank order); this process's if None.
    """
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
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
    """Load a :func:`training_state` into live objects; returns ``(step, data_position)``.

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
