"""Convolutional networks: 2-D cross-correlation from loops and from im2col, its
backward pass, pooling, and three networks for 8x8 digits (LeNet, a small ResNet and its
plain twin).

The from-scratch layers take and return tensors in PyTorch's layout, ``(B, C, H, W)``
images and ``(C_out, C_in, kH, kW)`` kernels, so tests compare them with
``torch.nn.functional``. The networks use PyTorch's own layers, which compute the same
thing much faster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import torch
import torch.nn.functional as F
from torch import nn

from dlbook.utils import check_int, check_positive_int

IntPair = Union[int, tuple[int, int]]


def _pair(value: IntPair, name: str, minimum: int) -> tuple[int, int]:
    """``value`` as a pair of ints, each at least ``minimum``."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    return tuple(check_positive_int(v, name, minimum) for v in pair)


def _check_image(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}")


def conv_output_size(
    size: int, kernel_size: int, stride: int = 1, padding: int = 0
) -> int:
    """Output length along one axis:
    ``floor((size + 2 padding - kernel_size) / stride) + 1``."""
    check_positive_int(size, "size")
    check_positive_int(kernel_size, "kernel_size")
    check_positive_int(stride, "stride")
    check_positive_int(padding, "padding", minimum=0)
    if size + 2 * padding < kernel_size:
        raise ValueError(
            f"kernel size {kernel_size} is larger than the padded input size "
            f"{size + 2 * padding}"
        )
    return (size + 2 * padding - kernel_size) // stride + 1


def _output_shape(x, kernel, stride, padding) -> tuple[int, int]:
    """(H_out, W_out) of a sliding window of size ``kernel`` over the images ``x``."""
    sizes = zip(x.shape[2:], kernel, stride, padding)
    return tuple(conv_output_size(n, k, s, p) for n, k, s, p in sizes)


