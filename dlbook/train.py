"""How every model in the book learns: one loop, one optimizer recipe, one schedule, one
history.

``fit`` is the loop. It takes optimizer steps on a stream of batches, each step from
``accum`` micro-batches (``train_step``), under a learning-rate schedule
(``warmup_cosine``), with optional gradient clipping, a step or time budget and an
evaluation hook, and returns a ``History``. ``train`` runs ``fit`` for epochs over a
data set of (x, y) pairs; chapters 5 to 9 call ``fit`` with their own batches and losses
(``dlbook.text.train_char_lm``, ``dlbook.seq2seq``, ``dlbook.diffusion``), and
``dlbook.ddp`` shares ``train_step``. There are no callbacks and no trainer class. The
device is chosen once (``dlbook.utils.get_device``).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import math
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from dlbook.utils import (
    check_int,
    check_positive_int,
    get_device,
    model_device,
    notebook_tqdm,
    set_seed,
    tqdm,
)

# (outputs, targets) -> loss
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# (model, batch) -> mean loss of the batch
BatchLoss = Callable[[nn.Module, Any], torch.Tensor]
EvalFn = Callable[[nn.Module], dict]  # model -> {"loss": ..., "accuracy": ...}
OPTIMIZERS = ("sgd", "adam", "adamw")


@dataclass(frozen=True)
class Schedule:
    """The learning rate over training: a linear warm-up, then a cosine decay
    (``warmup_cosine``).

    The default keeps the rate constant; ``Schedule(min_ratio=0.0)`` decays it to zero.
    """

    warmup_steps: int = 0  # steps of linear warm-up from lr / warmup_steps to lr
    min_ratio: float = 1.0  # the rate ends at min_ratio * lr; 1.0 means no decay

    def __post_init__(self):
        check_int(self.warmup_steps, "warmup_steps", minimum=0)
        if not 0.0 <= self.min_ratio <= 1.0:
            raise ValueError(f"min_ratio must be in [0, 1], got {self.min_ratio!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run; change them with ``dataclasses.replace``."""

    # passes over the training set (``train``); ignored when steps is set
    epochs: int = 10
    steps: int | None = None  # optimizer steps; ``fit`` on a stream of batches needs it
    # also stop after this much training time (wall clock)
    max_seconds: float | None = None
    batch_size: int = 64  # examples per minibatch, |B|
    accum: int = 1  # minibatches whose gradients add up to one optimizer step
    lr: float = 1e-3  # peak learning rate eta
    schedule: Schedule = Schedule()  # warm-up and decay of the learning rate
    weight_decay: float = 0.0  # L2 penalty for sgd/adam, decoupled decay for adamw
    optimizer: str = "adam"  # "sgd", "adam" or "adamw"
    momentum: float = 0.9  # momentum of "sgd" (0 gives plain SGD); Adam ignores it
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's decay rates of its two moments
    grad_clip: float | None = None  # clip the gradient's global norm to this, or None
    eval_every: int | None = None  # steps between records (``train``: one epoch)
    seed: int = 0  # seeds the data order (and, in ``train``, the model's dropout)
    progress: bool = True  # show a progress bar
    # end with the parameters of the record of lowest val loss
    restore_best: bool = False

    def __post_init__(self):
        for name in ("epochs", "batch_size", "accum"):
            check_positive_int(getattr(self, name), name)
        for name in ("steps", "eval_every"):
            if getattr(self, name) is not None:
                check_positive_int(getattr(self, name), name)
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise ValueError(
                f"weight_decay must be >= 0 and momentum in [0, 1), got "
                f"{self.weight_decay!r} and {self.momentum!r}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}"
            )
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be None or > 0, got {self.grad_clip!r}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(
                f"max_seconds must be None or > 0, got {self.max_seconds!r}"
            )
        if not isinstance(self.schedule, Schedule):
            raise TypeError(
                f"schedule must be a Schedule, got {type(self.schedule).__name__}"
            )
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")


