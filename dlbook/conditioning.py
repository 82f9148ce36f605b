"""What chapter 13's three conditional generators (``dlbook.vae``, ``dlbook.gan``,
``dlbook.flow``) share: the class label as a one-hot vector, checked against the
model's ``n_classes``, and the base noise their ``sample`` methods start from."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dlbook.utils import check_positive_int


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
