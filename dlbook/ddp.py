"""Data-parallel training with torch.distributed and DistributedDataParallel.

Every process holds a full copy of the model, reads its own shard of each batch, and
averages gradients with an all-reduce during the backward pass (Li et al., 2020). The
same code runs as 2 CPU processes on one machine or as many GPUs on many machines::

    python -m dlbook.ddp --nproc 2 --task gpt                          # spawns 2
    processes torchrun --standalone --nproc_per_node=8 -m dlbook.ddp --task gpt  # 8
    GPUs, one machine torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 \\
        --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 -m dlbook.ddp --task gpt

A *task* is any picklable object with ``build_model()``, ``dataset()`` and
``loss(model, batch)``, such as :class:`ToyTask` (for tests) or :class:`CharGPTTask`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import itertools
import multiprocessing
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, TensorDataset

from dlbook import scale
from dlbook.gpt import GPT, GPTConfig
from dlbook.text import CharCorpus
from dlbook.train import (
    History,
    TrainConfig,
    make_optimizer,
    make_scheduler,
    train_step,
    warmup_cosine,
)
from dlbook.utils import check_positive_int, get_device, set_seed


@dataclass(frozen=True)
class ToyTask:
    """A small regression MLP on synthetic data: fast enough to spawn in tests."""

    n_samples: int = 512  # examples in the data set
    n_features: int = 8  # input dimension
    hidden: int = 32  # hidden units
    # dropout probability, which makes training consume random numbers
    dropout: float = 0.0

    def build_model(self) -> nn.Module:
        return nn.Sequential(
            nn.Linear(self.n_features, self.hidden),
            nn.Tanh(),
            nn.Dropout(self.dropout),
            nn.Linear(self.hidden, 1),
        )

    def dataset(self) -> Dataset:
        g = torch.Generator().manual_seed(1234)
        x = torch.randn(self.n_samples, self.n_features, generator=g)
        w = torch.randn(self.n_features, 1, generator=g)
        y = torch.sin(x @ w) + 0.1 * torch.randn(self.n_samples, 1, generator=g)
        return TensorDataset(x, y)

    def loss(self, model: nn.Module, batch: Sequence[torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(model(x), y)


class TokenWindows(Dataset):
    """Windows of ``block_size + 1`` tokens from a 1-D token tensor, as (input, target)
    pairs."""

    def __init__(self, tokens: torch.Tensor, block_size: int, stride: int):
        check_positive_int(stride, "stride")
        if tokens.dim() != 1 or len(tokens) <= block_size:
            raise ValueError(
                f"tokens must be 1-D and longer than block_size={block_size}, "
                f"got shape {tuple(tokens.shape)}"
            )
        self.tokens, self.block_size, self.stride = tokens, block_size, stride

    def __len__(self) -> int:
        return (len(self.tokens) - self.block_size - 1) // self.stride + 1

    def __getitem__(self, i: int) -> tuple:
        chunk = self.tokens[i * self.stride : i * self.stride + self.block_size + 1]
        return chunk[:-1], chunk[1:]  # (T,), (T,)


@functools.lru_cache(maxsize=1)
def _pydoc_corpus() -> CharCorpus:
    return CharCorpus.pydoc()


def pydoc_gpt_config(**sizes: Any) -> GPTConfig:
    """A ``GPTConfig`` for the pydoc corpus's vocabulary, with the given sizes (e.g.
    ``n_layers=2, d_model=64``); dropout is 0 unless given."""
    return GPTConfig(vocab_size=len(_pydoc_corpus().vocab), **{"dropout": 0.0, **sizes})


@dataclass(frozen=True)
class CharGPTTask:
    """A small character GPT (chapter 7's model) on the pydoc text, in windows of T + 1.

    The model's own config says everything about it; its ``block_size`` is the window
    length.
    """

    model: GPTConfig = field(
        default_factory=lambda: pydoc_gpt_config(
            n_layers=2, d_model=64, n_heads=4, block_size=64
        )
    )

    def __post_init__(self) -> None:
        if not isinstance(self.model, GPTConfig):
            raise TypeError(
                f"model must be a GPTConfig, got {type(self.model).__name__}"
            )

    @property
    def block_size(self) -> int:
        """The context length T (characters per example), read from the model's
        config."""
        return self.model.block_size

    def build_model(self) -> nn.Module:
        n_chars = len(_pydoc_corpus().vocab)
        if self.model.vocab_size != n_chars:
            raise ValueError(
                f"model.vocab_size must be the corpus's {n_chars} "
                f"characters, "
                f"got {self.model.vocab_size}"
            )
        return GPT(self.model)

    def dataset(self) -> Dataset:
        # Non-overlapping windows: one epoch reads every training character once.
        return TokenWindows(
            _pydoc_corpus().train, self.block_size, stride=self.block_size
        )

    def loss(self, model: nn.Module, batch: Sequence[torch.Tensor]) -> torch.Tensor:
        x, y = batch  # (B, T), (B, T)
        logits = model(x)  # (B, T, V)
        return nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())


@dataclass(frozen=True)
class RunConfig:
    """How to train: batch sizes, schedule, precision, checkpoints."""

    # total optimizer steps of the run (a resumed run counts earlier ones)
    steps: int = 20
    micro_batch: int = 16  # examples per process per forward/backward pass
    accum: int = 1  # micro-batches accumulated per optimizer step
    base_lr: float = 1e-3  # learning rate at base_batch examples per step
    base_batch: int = 32  # batch size that base_lr was tuned for (linear scaling rule)
    warmup: int = 0  # warm-up steps
    optimizer: str = "adamw"  # "sgd" or "adamw"
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    precision: str = "fp32"  # "fp32", "bf16", "fp16" or "auto" (see scale.amp_dtype)
    seed: int = 0  # seeds the initial weights and the data order
    checkpoint: str | None = None  # where to save (and resume from)
    save_every: int = 0  # save every this many steps (0: only when the run stops)
    resume: bool = False  # continue from `checkpoint`
    stop_after: int | None = None  # stop (and save) after this step, as if interrupted
    timeout_s: float = 120.0  # collective operations give up after this long

    def __post_init__(self) -> None:
        for name in ("steps", "micro_batch", "accum", "base_batch"):
            value = getattr(self, name)
            check_positive_int(value, name)
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(
                f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}"
            )
        warmup_cosine(0, self.warmup, self.steps)  # checks 0 <= warmup <= steps
        # checks the precision's name
        scale.amp_dtype(torch.device("cpu"), self.precision)
        if self.resume and not self.checkpoint:
            raise ValueError("resume=True needs a checkpoint path, got none")


@dataclass
class RunResult(History):
    """What a run returns (from rank 0): the book's ``History`` of its steps
    (``step_loss``, averaged over processes; ``lr``; ``seconds``, the training steps
    alone) and more."""

    state_dict: dict = field(default_factory=dict)  # final parameters
    examples: int = 0  # examples processed by all processes together
    world_size: int = 1
    start_step: int = 0  # first step of this run (0 unless resumed)


def backend_for(device: torch.device) -> str:
    """The collective backend: NCCL between GPUs, gloo between CPU processes."""
    return "nccl" if device.type == "cuda" else "gloo"


def rank_device(local_rank: int, device_type: str | None = None) -> torch.device:
    """This process's device: GPU ``local_rank`` when CUDA is used, else the CPU.

    ``device_type`` is ``"cuda"`` or ``"cpu"``; None takes the book's choice,
    ``get_device()``.
    """
    if device_type not in (None, "cpu", "cuda"):
        raise ValueError(
            f"device_type must be None, 'cpu' or 'cuda', got {device_type!r}"
        )
    if (device_type or get_device().type) == "cuda":
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def effective_batch(config: RunConfig, world_size: int) -> int:
    """Examples per optimizer step: micro-batch x accumulation steps x processes."""
    return config.micro_batch * config.accum * world_size


Interval = tuple[float, float]  # (start, end)


def overlap_schedule(
    backward: Sequence[float], allreduce: Sequence[float], overlap: bool
) -> tuple[list[Interval], list[Interval]]:
    """When each gradient bucket is computed and when it is all-reduced, in one step.

    Buckets are listed in the order the backward pass produces them (last layers first);
    ``backward[i]`` is the time to compute bucket ``i``'s gradients and ``allreduce[i]``
    the time to all-reduce them. The all-reduces share one communication channel, so
    they run one after another. Without overlap they start when the whole backward pass
    is done; with overlap, as in ``DistributedDataParallel``, each starts as soon as its
    bucket is ready and the channel is free.

    Returns:
        Two lists of ``(start, end)`` intervals, one per bucket: when its backward
        computation runs, and when its all-reduce runs.
    """
    if len(backward) != len(allreduce) or not backward:
        raise ValueError(
            "backward and allreduce must give one time per bucket, got "
            f"{len(backward)} and {len(allreduce)}"
        )
    if min(*backward, *allreduce) < 0:
        raise ValueError("times must be non-negative")
    compute, clock = [], 0.0
    for seconds in backward:
        compute.append((clock, clock + seconds))
        clock += seconds
    communication, channel_free = [], 0.0
    for (_, ready), seconds in zip(compute, allreduce):
        start = max(ready if overlap else clock, channel_free)
        communication.append((start, start + seconds))
        channel_free = start + seconds
    return compute, communication


def _optimizer(model: nn.Module, config: RunConfig, lr: float) -> torch.optim.Optimizer:
    """The book's optimizer (``dlbook.train.make_optimizer``): decay on matrices
    only."""
    recipe = TrainConfig(
        lr=lr,
        optimizer=config.optimizer,
        weight_decay=config.weight_decay,
        momentum=0.9,
    )
    return make_optimizer(model, recipe)


def _loader(
    dataset: Dataset, config: RunConfig, rank: int, world_size: int
) -> DataLoader:
    # Each process reads every world_size-th example of one shared permutation per
    # epoch.
    sampler = DistributedSampler(
        dataset,
        num_replicas=world_size,
        rank=rank,
        shuffle=True,
        seed=config.seed,
        drop_last=True,
    )
    # A private generator: creating an iterator must not consume the global random
    # stream.
    return DataLoader(
        dataset,
        batch_size=config.micro_batch,
        sampler=sampler,
        drop_last=True,
        generator=torch.Generator().manual_seed(config.seed),
    )


def _micro_batches(loader: DataLoader, epoch: int, batch: int) -> Iterator[tuple]:
    """Yield ``(position_after, batch)`` forever, starting at a saved data position."""
    if len(loader) == 0:
        raise ValueError("the data set is smaller than one micro-batch per process")
    while True:
        loader.sampler.set_epoch(epoch)  # the permutation depends on (seed, epoch) only
        # On resume, islice reads and drops the batches already used in this epoch.
        for i, data in enumerate(
            itertools.islice(loader, batch, None), start=batch + 1
        ):
            yield {"epoch": epoch, "batch": i}, data
        epoch, batch = epoch + 1, 0


def _take(stream: Iterator[tuple], k: int, device: torch.device) -> tuple:
    """The next k micro-batches, moved to ``device``, and the data position after
    them."""
    batches = []
    for _ in range(k):
        position, batch = next(stream)
        batches.append([t.to(device) for t in batch])
    return position, batches


def _fingerprint(
    model: nn.Module, task: Any, config: RunConfig, world_size: int
) -> str:
    # Settings that change the trajectory must match on resume; where to stop need not.
    run = dataclasses.replace(
        config, checkpoint=None, save_every=0, resume=False, stop_after=None
    )
    return scale.fingerprint(
        model, {"task": task, "run": run, "world_size": world_size}
    )


def _save(path: str, state: dict, fingerprint: str, rank: int, world_size: int) -> None:
    rng = [scale.capture_rng_state()]
    if world_size > 1:
        rng = [None] * world_size
        dist.all_gather_object(rng, scale.capture_rng_state())
    if rank == 0:
        scale.save_checkpoint(
            path, {**state, "rng": rng}, fingerprint=fingerprint, world_size=world_size
        )
    if world_size > 1:
        dist.barrier()  # nobody continues, or exits, before the file is complete


def _mean_over_processes(x: torch.Tensor, world_size: int) -> float:
    if world_size > 1:
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return (x / world_size).item()


def _build(
    task: Any, config: RunConfig, world_size: int, device: torch.device
) -> tuple:
    """The model (wrapped in DDP when distributed), optimizer, schedule and
    precision."""
    set_seed(config.seed)  # identical initial weights on every process
    model = task.build_model().to(device)
    fingerprint = _fingerprint(model, task, config, world_size)
    if world_size > 1:
        device_ids = [device] if device.type == "cuda" else None  # None: CPU processes
        model = DistributedDataParallel(model, device_ids=device_ids)
    lr = scale.scaled_lr(
        config.base_lr, effective_batch(config, world_size), config.base_batch
    )
    optimizer = _optimizer(model, config, lr)
    scheduler = make_scheduler(optimizer, config.warmup, config.steps)
    dtype = scale.amp_dtype(device, config.precision)
    return (
        model,
        optimizer,
        scheduler,
        dtype,
        scale.make_grad_scaler(device, dtype),
        fingerprint,
    )


def train(
    task: Any,
    config: RunConfig,
    *,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | None = None,
) -> RunResult:
    """Train ``task``'s model on this process's shard of the data; call it on every
    process.

    With ``world_size > 1`` the default process group must exist (see :func:`launch`).
    One step sees ``micro_batch * accum * world_size`` examples whatever the split, and
    the learning rate follows the linear scaling rule (Goyal et al., 2017).

    With ``config.resume`` the run continues from ``config.checkpoint``, and only on the
    number of processes that wrote it: another ``world_size`` raises ``ValueError``.

    Args:
        task: builds the model and data set and computes a loss (e.g. :class:`ToyTask`).
        device: this process's device (the CPU by default).
    """
    if not 0 <= rank < world_size:
        raise ValueError(
            f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}"
        )
    if world_size > 1 and not dist.is_initialized():
        raise ValueError(
            "world_size > 1 needs an initialised process group; use launch()"
        )
    device = device if device is not None else torch.device("cpu")
    built = _build(task, config, world_size, device)
    model, optimizer, scheduler, dtype, scaler, fingerprint = built
    start_step, position = 0, {"epoch": 0, "batch": 0}
    if config.resume:
        state = scale.load_checkpoint(
            config.checkpoint, fingerprint=fingerprint, world_size=world_size
        )
        start_step, position = scale.restore_training_state(
            state, model, optimizer, scheduler=scheduler, scaler=scaler, rank=rank
        )
    else:
        # each process draws its own dropout masks
        torch.manual_seed(config.seed + 1 + rank)
    stream = _micro_batches(
        _loader(task.dataset(), config, rank, world_size), **position
    )
    stop = (
        config.steps
        if config.stop_after is None
        else min(config.steps, config.stop_after)
    )
    result = RunResult(world_size=world_size, start_step=start_step)
    start = time.perf_counter()
    for step in range(start_step + 1, stop + 1):
        position, batches = _take(stream, config.accum, device)
        result.lr.append(scheduler.get_last_lr()[0])
        loss = train_step(
            model, optimizer, batches, task.loss, dtype=dtype, scaler=scaler
        )
        scheduler.step()
        result.step_loss.append(_mean_over_processes(loss, world_size))
        due = step == stop or (config.save_every > 0 and step % config.save_every == 0)
        if config.checkpoint and due:
            state = scale.training_state(
                model,
                optimizer,
                step=step,
                data_position=position,
                scheduler=scheduler,
                scaler=scaler,
            )
            _save(config.checkpoint, state, fingerprint, rank, world_size)
    result.seconds = time.perf_counter() - start
    result.examples = effective_batch(config, world_size) * len(result.step_loss)
    unwrapped = getattr(model, "module", model)  # the model inside DDP
    result.state_dict = {
        k: v.detach().cpu().clone() for k, v in unwrapped.state_dict().items()
    }
    return result


def _loopback_interface() -> str | None:
    names = {name for _, name in socket.if_nameindex()}
    return next((n for n in ("lo", "lo0") if n in names), None)


def _worker(
    rank: int,
    world_size: int,
    port: int,
    task: Any,
    config: RunConfig,
    out: str,
    threads: int,
    device_type: str | None,
) -> None:
    """One spawned process: join the group through the parent's store, train, report."""
    # processes share the cores instead of oversubscribing
    torch.set_num_threads(threads)
    interface = _loopback_interface()
    if interface is not None:  # gloo and NCCL talk over loopback only
        os.environ.setdefault("GLOO_SOCKET_IFNAME", interface)
        os.environ.setdefault("NCCL_SOCKET_IFNAME", interface)
    device = rank_device(rank, device_type)
    timeout = timedelta(seconds=config.timeout_s)
    store = dist.TCPStore(
        "127.0.0.1", port, world_size, is_master=False, timeout=timeout
    )
    dist.init_process_group(
        backend_for(device),
        store=store,
        rank=rank,
        world_size=world_size,
        timeout=timeout,
    )
    try:
        result = train(task, config, rank=rank, world_size=world_size, device=device)
        if rank == 0:
            torch.save(dataclasses.asdict(result), out)
    finally:
        dist.destroy_process_group()


def run_on_gloo(
    worker: Callable[..., None], nproc: int, args: tuple, timeout_s: float = 120.0
) -> Any:
    """Spawn ``nproc`` CPU processes that each call ``worker(rank, nproc, port, *args,
    out)`` (joining their group with :func:`gloo_group` on ``port``); rank 0 saves its
    result to the file ``out`` with ``torch.save``, which is loaded and returned."""
    check_positive_int(nproc, "nproc")
    with (
        tempfile.TemporaryDirectory() as tmp,
        _loopback_store(nproc, timeout_s) as port,
    ):
        out = str(Path(tmp) / "result.pt")
        mp.start_processes(
            worker,
            args=(nproc, port, *args, out),
            nprocs=nproc,
            join=True,
            start_method=_start_method(),
        )
        return torch.load(out, weights_only=True)


@contextlib.contextmanager
def gloo_group(
    rank: int, world_size: int, port: int, timeout_s: float = 60.0
) -> Iterator[None]:
    """In a process of ``_loopback_store``'s launch: use one thread, join the gloo
    group through the parent's store on ``port``, and leave the group on exit."""
    torch.set_num_threads(1)
    store = dist.TCPStore(
        "127.0.0.1",
        port,
        world_size,
        is_master=False,
        timeout=timedelta(seconds=timeout_s),
    )
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world_size)
    try:
        yield
    finally:
        dist.destroy_process_group()


