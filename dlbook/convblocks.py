"""Two convolutional blocks after ResNet: DenseNet's dense block and ConvNeXt's block.

A dense block (Huang et al., 2017) feeds every layer the concatenation of the block's
input and all earlier layers' outputs; each layer adds ``growth`` channels. A ConvNeXt
block (Liu et al., 2022) is a residual block rebuilt with a Transformer's choices: a
depthwise 7x7 convolution mixes space, a layer norm, then a per-pixel MLP with a 4x
expansion and GELU mixes channels, scaled by a learned per-channel factor ("layer
scale") before the residual sum. ``*_parameters`` count each block's parameters by
formula.
"""

from __future__ import annotations

import torch
from torch import nn

from dlbook.utils import check_positive_int


class DenseLayer(nn.Module):
    """BN, ReLU, 3x3 convolution to ``growth`` channels (Huang et al., 2017, Sec. 3;
    without the 1x1 bottleneck of DenseNet-B)."""

    def __init__(self, c_in: int, growth: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(c_in)
        self.conv = nn.Conv2d(c_in, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, c_in, H, W) -> (B, growth, H, W)."""
        return self.conv(torch.relu(self.norm(x)))


class DenseBlock(nn.Module):
    """``n_layers`` dense layers; layer l reads ``[x_0, x_1, ..., x_{l-1}]`` (all
    channels so far) and the block returns all of them, ``c_in + n_layers * growth``
    channels."""

    def __init__(self, c_in: int, growth: int, n_layers: int):
        super().__init__()
        for name, value in (("c_in", c_in), ("growth", growth), ("n_layers", n_layers)):
            check_positive_int(value, name)
        self.layers = nn.ModuleList(
            DenseLayer(c_in + i * growth, growth) for i in range(n_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, c_in, H, W) -> (B, c_in + n_layers * growth, H, W)."""
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))  # concatenate, not add
        return torch.cat(features, dim=1)


def dense_block_parameters(c_in: int, growth: int, n_layers: int) -> int:
    """Parameters of ``DenseBlock``: layer i has a BN (2 per input channel) and a
    bias-free 3x3 convolution from ``c_in + i * growth`` channels to ``growth``."""
    return sum((2 + 9 * growth) * (c_in + i * growth) for i in range(n_layers))


class ConvNeXtBlock(nn.Module):
    """``x + gamma * MLP(LN(dwconv7x7(x)))`` (Liu et al., 2022, Fig. 4), without
    stochastic depth.

    The MLP is two 1x1 convolutions written as ``nn.Linear`` on channels-last pixels,
    as in the paper's code; ``gamma`` (layer scale) starts at ``layer_scale``.
    """

    def __init__(self, channels: int, layer_scale: float = 1e-6):
        super().__init__()
        check_positive_int(channels, "channels")
        c = channels
        self.dwconv = nn.Conv2d(c, c, 7, padding=3, groups=c)  # one 7x7 kernel each
        self.norm = nn.LayerNorm(c)  # over the channels of each pixel
        self.fc1 = nn.Linear(c, 4 * c)
        self.fc2 = nn.Linear(4 * c, c)
        self.gamma = nn.Parameter(torch.full((c,), float(layer_scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) -> (B, C, H, W)."""
        h = self.dwconv(x).permute(0, 2, 3, 1)  # (B, H, W, C): channels last
        h = self.fc2(nn.functional.gelu(self.fc1(self.norm(h))))
        return x + (self.gamma * h).permute(0, 3, 1, 2)  # back to (B, C, H, W)


def convnext_block_parameters(channels: int) -> int:
    """Parameters of ``ConvNeXtBlock``: depthwise 7x7 with bias (50 C), layer norm
    (2 C), C -> 4C -> C linear layers (8 C^2 + 5 C), layer scale (C): 8 C^2 + 58 C."""
    return 8 * channels**2 + 58 * channels