@dataclass
class History:
    """What one run measured. A *record* is taken every ``eval_every`` steps (``train``:
    every epoch) and at the end; accuracies are NaN when the task is not
    classification."""

    # mean training loss since last record
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)  # accuracy on the batches seen
    # empty when there is no evaluation
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    # optimizer steps taken at each record
    step: list[int] = field(default_factory=list)
    # training seconds at each record
    elapsed: list[float] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)  # training loss of every step
    lr: list[float] = field(default_factory=list)  # learning rate of every step
    seconds: float = 0.0  # wall-clock time of the whole run, evaluations included
    best_epoch: int | None = None  # index of the record with the lowest val_loss


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of rows of ``logits`` (N, C) whose largest entry is at the label ``y``
    (N,)."""
    if logits.dim() != 2 or y.dim() != 1 or len(logits) != len(y):
        raise ValueError(
            f"logits must be (N, C) and y (N,), got {tuple(logits.shape)} "
            f"and "
            f"{tuple(y.shape)}"
        )
    if len(y) == 0:
        raise ValueError("accuracy of an empty batch is undefined")
    return (logits.argmax(dim=1) == y).float().mean().item()


def _n_correct(outputs: torch.Tensor, y: torch.Tensor) -> float:
    """Correct predictions in a batch, or NaN when outputs and targets are not class
    scores."""
    if outputs.dim() == 2 and y.dim() == 1 and not y.is_floating_point():
        return (outputs.argmax(dim=1) == y).sum().item()
    return math.nan


def minibatches(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Yield the dataset in minibatches, reshuffled on every call when ``shuffle`` is
    true.

    A ``TensorDataset`` is indexed directly (much faster than a ``DataLoader`` for data
    that fits in memory); any other dataset goes through a ``DataLoader``.
    """
    if isinstance(dataset, TensorDataset):
        n = len(dataset)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            yield tuple(t[idx] for t in dataset.tensors)
    else:
        yield from DataLoader(
            dataset, batch_size=batch_size, shuffle=shuffle, generator=generator
        )


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer ``config`` names. Weight decay acts only on matrices and kernels
    (``p.dim() >= 2``), not on biases or normalization gains, as in most modern
    recipes."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {
            "params": [p for p in params if p.dim() >= 2],
            "weight_decay": config.weight_decay,
        },
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr, betas=config.betas)
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