@contextlib.contextmanager
def _loopback_store(world_size: int, timeout_s: float) -> Iterator[int]:
    """A rendezvous store served by this process on 127.0.0.1 only; yields its port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))  # port 0: the system picks a free port, no race
        sock.listen(128)
        port = sock.getsockname()[1]
    except OSError:
        sock.close()
        raise
    # The store takes over the listening socket (and closes it when it is deleted).
    store = dist.TCPStore(
        "127.0.0.1",
        port,
        world_size,
        is_master=True,
        timeout=timedelta(seconds=timeout_s),
        wait_for_workers=False,
        master_listen_fd=sock.detach(),
    )
    try:
        yield port
    finally:
        del store


def _start_method() -> str:
    """A fork server where the OS has one, else spawn (Windows).

    Both start fresh interpreters rather than copying this process, which may hold
    threads. The fork server imports torch once and then forks each worker from itself
    in milliseconds, instead of every worker importing torch again (seconds each).
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return "spawn"
    # torch._dynamo is imported by every optimizer; dlbook.ddp itself is left out, since
    # ``python -m dlbook.ddp`` runs it as the workers' main module.
    multiprocessing.set_forkserver_preload(
        ["torch._dynamo", "dlbook.scale", "dlbook.gpt"]
    )
    return "forkserver"


