"""One plain training loop for every chapter: minibatches, an optimizer, validation, a history.

There are no callbacks and no trainer class. ``train`` runs epochs of minibatch gradient descent
and returns a ``History`` of per-epoch numbers; ``evaluate`` measures a model on a data set
without gradients. The device is chosen once (``dlbook.utils.get_device``) and batches are moved
to wherever the model is.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from dlbook.utils import get_device, set_seed

with warnings.catch_warnings():
    # Without ipywidgets, tqdm.auto warns once ("IProgress not found") and falls back to a text
    # bar. The text bar is what we want in the printed book, so the warning is silenced.
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
OPTIMIZERS = ("sgd", "adam", "adamw")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run; change them with ``dataclasses.replace``."""

    epochs: int = 10  # passes over the training set
    batch_size: int = 64  # examples per minibatch, |B|
    lr: float = 1e-3  # learning rate eta
    weight_decay: float = 0.0  # L2 penalty for sgd/adam, decoupled decay for adamw
    optimizer: str = "adam"  # "sgd", "adam" or "adamw"
    momentum: float = 0.9  # momentum of "sgd" (0 gives plain SGD); Adam ignores it
    grad_clip: float | None = None  # clip the gradient's global norm to this, or None
    seed: int = 0  # seeds the shuffling and the model's own randomness (dropout)
    progress: bool = True  # show a tqdm progress bar over the epochs
    restore_best: bool = False  # end with the parameters of the epoch of lowest val loss

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise ValueError(f"weight_decay must be >= 0 and momentum in [0, 1), got "
                             f"{self.weight_decay!r} and {self.momentum!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be None or > 0, got {self.grad_clip!r}")


@dataclass
class History:
    """Per-epoch numbers of one run. Accuracies are NaN when the task is not classification."""

    train_loss: list[float] = field(default_factory=list)  # mean minibatch loss of each epoch
    train_acc: list[float] = field(default_factory=list)  # accuracy on the minibatches seen
    val_loss: list[float] = field(default_factory=list)  # empty when there is no val_set
    val_acc: list[float] = field(default_factory=list)
    seconds: float = 0.0  # wall-clock time of the whole run
    best_epoch: int | None = None  # index of the epoch with the lowest val_loss


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of rows of ``logits`` (N, C) whose largest entry is at the label ``y`` (N,)."""
    if logits.dim() != 2 or y.dim() != 1 or len(logits) != len(y):
        raise ValueError(f"logits must be (N, C) and y (N,), got {tuple(logits.shape)} and "
                         f"{tuple(y.shape)}")
    if len(y) == 0:
        raise ValueError("accuracy of an empty batch is undefined")
    return (logits.argmax(dim=1) == y).float().mean().item()


def _n_correct(outputs: torch.Tensor, y: torch.Tensor) -> float:
    """Correct predictions in a batch, or NaN when outputs and targets are not class scores."""
    if outputs.dim() == 2 and y.dim() == 1 and not y.is_floating_point():
        return (outputs.argmax(dim=1) == y).sum().item()
    return math.nan


def minibatches(
    dataset: Dataset, batch_size: int, shuffle: bool = False,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Yield the dataset in minibatches, reshuffled on every call when ``shuffle`` is true.

    A ``TensorDataset`` is indexed directly (much faster than a ``DataLoader`` for data that
    fits in memory); any other dataset goes through a ``DataLoader``.
    """
    if isinstance(dataset, TensorDataset):
        n = len(dataset)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            yield tuple(t[idx] for t in dataset.tensors)
    else:
        yield from DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer ``config`` names. Weight decay acts only on matrices and kernels
    (``p.dim() >= 2``), not on biases or normalization gains, as in most modern recipes."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr)
    return torch.optim.AdamW(groups, lr=config.lr)


