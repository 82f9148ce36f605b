"""Sharding the optimizer state: ZeRO stage 1 with ``ZeroRedundancyOptimizer`` (on
gloo).

Plain data parallelism keeps a full copy of the weights, the gradients and Adam's two
moments on every process. ZeRO (Rajbhandari et al., 2020) splits what is redundant: in
stage 1 each of the W processes keeps the optimizer state of only 1/W of the parameters,
updates those, and broadcasts them to the others. ``sharded_run`` trains the same GPT
both ways on W CPU processes and reports, per process, the bytes each kind of state
takes, and the parameters reached.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.nn.parallel import DistributedDataParallel

from dlbook.ddp import gloo_group, run_on_gloo
from dlbook.gpt import GPT, GPTConfig
from dlbook.utils import check_positive_int


def state_bytes(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Bytes this process holds for the weights, the gradients and the optimizer state.

    For a ``ZeroRedundancyOptimizer`` only the local shard's state (``optimizer.optim``)
    is counted, which is what the process really keeps.
    """
    inner = (
        optimizer.optim if isinstance(optimizer, ZeroRedundancyOptimizer) else optimizer
    )
    return {
        "weights": sum(p.numel() * p.element_size() for p in model.parameters()),
        "gradients": sum(
            p.grad.numel() * p.grad.element_size()
            for p in model.parameters()
            if p.grad is not None
        ),
        "optimizer state": sum(
            v.numel() * v.element_size()
            for s in inner.state.values()
            for v in s.values()
            if torch.is_tensor(v) and v.dim() > 0
        ),
    }


def random_windows(config: GPTConfig, steps: int, batch: int) -> list[torch.Tensor]:
    """``steps`` batches of random token windows, (batch, block_size + 1) each, the
    same on every process (a fixed generator)."""
    check_positive_int(steps, "steps")
    check_positive_int(batch, "batch")
    gen = torch.Generator().manual_seed(0)
    return [
        torch.randint(
            0, config.vocab_size, (batch, config.block_size + 1), generator=gen
        )
        for _ in range(steps)
    ]


def _train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: list[torch.Tensor],
    rank: int,
    world_size: int,
) -> None:
    """AdamW steps on this process's rows of each batch; DDP averages the gradients."""
    for tokens in batches:
        mine = tokens.chunk(world_size)[rank]  # (batch / W, T + 1)
        logits = model(mine[:, :-1])  # (batch / W, T, V)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), mine[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=False)
        loss.backward()
        optimizer.step()


def _worker(
    rank: int,
    world_size: int,
    port: int,
    config: GPTConfig,
    steps: int,
    batch: int,
    out: str,
) -> None:
    with gloo_group(rank, world_size, port):
        report = {}
        for sharded in (False, True):
            # the same initial weights on every process and in both runs
            torch.manual_seed(0)
            model = DistributedDataParallel(GPT(config))
            if sharded:
                optimizer = ZeroRedundancyOptimizer(
                    model.parameters(), optimizer_class=torch.optim.AdamW, lr=1e-3
                )
            else:
                optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
            _train(
                model, optimizer, random_windows(config, steps, batch), rank, world_size
            )
            name = "ZeRO-1" if sharded else "DDP"
            report[name] = {
                "bytes": state_bytes(model, optimizer),
                "params": [p.detach().clone() for p in model.module.parameters()],
            }
        gathered = [None] * world_size
        dist.all_gather_object(gathered, {k: v["bytes"] for k, v in report.items()})
        if rank == 0:
            torch.save(
                {
                    "bytes": gathered,
                    "params": {k: v["params"] for k, v in report.items()},
                },
                out,
            )


def sharded_run(
    config: GPTConfig,
    nproc: int = 2,
    steps: int = 3,
    batch: int = 8,
    timeout_s: float = 120.0,
) -> dict:
    """Train ``GPT(config)`` for ``steps`` AdamW steps on ``nproc`` CPU processes, once
    with DDP and a full optimizer per process, once with ``ZeroRedundancyOptimizer``.

    Returns ``{"bytes": bytes, "params": params}``: ``bytes`` lists, per process,
    ``{"DDP": {...}, "ZeRO-1": {...}}``; ``params`` is
    ``{"DDP": [...], "ZeRO-1": [...]}``, rank 0's final parameters.
    """
    check_positive_int(nproc, "nproc")
    if batch % nproc:
        raise ValueError(f"batch must be divisible by nproc, got {batch} and {nproc}")
    return run_on_gloo(_worker, nproc, (config, steps, batch), timeout_s)