def launch(
    task: Any,
    config: RunConfig,
    nproc: int = 2,
    *,
    threads: int = 1,
    device_type: str | None = None,
    timeout_s: float = 300.0,
) -> RunResult:
    """Spawn ``nproc`` processes on this machine, train with DDP, return rank 0's
    result.

    Processes meet on 127.0.0.1 (never another address). Each uses ``threads`` CPU
    threads, or one GPU when CUDA is used (``device_type``: None follows
    ``get_device()``, ``"cpu"`` forces gloo on the CPU). Raises ``TimeoutError`` after
    ``timeout_s`` seconds.
    """
    check_positive_int(nproc, "nproc")
    if rank_device(0, device_type).type == "cuda" and nproc > torch.cuda.device_count():
        raise ValueError(
            f"NCCL needs one GPU per process: nproc={nproc}, GPUs="
            f"{torch.cuda.device_count()}; pass device_type='cpu' to use "
            f"gloo"
        )
    with (
        tempfile.TemporaryDirectory() as tmp,
        _loopback_store(nproc, timeout_s) as port,
    ):
        out = str(Path(tmp) / "result.pt")
        args = (nproc, port, task, config, out, threads, device_type)
        context = mp.start_processes(
            _worker, args=args, nprocs=nproc, join=False, start_method=_start_method()
        )
        deadline = time.monotonic() + timeout_s
        while not context.join(timeout=0.5):  # raises if a worker failed
            if time.monotonic() > deadline:
                for process in context.processes:
                    process.terminate()
                raise TimeoutError(f"DDP workers did not finish within {timeout_s} s")
        return RunResult(**torch.load(out, weights_only=True))


