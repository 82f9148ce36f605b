"""Fully sharded data parallelism (ZeRO stage 3) with PyTorch's FSDP2 on gloo.

``torch.distributed.fsdp.fully_shard`` replaces every parameter of a module by a
``DTensor`` sharded along its first dimension: each of the W processes keeps 1/W of
every weight, of its gradient and, because the optimizer only ever sees the shards, of
Adam's moments. Before a block runs, its weights are all-gathered; after its backward
pass, its gradients are reduce-scattered, so each process receives the average of its
own shard (Rajbhandari et al., 2020, stage 3; Zhao et al., 2023, for PyTorch's FSDP).
``fsdp_run`` trains a GPT that way on W CPU processes and, for comparison, in one
process on the whole batch; the two must take the same steps.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

from dlbook.ddp import gloo_group, run_on_gloo
from dlbook.gpt import GPT, GPTConfig
from dlbook.utils import check_positive_int
from dlbook.zero import random_windows


@dataclasses.dataclass(frozen=True)
class FSDPResult:
    """Losses and per-process memory of a sharded run and of its one-process twin."""

    sharded_loss: list[float]  # loss on the whole batch at each step, FSDP
    single_loss: list[float]  # the same steps in one process, unsharded
    max_param_diff: float  # largest difference of the final parameters
    sharded_bytes: list[dict[str, int]]  # per rank: weights, gradients, optimizer state
    single_bytes: dict[str, int]  # the same three for the unsharded process


def local_bytes(tensor: torch.Tensor) -> int:
    """Bytes this process stores for ``tensor``: only its own shard if it is a
    ``DTensor``."""
    if isinstance(tensor, DTensor):
        tensor = tensor.to_local()
    return tensor.numel() * tensor.element_size()


def state_bytes(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Bytes this process holds for the weights, their gradients and the optimizer's
    tensors (Adam's two moments; its scalar step counts are left out)."""
    return {
        "weights": sum(local_bytes(p) for p in model.parameters()),
        "gradients": sum(
            local_bytes(p.grad) for p in model.parameters() if p.grad is not None
        ),
        "optimizer state": sum(
            local_bytes(v)
            for s in optimizer.state.values()
            for v in s.values()
            if torch.is_tensor(v) and v.dim() > 0
        ),
    }


def shard_gpt(model: GPT) -> GPT:
    """Shard ``model`` in place with FSDP2: one unit per Transformer block, whose
    weights are gathered just before it runs, and the root (embeddings, final norm)
    last."""
    for block in model.blocks:
        fully_shard(block)
    fully_shard(model)
    return model


def _step(
    model: nn.Module, optimizer: torch.optim.Optimizer, tokens: torch.Tensor
) -> torch.Tensor:
    """One AdamW step on ``tokens`` (B, T + 1); returns the mean loss."""
    logits = model(tokens[:, :-1])  # (B, T, V)
    loss = nn.functional.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
    optimizer.zero_grad(set_to_none=False)
    loss.backward()
    optimizer.step()
    return loss.detach()


def train_single(
    config: GPTConfig, steps: int, batch: int, lr: float
) -> tuple[list[float], dict[str, int], list[torch.Tensor]]:
    """The reference: ``GPT(config)`` trained in one process on whole batches.

    Returns ``(losses, bytes, parameters)``.
    """
    torch.manual_seed(0)
    model = GPT(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = [
        _step(model, optimizer, t).item() for t in random_windows(config, steps, batch)
    ]
    params = [p.detach().clone() for p in model.parameters()]
    return losses, state_bytes(model, optimizer), params


@dataclasses.dataclass(frozen=True)
class _Steps:
    """What every process trains: ``steps`` AdamW steps at ``lr`` on batches of
    ``batch`` windows."""

    steps: int
    batch: int
    lr: float


def _worker(
    rank: int, world_size: int, port: int, config: GPTConfig, run: _Steps, out: str
) -> None:
    with gloo_group(rank, world_size, port):
        torch.manual_seed(0)  # the same full weights everywhere before sharding
        model = shard_gpt(GPT(config))
        optimizer = torch.optim.AdamW(model.parameters(), lr=run.lr)
        losses = []
        for tokens in random_windows(config, run.steps, run.batch):
            mine = tokens.chunk(world_size)[rank]  # (batch / W, T + 1)
            loss = _step(model, optimizer, mine)
            dist.all_reduce(loss)  # for the record: the mean over the whole batch
            losses.append(loss.item() / world_size)
        memory = [None] * world_size
        dist.all_gather_object(memory, state_bytes(model, optimizer))
        # full_tensor() all-gathers the shards; every rank must take part
        params = [p.full_tensor().detach().clone() for p in model.parameters()]
        if rank == 0:
            torch.save({"loss": losses, "bytes": memory, "params": params}, out)


def fsdp_run(
    config: GPTConfig,
    nproc: int = 2,
    steps: int = 3,
    batch: int = 8,
    lr: float = 1e-3,
    timeout_s: float = 120.0,
) -> FSDPResult:
    """Train ``GPT(config)`` for ``steps`` AdamW steps sharded over ``nproc`` CPU
    processes with FSDP2, and the same steps in this process on whole batches.

    Each process takes ``batch / nproc`` rows of every batch, so both runs average the
    gradient over the same ``batch`` windows.
    """
    check_positive_int(nproc, "nproc")
    check_positive_int(steps, "steps")
    if batch % nproc:
        raise ValueError(f"batch must be divisible by nproc, got {batch} and {nproc}")
    run = _Steps(steps=steps, batch=batch, lr=lr)
    sharded = run_on_gloo(_worker, nproc, (config, run), timeout_s)
    single_loss, single_bytes, single_params = train_single(config, steps, batch, lr)
    diff = max(
        (a - b).abs().max().item()
        for a, b in zip(sharded["params"], single_params, strict=True)
    )
    return FSDPResult(
        sharded_loss=sharded["loss"],
        single_loss=single_loss,
        max_param_diff=diff,
        sharded_bytes=sharded["bytes"],
        single_bytes=single_bytes,
    )
