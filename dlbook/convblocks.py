"""Two convolutional designs after ResNet: DenseNet's dense block and ConvNeXt's block,
and small networks of each for 8x8 digits.

A dense block (Huang et al., 2017) feeds every layer the concatenation of the block's
input and all earlier layers' outputs; each layer adds ``growth`` channels, and a
transition between blocks shrinks the channels and the maps. A ConvNeXt block (Liu et
al., 2022) is a residual block rebuilt with a Transformer's choices: a depthwise 7x7
convolution mixes space, a layer norm, then a per-pixel MLP with a 4x expansion and GELU
mixes channels, scaled by a learned per-channel factor ("layer scale") before the
residual sum. ``*_parameters`` count each block's parameters by formula.
``tests/test_convblocks_reference.py`` checks the blocks against MONAI's DenseNet and
Hugging Face's ConvNeXt with copied weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dlbook.cnn import _config_or_default
from dlbook.utils import check_positive_int


class DenseLayer(nn.Module):
    """BN, ReLU, 3x3 convolution to ``growth`` channels (Huang et al., 2017, Sec. 3).

    With ``bottleneck=b`` it is DenseNet-B's layer: BN, ReLU and a 1x1 convolution to
    ``b * growth`` channels come first (the paper and its code use b = 4).
    """

    def __init__(self, c_in: int, growth: int, bottleneck: int | None = None):
        super().__init__()
        check_positive_int(c_in, "c_in")
        check_positive_int(growth, "growth")
        self.reduce = None
        if bottleneck is not None:
            c_mid = check_positive_int(bottleneck, "bottleneck") * growth
            self.reduce = nn.Sequential(
                nn.BatchNorm2d(c_in), nn.ReLU(), nn.Conv2d(c_in, c_mid, 1, bias=False)
            )
            c_in = c_mid
        self.norm = nn.BatchNorm2d(c_in)
        self.conv = nn.Conv2d(c_in, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, c_in, H, W) -> (B, growth, H, W)."""
        if self.reduce is not None:
            x = self.reduce(x)  # (B, bottleneck * growth, H, W)
        return self.conv(torch.relu(self.norm(x)))