def _torchrun(
    task: Any, config: RunConfig, device_type: str | None
) -> RunResult | None:
    """Run under ``torchrun``, which sets RANK, WORLD_SIZE, LOCAL_RANK and
    MASTER_ADDR/PORT."""
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    device = rank_device(local_rank, device_type)
    dist.init_process_group(
        backend_for(device), timeout=timedelta(seconds=config.timeout_s)
    )
    try:
        result = train(task, config, rank=rank, world_size=world_size, device=device)
    finally:
        dist.destroy_process_group()
    return result if rank == 0 else None


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    summary = __doc__.split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m dlbook.ddp", description=summary)
    parser.add_argument(
        "--nproc", type=int, default=2, help="processes to spawn (not torchrun)"
    )
    parser.add_argument("--task", choices=["toy", "gpt"], default="toy")
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads per process"
    )
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default=None,
        help="where spawned processes compute (default: get_device())",
    )
    defaults = RunConfig()
    for f in dataclasses.fields(RunConfig):
        if f.name in ("resume", "stop_after", "checkpoint"):
            continue
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            type=type(getattr(defaults, f.name)),
            default=getattr(defaults, f.name),
        )
    parser.add_argument(
        "--checkpoint", default=None, help="checkpoint file to save and resume"
    )
    parser.add_argument(
        "--stop-after", type=int, default=None, help="stop early, as if killed"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from --checkpoint"
    )
    parser.add_argument(
        "--resume-if-exists",
        action="store_true",
        help="continue from --checkpoint if that file exists, else start (for restarts)",
    )
    return parser.parse_args(argv)