def warmup_cosine(
    step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.1
) -> float:
    """Learning-rate multiplier: linear warm-up, then cosine decay to ``min_ratio``.

    The warm-up ramps from 1/warmup_steps to 1 over the first ``warmup_steps`` steps,
    which keeps the large early updates of a large batch from diverging (Goyal et al.,
    2017, 2.2). The cosine (Loshchilov and Hutter, 2017) then takes the multiplier from
    1 down to ``min_ratio`` at ``total_steps``.
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
    optimizer: torch.optim.Optimizer,
    warmup_steps: int,
    total_steps: int,
    min_ratio: float = 0.1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` following :func:`warmup_cosine`; call ``step()`` once per
    optimizer step."""
    warmup_cosine(0, warmup_steps, total_steps, min_ratio)  # validates the arguments
    schedule = functools.partial(
        warmup_cosine,
        warmup_steps=warmup_steps,
        total_steps=total_steps,
        min_ratio=min_ratio,
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    micro_batches: Iterable[Any],
    loss_fn: BatchLoss,
    *,
    grad_clip: float | None = None,
    dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> torch.Tensor:
    """One optimizer step from k equal-sized micro-batches; returns their mean loss
    (detached).

    Each micro-batch loss is divided by k, so the summed gradient is the gradient of the
    mean loss over all k micro-batches: the step equals one step on their concatenation.
    A ``DistributedDataParallel`` model synchronises gradients only on the last
    backward.

    Args:
        micro_batches: k batches, each accepted by ``loss_fn(model, batch)``.
        grad_clip: maximum global gradient norm (Pascanu et al., 2013), or None.
        dtype: autocast dtype (see ``dlbook.scale.amp_dtype``), None for float32.
        scaler: a gradient scaler for float16 (``dlbook.scale.make_grad_scaler``), else
            None.
    """
    batches = list(micro_batches)
    if not batches:
        raise ValueError("micro_batches must hold at least one batch, got none")
    device = next(model.parameters()).device
    optimizer.zero_grad(set_to_none=True)  # start from zero: backward() adds into .grad
    losses = []
    for i, batch in enumerate(batches):
        skip_sync = i < len(batches) - 1 and hasattr(model, "no_sync")
        with model.no_sync() if skip_sync else contextlib.nullcontext():
            with (
                torch.autocast(device.type, dtype=dtype)
                if dtype is not None
                else contextlib.nullcontext()
            ):
                loss = loss_fn(model, batch) / len(batches)  # forward pass
            # adds into .grad
            (scaler.scale(loss) if scaler is not None else loss).backward()
        losses.append(loss.detach())
    if scaler is not None:
        scaler.unscale_(optimizer)  # true gradient sizes before clipping
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if scaler is not None:
        scaler.step(optimizer)  # a float16 overflow skips the step and lowers the scale
        scaler.update()
    else:
        optimizer.step()  # theta <- theta - lr * (the optimizer's direction)
    # frees the gradients' memory until the next step
    optimizer.zero_grad(set_to_none=True)
    return torch.stack(losses).sum()


def _n_examples(batch: Any) -> int:
    """Examples in a batch: its length, or that of its first tensor when it is a
    tuple."""
    return len(batch[0]) if isinstance(batch, (tuple, list)) else len(batch)


def _record(
    history: History,
    model: nn.Module,
    evaluate: EvalFn | None,
    step: int,
    losses: list[tuple[float, int]],
    elapsed: float,
) -> bool:
    """Append one record; returns whether it has the lowest validation loss so far."""
    history.step.append(step)
    history.train_loss.append(
        sum(loss * n for loss, n in losses) / sum(n for _, n in losses)
    )
    history.elapsed.append(elapsed)
    result = evaluate(model) if evaluate is not None else {}
    history.train_acc.append(result.get("train_accuracy", math.nan))
    if "loss" not in result:
        return False
    history.val_loss.append(result["loss"])
    history.val_acc.append(result.get("accuracy", math.nan))
    if (
        history.best_epoch is None
        or result["loss"] < history.val_loss[history.best_epoch]
    ):
        history.best_epoch = len(history.val_loss) - 1
        return True
    return False


def _progress(total: int, enabled: bool, desc: str) -> tqdm:
    """A live bar in a terminal or notebook widget; elsewhere (a log, a printed page)
    none, so the output stays clean: ``fit`` then prints one summary line at the end."""
    live = enabled and (issubclass(tqdm, notebook_tqdm) or sys.stderr.isatty())
    return tqdm(
        total=total,
        desc=desc,
        disable=not live,
        mininterval=10.0,
        leave=True,
        unit="step",
    )


def _check_fit(config: Any, evaluate: EvalFn | None) -> None:
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if config.steps is None:
        raise ValueError(
            "fit needs config.steps, the number of optimizer steps, got None"
        )
    if config.restore_best and evaluate is None:
        raise ValueError(
            "restore_best=True needs an evaluate hook to choose the best record"
        )


def fit(
    model: nn.Module,
    batches: Iterable[Any],
    loss_fn: BatchLoss,
    config: TrainConfig,
    *,
    evaluate: EvalFn | None = None,
    desc: str = "training",
) -> History:
    """Take ``config.steps`` optimizer steps on ``batches`` and return the History.

    Each step draws ``config.accum`` batches from the stream and calls ``train_step``
    with ``loss_fn(model, batch)``, which moves the batch to the model's device. The
    learning rate follows ``config.schedule``. Every ``eval_every`` steps, and at the
    end, the mean training loss is recorded with what ``evaluate(model)`` returns (keys
    ``"loss"``, ``"accuracy"``, ``"train_accuracy"``, each optional). Training stops
    early once it has taken ``config.max_seconds`` (evaluation excluded) or when the
    stream ends. The caller seeds.
    """
    _check_fit(config, evaluate)
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(
        optimizer, config.schedule.warmup_steps, config.steps, config.schedule.min_ratio
    )
    stream, every = iter(batches), config.eval_every or config.steps
    history, best_state, recent, elapsed = History(), None, [], 0.0
    start, bar = time.perf_counter(), _progress(config.steps, config.progress, desc)
    for step in range(1, config.steps + 1):
        tick = time.perf_counter()
        group = list(itertools.islice(stream, config.accum))  # the next accum batches
        if not group:
            break  # the stream has ended
        model.train()
        history.lr.append(scheduler.get_last_lr()[0])
        loss = train_step(
            model, optimizer, group, loss_fn, grad_clip=config.grad_clip
        ).item()
        scheduler.step()  # sets the learning rate of the next step
        elapsed += time.perf_counter() - tick
        history.step_loss.append(loss)
        recent.append((loss, sum(_n_examples(batch) for batch in group)))
        bar.update()
        out_of_time = config.max_seconds is not None and elapsed >= config.max_seconds
        if step % every == 0 or step == config.steps or out_of_time:
            if (
                _record(history, model, evaluate, step, recent, elapsed)
                and config.restore_best
            ):
                best_state = copy.deepcopy(model.state_dict())
            bar.set_postfix(_summary(history), refresh=False)
            recent = []
        if out_of_time:
            break
    if recent:  # the stream ended between two records
        _record(history, model, evaluate, len(history.step_loss), recent, elapsed)
    if best_state is not None:
        model.load_state_dict(best_state)
    history.seconds = time.perf_counter() - start
    _close(bar, history, desc, config.progress)
    return history


def _close(bar: tqdm, history: History, desc: str, progress: bool) -> None:
    """Close the bar; where none was shown, print the run's one summary line instead."""
    bar.close()
    if progress and bar.disable:
        numbers = "".join(
            f", {k} {v}" for k, v in _summary(history).items() if k != "loss"
        )
        print(
            f"{desc}: {len(history.step_loss)} steps in {history.seconds:.1f} s, "
            f"loss "
            f"{history.step_loss[-1]:.4f} at the last step{numbers}"
        )


def _summary(history: History) -> dict[str, str]:
    """The latest record's numbers, formatted for the progress bar."""
    out = {"loss": f"{history.train_loss[-1]:.4f}"} if history.train_loss else {}
    if history.val_loss:
        out["val_loss"] = f"{history.val_loss[-1]:.4f}"
    if history.val_acc and not math.isnan(history.val_acc[-1]):
        out["val_acc"] = f"{history.val_acc[-1]:.3f}"
    return out


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Dataset,
    *,
    loss_fn: LossFn = F.cross_entropy,
    device: torch.device | None = None,
    batch_size: int = 512,
) -> dict:
    """Mean loss and accuracy of ``model`` on ``dataset``, in eval mode and without
    gradients.

    Returns ``{"loss": float, "accuracy": float}``; accuracy is NaN for
    non-classification.
    """
    if len(dataset) == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    device = device or model_device(model)
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0.0
    for x, y in minibatches(dataset, batch_size):
        x, y = x.to(device), y.to(device)
        outputs = model(x)
        # loss_fn averages over the batch
        total_loss += loss_fn(outputs, y).item() * len(y)
        correct += _n_correct(outputs, y)
    model.train(was_training)
    return {"loss": total_loss / len(dataset), "accuracy": correct / len(dataset)}


