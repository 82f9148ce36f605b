"""LoRA: fine-tune a frozen model through low-rank updates of chosen weight matrices.

Hu et al. (2022) keep a pre-trained weight ``W`` (d_out, d_in) frozen and learn
``W + (alpha / r) B A`` with ``A`` (r, d_in) and ``B`` (d_out, r), r much smaller than
d_in and d_out. ``B`` starts at zero, so training starts from exactly the pre-trained
model. After training, ``B A`` can be added into ``W`` (``merge_lora``): the fine-tuned
model then has the original architecture and costs nothing extra at inference.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dlbook.utils import check_positive_int


class LoRALinear(nn.Module):
    """``y = x W^T + b + (alpha / r) x A^T B^T`` with ``W`` and ``b`` frozen (Hu et al.,
    eq. 3).

    ``A`` starts like an ``nn.Linear`` weight (Kaiming uniform), ``B`` at zero.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"base must be an nn.Linear, got {type(base).__name__}")
        check_positive_int(rank, "rank")
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.rank, self.scaling = rank, alpha / rank
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, **factory))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, **factory))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., d_in) -> (..., d_out)."""
        update = (x @ self.lora_A.T) @ self.lora_B.T  # (..., r) then (..., d_out)
        return self.base(x) + self.scaling * update

    def merged(self) -> nn.Linear:
        """An ``nn.Linear`` whose weight is ``W + (alpha / r) B A``: the same
        function."""
        out = nn.Linear(
            self.base.in_features,
            self.base.out_features,
            bias=self.base.bias is not None,
            device=self.base.weight.device,
            dtype=self.base.weight.dtype,
        )
        with torch.no_grad():
            out.weight.copy_(
                self.base.weight + self.scaling * self.lora_B @ self.lora_A
            )
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        return out


def add_lora(
    model: nn.Module,
    rank: int = 4,
    alpha: float = 8.0,
    targets: tuple[str, ...] = ("q_proj", "v_proj"),
) -> nn.Module:
    """Freeze every parameter of ``model`` and wrap each ``nn.Linear`` whose attribute
    name is in ``targets`` in a ``LoRALinear``, in place. Hu et al. adapt the query and
    value projections, the default here. Returns the model."""
    for p in model.parameters():
        p.requires_grad_(False)
    found = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if name in targets and isinstance(child, nn.Linear)
    ]
    if not found:
        raise ValueError(
            f"no nn.Linear named one of {targets} in {type(model).__name__}"
        )
    for parent, name, child in found:
        setattr(parent, name, LoRALinear(child, rank, alpha))
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every ``LoRALinear`` in ``model`` by its merged ``nn.Linear``, in
    place."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LoRALinear):
                setattr(parent, name, child.merged())
    return model


def trainable_parameters(model: nn.Module) -> int:
    """The number of parameters that receive gradients."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