def _model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters live (the CPU for a model without any)."""
    tensor = next(model.parameters(), None)
    return tensor.device if tensor is not None else torch.device("cpu")


@torch.no_grad()
def evaluate(
    model: nn.Module, dataset: Dataset, *, loss_fn: LossFn = F.cross_entropy,
    device: torch.device | None = None, batch_size: int = 512,
) -> dict:
    """Mean loss and accuracy of ``model`` on ``dataset``, in eval mode and without gradients.

    Returns ``{"loss": float, "accuracy": float}``; accuracy is NaN for non-classification.
    """
    if len(dataset) == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    device = device or _model_device(model)
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0.0
    for x, y in minibatches(dataset, batch_size):
        x, y = x.to(device), y.to(device)
        outputs = model(x)
        total_loss += loss_fn(outputs, y).item() * len(y)  # loss_fn averages over the batch
        correct += _n_correct(outputs, y)
    model.train(was_training)
    return {"loss": total_loss / len(dataset), "accuracy": correct / len(dataset)}


def train_epoch(
    model: nn.Module, batches: Iterator, optimizer: torch.optim.Optimizer, loss_fn: LossFn,
    device: torch.device, grad_clip: float | None = None,
) -> tuple[float, float]:
    """One pass of minibatch gradient descent; returns (mean loss, accuracy) over the batches."""
    model.train()
    total_loss, correct, seen = 0.0, 0.0, 0
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        outputs = model(x)  # forward pass
        loss = loss_fn(outputs, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # backward pass: gradients of the mean batch loss
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()  # update: theta <- theta - lr * (the optimizer's direction)
        total_loss += loss.item() * len(y)
        correct += _n_correct(outputs.detach(), y)
        seen += len(y)
    return total_loss / seen, correct / seen


def record_validation(
    model: nn.Module, val_set: Dataset, loss_fn: LossFn, device: torch.device, history: History
) -> None:
    """Evaluate on the validation set, append the result to ``history`` and update its
    ``best_epoch`` (the epoch of lowest validation loss so far)."""
    result = evaluate(model, val_set, loss_fn=loss_fn, device=device)
    history.val_loss.append(result["loss"])
    history.val_acc.append(result["accuracy"])
    if history.best_epoch is None or result["loss"] < history.val_loss[history.best_epoch]:
        history.best_epoch = len(history.val_loss) - 1


def train(
    model: nn.Module, train_set: Dataset, config: TrainConfig, val_set: Dataset | None = None,
    *, loss_fn: LossFn = F.cross_entropy, device: torch.device | None = None,
) -> History:
    """Train ``model`` on ``train_set`` for ``config.epochs`` epochs and return its History.

    The model is moved to ``device`` (default: ``get_device()``) and stays there. Python, NumPy
    and torch are seeded with ``config.seed`` first, so shuffling and dropout repeat exactly.
    After every epoch the model is evaluated on ``val_set`` when one is given.
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
    optimizer = make_optimizer(model, config)
    shuffler = torch.Generator().manual_seed(config.seed)
    history, best_state, start = History(), None, time.perf_counter()
    bar = tqdm(range(config.epochs), desc="training", disable=not config.progress,
               unit="epoch", mininterval=10.0, leave=True)
    for epoch in bar:
        batches = minibatches(train_set, config.batch_size, shuffle=True, generator=shuffler)
        loss, acc = train_epoch(model, batches, optimizer, loss_fn, device, config.grad_clip)
        history.train_loss.append(loss)
        history.train_acc.append(acc)
        postfix = {"loss": f"{loss:.4f}"}
        if val_set is not None:
            record_validation(model, val_set, loss_fn, device, history)
            if config.restore_best and history.best_epoch == epoch:
                best_state = copy.deepcopy(model.state_dict())
            postfix.update(val_loss=f"{history.val_loss[-1]:.4f}",
                           val_acc=f"{history.val_acc[-1]:.3f}")
        bar.set_postfix(postfix, refresh=False)
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    history.seconds = time.perf_counter() - start
    return history