class SupervisedLoss:
    """The batch loss of (x, y) pairs: ``loss_fn(model(x), y)`` on the model's device.

    It also counts the correct predictions among the examples it sees; ``take_accuracy``
    returns their fraction and starts a new count (the training accuracy of a record).
    """

    def __init__(self, loss_fn: LossFn, device: torch.device):
        self.loss_fn, self.device = loss_fn, device
        self.correct, self.seen = 0.0, 0

    def __call__(
        self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        x, y = batch[0].to(self.device), batch[1].to(self.device)
        outputs = model(x)  # forward pass
        self.correct += _n_correct(outputs.detach(), y)
        self.seen += len(y)
        return self.loss_fn(outputs, y)

    def take_accuracy(self) -> float:
        accuracy_, self.correct, self.seen = self.correct / max(self.seen, 1), 0.0, 0
        return accuracy_


def epochs_of(
    dataset: Dataset, batch_size: int, epochs: int | None, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Shuffled minibatches of ``dataset``, epoch after epoch (forever when epochs is
    None)."""
    epoch = 0
    while epochs is None or epoch < epochs:
        yield from minibatches(dataset, batch_size, shuffle=True, generator=generator)
        epoch += 1


def train(
    model: nn.Module,
    train_set: Dataset,
    config: TrainConfig,
    val_set: Dataset | None = None,
    *,
    loss_fn: LossFn = F.cross_entropy,
    device: torch.device | None = None,
) -> History:
    """Train ``model`` on (x, y) pairs for ``config.epochs`` epochs (or ``config.steps``
    steps) with ``fit``, and return its History of one record per epoch.

    The model is moved to ``device`` (default: ``get_device()``) and stays there.
    Python, NumPy and torch are seeded with ``config.seed`` first, so shuffling and
    dropout repeat exactly. At every record the model is evaluated on ``val_set`` when
    one is given.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if len(train_set) == 0:
        raise ValueError("train_set is empty")
    if config.restore_best and val_set is None:
        raise ValueError("restore_best=True needs a val_set to choose the best epoch")
    device = device or get_device()
    set_seed(config.seed)
    model.to(device)
    steps_per_epoch = math.ceil(
        math.ceil(len(train_set) / config.batch_size) / config.accum
    )
    config = replace(
        config,
        steps=config.steps or config.epochs * steps_per_epoch,
        eval_every=config.eval_every or steps_per_epoch,
    )
    batch_loss = SupervisedLoss(loss_fn, device)

    def on_record(model: nn.Module) -> dict:
        result = {"train_accuracy": batch_loss.take_accuracy()}
        if val_set is not None:
            result.update(evaluate(model, val_set, loss_fn=loss_fn, device=device))
        return result

    shuffler = torch.Generator().manual_seed(config.seed)
    batches = epochs_of(train_set, config.batch_size, None, shuffler)
    return fit(model, batches, batch_loss, config, evaluate=on_record)
