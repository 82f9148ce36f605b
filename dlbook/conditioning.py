"""What chapter 13's three conditional generators (``dlbook.vae``, ``dlbook.gan``,
``dlbook.flow``) share: the class label as a one-hot vector, checked against the
model's ``n_classes``, and the base noise their ``sample`` methods start from; and what
the VAE and the flow, each trained by maximum likelihood with one ``fit`` call, share:
a batch (x,) or (x, y) unpacked on the model's device, and the training call itself."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dlbook.train import History, TrainConfig, epochs_of, fit
from dlbook.utils import check_positive_int, make_generator, model_device


def one_hot_labels(
    y: torch.Tensor | None, n_classes: int, batch: int, name: str
) -> torch.Tensor | None:
    """The labels y (batch,) as one-hot rows (batch, n_classes), or None for an
    unconditional model (``n_classes == 0``), which must be given ``y=None``.

    ``name`` names the model in the error messages."""
    if n_classes == 0:
        if y is not None:
            raise ValueError(f"this {name} is unconditional (n_classes=0); pass y=None")
        return None
    if y is None or y.shape != (batch,):
        shape = None if y is None else tuple(y.shape)
        raise ValueError(
            f"a conditional {name} needs labels y of shape ({batch},), got {shape}"
        )
    return F.one_hot(y, n_classes).float()


def base_noise(
    n: int, dim: int, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """n draws (n, dim) of N(0, I), made on the CPU with ``generator`` (so that a seed
    gives the same draws on every device) and moved to ``device``."""
    check_positive_int(n, "n")
    check_positive_int(dim, "dim")
    return torch.randn(n, dim, generator=generator).to(device)


def labelled_batch(
    model: nn.Module, batch: tuple[torch.Tensor, ...]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A batch (x,) or (x, y) on the model's device: x, and the labels y for a
    conditional model (``model.config.n_classes > 0``), else None."""
    device = model_device(model)
    y = batch[1].to(device) if model.config.n_classes and len(batch) > 1 else None
    return batch[0].to(device), y


def fit_tensors(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None,
    loss: Callable[[nn.Module, tuple[torch.Tensor, ...]], torch.Tensor],
    config: TrainConfig,
    desc: str,
) -> History:
    """Minimize ``loss(model, batch)`` on batches (x,) or (x, y) of the examples x (N,
    ...) and labels y (N,) with ``dlbook.train.fit``, shuffled epoch after epoch in the
    order ``config.seed`` gives; the model is left in eval mode. Returns the History."""
    if not isinstance(config, TrainConfig) or config.steps is None:
        raise ValueError(f"config must be a TrainConfig with steps set, got {config!r}")
    data = torch.utils.data.TensorDataset(*(t for t in (x, y) if t is not None))
    batches = epochs_of(data, config.batch_size, None, make_generator(config.seed))
    history = fit(model, batches, loss, config, desc=desc)
    model.eval()
    return history