class DenseBlock(nn.Module):
    """``n_layers`` dense layers; layer l reads ``[x_0, x_1, ..., x_{l-1}]`` (all
    channels so far) and the block returns all of them, ``c_in + n_layers * growth``
    channels."""

    def __init__(
        self, c_in: int, growth: int, n_layers: int, bottleneck: int | None = None
    ):
        super().__init__()
        for name, value in (("c_in", c_in), ("growth", growth), ("n_layers", n_layers)):
            check_positive_int(value, name)
        self.layers = nn.ModuleList(
            DenseLayer(c_in + i * growth, growth, bottleneck) for i in range(n_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, c_in, H, W) -> (B, c_in + n_layers * growth, H, W)."""
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))  # concatenate, not add
        return torch.cat(features, dim=1)


def transition(c_in: int, c_out: int) -> nn.Sequential:
    """DenseNet's transition between blocks: BN, ReLU, 1x1 convolution to ``c_out``
    channels, 2x2 average pooling (Huang et al., 2017, Sec. 3, with the ReLU of the
    authors' code). (B, c_in, H, W) -> (B, c_out, H // 2, W // 2)."""
    check_positive_int(c_in, "c_in")
    check_positive_int(c_out, "c_out")
    return nn.Sequential(
        nn.BatchNorm2d(c_in), nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False),
        nn.AvgPool2d(2),
    )  # fmt: skip


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
        self.norm = nn.LayerNorm(c, eps=1e-6)  # over each pixel's channels; paper's eps
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


class LayerNorm2d(nn.LayerNorm):
    """Layer norm over the channels of each pixel of (B, C, H, W) maps."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) -> the same shape."""
        # (B, H, W, C) and back
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


@dataclass(frozen=True)
class DenseNetConfig:
    """A small DenseNet (Huang et al., 2017) for 8x8 images: a 3x3 stem, a dense block
    at 8x8, a transition to 4x4, a dense block, BN, ReLU, global average pooling,
    linear."""

    in_channels: int = 1  # grey-scale images
    n_classes: int = 10  # digits 0-9
    stem: int = 24  # channels of the stem convolution
    # k, the channels each dense layer adds (the paper's CIFAR k: 12-40)
    growth: int = 16
    layers_per_block: tuple[int, int] = (3, 3)  # dense layers in the two blocks
    compression: float = 0.5  # share of channels a transition keeps (DenseNet-C)
    bottleneck: int | None = None  # b of DenseNet-B's 1x1 to b * growth; None: none

    def __post_init__(self) -> None:
        for name in ("in_channels", "n_classes", "stem", "growth"):
            check_positive_int(getattr(self, name), name)
        for value in self.layers_per_block:
            check_positive_int(value, "layers_per_block")
        if not 0 < self.compression <= 1:
            raise ValueError(f"compression must be in (0, 1], got {self.compression}")


class DenseNet(nn.Module):
    """Stem, dense blocks with transitions between them, head (see DenseNetConfig)."""

    def __init__(self, config: DenseNetConfig | None = None):
        super().__init__()
        config = _config_or_default(config, DenseNetConfig)
        self.config = config
        c = config.stem
        layers: list[nn.Module] = [nn.Conv2d(config.in_channels, c, 3, padding=1)]
        for i, n_layers in enumerate(config.layers_per_block):
            if i > 0:  # halve the maps between blocks, and compress the channels
                c_out = max(1, int(config.compression * c))
                layers.append(transition(c, c_out))
                c = c_out
            layers.append(DenseBlock(c, config.growth, n_layers, config.bottleneck))
            c += n_layers * config.growth
        layers += [nn.BatchNorm2d(c), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, config.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> logits (B, n_classes)."""
        return self.head(self.features(x).mean(dim=(2, 3)))  # average pooling: (B, C)


@dataclass(frozen=True)
class ConvNeXtConfig:
    """A small ConvNeXt (Liu et al., 2022) for 8x8 images. Departures: a 3x3 stride-1
    stem instead of the 4x4 stride-4 "patchify" stem (which would leave a 2x2 map), two
    stages instead of four, no stochastic depth."""

    in_channels: int = 1  # grey-scale images
    n_classes: int = 10  # digits 0-9
    # first stage's channels (the second doubles them): ~ResNet's params
    width: int = 28
    blocks_per_stage: tuple[int, int] = (1, 1)  # ConvNeXt blocks at 8x8 and at 4x4
    layer_scale: float = 1e-6  # initial gamma of every block, as in the paper

    def __post_init__(self) -> None:
        for name in ("in_channels", "n_classes", "width"):
            check_positive_int(getattr(self, name), name)
        for value in self.blocks_per_stage:
            check_positive_int(value, "blocks_per_stage")


class ConvNeXt(nn.Module):
    """Stem conv + LN; stages of ConvNeXt blocks with an LN and a 2x2 stride-2
    convolution between them (the paper's downsampling layer); average pooling, LN,
    linear."""

    def __init__(self, config: ConvNeXtConfig | None = None):
        super().__init__()
        config = _config_or_default(config, ConvNeXtConfig)
        self.config = config
        c = config.width
        layers: list[nn.Module] = [
            nn.Conv2d(config.in_channels, c, 3, padding=1),
            LayerNorm2d(c, eps=1e-6),
        ]
        for stage, n_blocks in enumerate(config.blocks_per_stage):
            if stage > 0:
                layers += [LayerNorm2d(c, eps=1e-6), nn.Conv2d(c, 2 * c, 2, stride=2)]
                c *= 2
            layers += [ConvNeXtBlock(c, config.layer_scale) for _ in range(n_blocks)]
        self.features = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.head = nn.Linear(c, config.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> logits (B, n_classes)."""
        features = self.features(x).mean(dim=(2, 3))  # global average pooling: (B, C)
        return self.head(self.norm(features))