def resume_wanted(checkpoint: str | None, resume: bool, if_exists: bool) -> bool:
    """Whether a run launched with these options continues from ``checkpoint``:
    ``resume`` always (a missing file is then an error when it is read), ``if_exists``
    only when the file is there, so that a restarted job picks up where it stopped and
    a first launch starts from scratch."""
    if resume and if_exists:
        raise ValueError("give --resume or --resume-if-exists, not both")
    if if_exists and not checkpoint:
        raise ValueError("--resume-if-exists needs --checkpoint, got none")
    return resume or (if_exists and Path(checkpoint).exists())


def main(argv: Sequence[str] | None = None) -> RunResult | None:
    """Command-line entry point; see the module docstring for the launch commands."""
    args = _parse(argv)
    task = ToyTask() if args.task == "toy" else CharGPTTask()
    options = {f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig)}
    options["resume"] = resume_wanted(
        args.checkpoint, args.resume, args.resume_if_exists
    )
    config = RunConfig(**options)
    if "LOCAL_RANK" in os.environ:
        result = _torchrun(task, config, args.device)
    else:
        result = launch(
            task, config, args.nproc, threads=args.threads, device_type=args.device
        )
    if result is not None:
        print(
            f"world size {result.world_size}: steps {result.start_step}-"
            f"{result.start_step + len(result.step_loss)}, loss "
            f"{result.step_loss[0]:.4f} -> "
            f"{result.step_loss[-1]:.4f}, {result.examples / result.seconds:.0f} "
            f"examples/s"
        )
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