def _check_conv(x, weight, bias, stride, padding):
    """Validate the arguments of a convolution; return (stride, padding, (H_out,
    W_out))."""
    _check_image(x)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
        shape = (
            tuple(weight.shape)
            if isinstance(weight, torch.Tensor)
            else type(weight).__name__
        )
        raise ValueError(f"weight must have shape (C_out, C_in, kH, kW), got {shape}")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"x has {x.shape[1]} channels, but weight of shape {tuple(weight.shape)} "
            f"expects {weight.shape[1]}"
        )
    if x.dtype != weight.dtype:
        raise TypeError(
            f"x and weight must have the same dtype, got {x.dtype} and {weight.dtype}"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(
            f"bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}"
        )
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    return stride, padding, _output_shape(x, weight.shape[2:], stride, padding)


def conv2d_loops(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
) -> torch.Tensor:
    """2-D cross-correlation, one output position at a time.

    ``y[b, o, i, j] = bias[o] + sum_{c, u, v} x_pad[b, c, i s_h + u, j s_w + v]``
    ``* w[o, c, u, v]``

    Args:
        x: images, shape (B, C_in, H, W).
        weight: kernels, shape (C_out, C_in, kH, kW).
        bias: one number per output channel, shape (C_out,), or None.
        stride, padding: an int or an (int, int) pair for (height, width); padding adds
            zeros.

    Returns:
        The feature maps, shape (B, C_out, H_out, W_out).
    """
    (sh, sw), (ph, pw), (out_h, out_w) = _check_conv(x, weight, bias, stride, padding)
    kh, kw = weight.shape[2:]
    # zeros around each image: (B, C_in, H + 2ph, W + 2pw)
    x = F.pad(x, (pw, pw, ph, ph))
    y = x.new_zeros(x.shape[0], weight.shape[0], out_h, out_w)
    for i in range(out_h):
        for j in range(out_w):
            # (B, C_in, kH, kW)
            patch = x[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
            # each output channel's kernel times the patch, summed over (C_in, kH, kW)
            # (B, C_out)
            y[:, :, i, j] = (patch[:, None] * weight[None]).sum(dim=(2, 3, 4))
    if bias is not None:
        y = y + bias.view(1, -1, 1, 1)
    return y


def im2col(
    x: torch.Tensor, kernel_size: IntPair, stride: IntPair = 1, padding: IntPair = 0
) -> torch.Tensor:
    """Copy every (C, kH, kW) window of ``x`` into one column
    (``torch.nn.functional.unfold``).

    Args:
        x: images, shape (B, C, H, W).
        kernel_size, stride, padding: an int or an (int, int) pair.

    Returns:
        Columns of shape (B, C kH kW, L) with L = H_out W_out; rows are ordered (c, u,
        v).
    """
    _check_image(x)
    (kh, kw), (sh, sw) = (
        _pair(kernel_size, "kernel_size", 1),
        _pair(stride, "stride", 1),
    )
    ph, pw = _pair(padding, "padding", 0)
    out_h, out_w = _output_shape(x, (kh, kw), (sh, sw), (ph, pw))
    x = F.pad(x, (pw, pw, ph, ph))  # (B, C, H + 2ph, W + 2pw)
    cols = x.new_empty(x.shape[0], x.shape[1], kh, kw, out_h, out_w)
    for u in range(kh):
        for v in range(kw):
            # kernel entry (u, v) sees the input at (i s_h + u, j s_w + v): one strided
            # slice
            cols[:, :, u, v] = x[:, :, u : u + sh * out_h : sh, v : v + sw * out_w : sw]
    return cols.reshape(x.shape[0], -1, out_h * out_w)  # (B, C kH kW, L)


def col2im(
    cols: torch.Tensor,
    image_size: tuple[int, int],
    kernel_size: IntPair,
    stride: IntPair = 1,
    padding: IntPair = 0,
) -> torch.Tensor:
    """The adjoint of ``im2col`` (``torch.nn.functional.fold``): add each column back
    into the pixels it was copied from, so a pixel shared by several windows receives
    their sum.

    Args:
        cols: columns, shape (B, C kH kW, L), as ``im2col`` returns them.
        image_size: (H, W) of the images the columns came from.

    Returns:
        Images of shape (B, C, H, W).
    """
    if not isinstance(cols, torch.Tensor):
        raise TypeError(f"cols must be a torch.Tensor, got {type(cols).__name__}")
    (kh, kw), (sh, sw) = (
        _pair(kernel_size, "kernel_size", 1),
        _pair(stride, "stride", 1),
    )
    ph, pw = _pair(padding, "padding", 0)
    h, w = _pair(image_size, "image_size", 1)
    out_h, out_w = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    if cols.dim() != 3 or cols.shape[1] % (kh * kw) or cols.shape[2] != out_h * out_w:
        raise ValueError(
            f"cols must have shape (B, C*{kh}*{kw}, {out_h * out_w}), got "
            f"{tuple(cols.shape)}"
        )
    b, c = cols.shape[0], cols.shape[1] // (kh * kw)
    cols = cols.reshape(b, c, kh, kw, out_h, out_w)
    x = cols.new_zeros(b, c, h + 2 * ph, w + 2 * pw)
    for u in range(kh):
        for v in range(kw):
            x[:, :, u : u + sh * out_h : sh, v : v + sw * out_w : sw] += cols[
                :, :, u, v
            ]
    return x[:, :, ph : ph + h, pw : pw + w]  # drop the padding: (B, C, H, W)


def conv2d_backward(
    grad_y: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    stride: IntPair = 1,
    padding: IntPair = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of a loss with respect to x, weight and bias, given dL/dy of shape
    (B, C_out, H_out, W_out).

    With X = im2col(x) and W the kernels as a (C_out, C_in kH kW) matrix, y = W X + b,
    so ``dW = sum_b dY_b X_b^T``, ``db = sum over b and positions of dY``,
    ``dX = W^T dY`` and ``dx = col2im(dX)``.
    """
    _check_image(grad_y, "grad_y")
    _check_conv(x, weight, None, stride, padding)
    if grad_y.shape[:2] != (x.shape[0], weight.shape[0]):
        raise ValueError(
            f"grad_y must have shape (B={x.shape[0]}, "
            f"C_out={weight.shape[0]}, "
            f"H_out, W_out), got {tuple(grad_y.shape)}"
        )
    b, c_out = grad_y.shape[:2]
    kernel = weight.shape[2:]
    # recomputed rather than stored: (B, C_in kH kW, L)
    cols = im2col(x, kernel, stride, padding)
    grad_y = grad_y.reshape(b, c_out, -1)  # (B, C_out, L)
    grad_w = (grad_y @ cols.transpose(1, 2)).sum(0).reshape(weight.shape)
    grad_b = grad_y.sum(dim=(0, 2))
    grad_cols = weight.reshape(c_out, -1).T @ grad_y  # (B, C_in kH kW, L)
    grad_x = col2im(grad_cols, x.shape[2:], kernel, stride, padding)
    return grad_x, grad_w, grad_b


class _Conv2dIm2col(torch.autograd.Function):
    """Cross-correlation as a matrix product, with the hand-written backward pass
    above."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding, ctx.has_bias = stride, padding, bias is not None
        b, c_out = x.shape[0], weight.shape[0]
        out_h, out_w = _output_shape(x, weight.shape[2:], stride, padding)
        cols = im2col(x, weight.shape[2:], stride, padding)  # (B, C_in kH kW, L)
        y = weight.reshape(c_out, -1) @ cols  # (C_out, C_in kH kW) @ (B, C_in kH kW, L)
        if bias is not None:
            y = y + bias.view(1, -1, 1)
        return y.reshape(b, c_out, out_h, out_w)  # (B, C_out, H_out, W_out)

    @staticmethod
    def backward(ctx, grad_y):
        x, weight = ctx.saved_tensors
        grad_x, grad_w, grad_b = conv2d_backward(
            grad_y, x, weight, ctx.stride, ctx.padding
        )
        return grad_x, grad_w, grad_b if ctx.has_bias else None, None, None


def conv2d_im2col(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
) -> torch.Tensor:
    """2-D cross-correlation as one matrix product per batch, ``y = W im2col(x) + b``.

    Same arguments and result as ``conv2d_loops``; gradients come from
    ``conv2d_backward``.
    """
    stride, padding, _ = _check_conv(x, weight, bias, stride, padding)
    return _Conv2dIm2col.apply(x, weight, bias, stride, padding)


def _pool(x, kernel_size, stride, padding, fill):
    """Windows of each channel as (B, C, kH kW, H_out, W_out), padded with ``fill``."""
    _check_image(x)
    kernel = _pair(kernel_size, "kernel_size", 1)
    stride = kernel if stride is None else _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    if 2 * ph > kernel[0] or 2 * pw > kernel[1]:
        raise ValueError(
            f"padding must be at most half the kernel size {kernel}, got {padding!r}"
        )
    b, c, h, w = x.shape
    out_h, out_w = _output_shape(x, kernel, stride, (ph, pw))
    x = F.pad(x, (pw, pw, ph, ph), value=fill).reshape(b * c, 1, h + 2 * ph, w + 2 * pw)
    cols = im2col(x, kernel, stride)  # each channel alone: (B C, kH kW, L)
    return cols.reshape(b, c, -1, out_h, out_w)


def max_pool2d(
    x: torch.Tensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
) -> torch.Tensor:
    """The largest value of each window, per channel; ``stride`` defaults to
    ``kernel_size``. Padding is by -inf, so it never wins. Returns shape (B, C, H_out,
    W_out)."""
    return _pool(x, kernel_size, stride, padding, fill=float("-inf")).amax(dim=2)


def avg_pool2d(
    x: torch.Tensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
) -> torch.Tensor:
    """The mean of each window, per channel, counting padded zeros (PyTorch's default).
    Returns shape (B, C, H_out, W_out)."""
    return _pool(x, kernel_size, stride, padding, fill=0.0).mean(dim=2)


def shift_images(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Translate images by (dy, dx) pixels (down and right when positive), filling with
    zeros."""
    _check_image(x)
    check_int(dy, "dy")
    check_int(dx, "dx")
    h, w = x.shape[2:]
    if abs(dy) >= h or abs(dx) >= w:
        raise ValueError(
            f"shift ({dy}, {dx}) must be smaller than the image size ({h}, {w})"
        )
    padded = F.pad(x, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)))
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[:, :, top : top + h, left : left + w]


class RandomShift(nn.Module):
    """Data augmentation as a layer: in training mode, shift each image by a random
    number of pixels in [-max_shift, max_shift] along each axis (zero fill); in eval
    mode, do nothing."""

    def __init__(self, max_shift: int = 1):
        super().__init__()
        self.max_shift = check_positive_int(max_shift, "max_shift", minimum=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.max_shift == 0:
            return x
        _check_image(x)
        s, (b, _, h, w) = self.max_shift, x.shape
        padded = F.pad(x, (s, s, s, s))  # (B, C, H + 2s, W + 2s)
        top = torch.randint(0, 2 * s + 1, (b, 1, 1), device=x.device)
        left = torch.randint(0, 2 * s + 1, (b, 1, 1), device=x.device)
        rows = top + torch.arange(h, device=x.device).view(1, h, 1)  # (B, H, 1)
        cols = left + torch.arange(w, device=x.device).view(1, 1, w)  # (B, 1, W)
        batch = torch.arange(b, device=x.device).view(b, 1, 1)
        # (B, C, H, W)
        return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def _config_or_default(config, config_class: type):
    """``config``, or the default ``config_class()`` when None; anything else is a
    TypeError."""
    if config is None:
        return config_class()
    if not isinstance(config, config_class):
        raise TypeError(
            f"config must be a {config_class.__name__} or None, "
            f"got {type(config).__name__}"
        )
    return config


@dataclass(frozen=True)
class LeNetConfig:
    """LeNet-5 (LeCun et al., 1998) scaled to 8x8 digits."""

    in_channels: int = 1  # grey-scale images
    n_classes: int = 10  # digits 0-9
    # maps of the two convolutions (C1, C3 in the paper)
    channels: tuple[int, int] = (6, 16)
    # widths of the two hidden dense layers (F5, F6)
    hidden: tuple[int, int] = (120, 84)
    kernel_size: int = 3  # the paper used 5x5 on 32x32 images; 3x3 (padded) suits 8x8
    image_size: int = 8  # input height and width, divisible by 4 (two 2x2 poolings)

    def __post_init__(self) -> None:
        for name in ("in_channels", "n_classes", "kernel_size", "image_size"):
            check_positive_int(getattr(self, name), name)
        for name in ("channels", "hidden"):
            if len(getattr(self, name)) != 2:
                raise ValueError(
                    f"{name} must be a pair of ints, got {getattr(self, name)!r}"
                )
            for value in getattr(self, name):
                check_positive_int(value, name)


class LeNet(nn.Module):
    """Two (convolution, ReLU, 2x2 max pool) stages, then three dense layers. The paper
    used sigmoid-like units and trainable average pooling; ReLU and max pooling train
    faster."""

    def __init__(self, config: LeNetConfig | None = None):
        super().__init__()
        config = _config_or_default(config, LeNetConfig)
        if config.image_size % 4:
            raise ValueError(
                f"image_size must be divisible by 4, got {config.image_size}"
            )
        c1, c2 = config.channels
        pad = config.kernel_size // 2
        self.config = config
        self.features = nn.Sequential(
            nn.Conv2d(config.in_channels, c1, config.kernel_size, padding=pad),
            nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, config.kernel_size, padding=pad),
            nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        flat = c2 * (config.image_size // 4) ** 2
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(flat, config.hidden[0]), nn.ReLU(),
            nn.Linear(config.hidden[0], config.hidden[1]), nn.ReLU(),
            nn.Linear(config.hidden[1], config.n_classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> logits (B, n_classes)."""
        return self.classifier(self.features(x))


@dataclass(frozen=True)
class ResNetConfig:
    """A small ResNet (He et al., 2016) for 8x8 images; ``residual=False`` gives its
    plain twin.

    The paper's CIFAR-10 networks have three stages of 16, 32 and 64 channels; two
    stages suit 8x8 digits, and the defaults are the network chapter 4 trains to about
    99% test accuracy.
    """

    in_channels: int = 1  # grey-scale images
    n_classes: int = 10  # digits 0-9
    width: int = 24  # channels of the first stage; each later stage doubles them
    # basic blocks per stage; stages after the first
    blocks_per_stage: tuple[int, ...] = (1, 1)
    # halve the height and width with a stride-2 convolution
    # False drops every skip connection (the paper's "plain" network)
    residual: bool = True
    batch_norm: bool = True  # BatchNorm after every convolution, as in the paper

    def __post_init__(self) -> None:
        for name in ("in_channels", "n_classes", "width"):
            check_positive_int(getattr(self, name), name)

    @property
    def depth(self) -> int:
        """The number of weight layers (stem convolution, two per block, final linear
        layer)."""
        return 2 + 2 * sum(self.blocks_per_stage)


class BasicBlock(nn.Module):
    """``relu(F(x) + shortcut(x))`` with F = conv3x3, BN, ReLU, conv3x3, BN (He et al.,
    2016, Fig. 2). The shortcut is the identity, or a strided 1x1 convolution when the
    shape changes."""

    def __init__(
        self, c_in: int, c_out: int, stride: int, residual: bool, batch_norm: bool
    ):
        super().__init__()
        norm = nn.BatchNorm2d if batch_norm else (lambda _: nn.Identity())
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, padding=1, bias=not batch_norm),
            norm(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=not batch_norm), norm(c_out),
        )  # fmt: skip
        self.shortcut = None
        if residual:
            self.shortcut = nn.Identity()
            if stride != 1 or c_in != c_out:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(c_in, c_out, 1, stride, bias=not batch_norm), norm(c_out)
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if self.shortcut is not None:
            out = out + self.shortcut(x)  # the residual connection
        return torch.relu(out)


class ResNet(nn.Module):
    """Stem convolution, stages of basic blocks, global average pooling, one linear
    layer."""

    def __init__(self, config: ResNetConfig | None = None):
        super().__init__()
        config = _config_or_default(config, ResNetConfig)
        if not config.blocks_per_stage or min(config.blocks_per_stage) < 1:
            raise ValueError(
                f"blocks_per_stage must be a non-empty tuple of positive ints, "
                f"got {config.blocks_per_stage}"
            )
        self.config = config
        width, bn = config.width, config.batch_norm
        layers = [nn.Conv2d(config.in_channels, width, 3, padding=1, bias=not bn)]
        layers += [nn.BatchNorm2d(width) if bn else nn.Identity(), nn.ReLU()]
        c_in = width
        for stage, n_blocks in enumerate(config.blocks_per_stage):
            c_out = width * 2**stage
            for block in range(n_blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(c_in, c_out, stride, config.residual, bn))
                c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, config.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> logits (B, n_classes)."""
        _check_image(x)
        features = self.features(x).mean(dim=(2, 3))  # global average pooling: (B, C)
        return self.head(features)
