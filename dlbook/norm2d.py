"""Batch normalization of convolutional feature maps (chapter 4), built on chapter 3's.

A convolution applies the same kernel at every position, so batch normalization after it
treats every position of every image as one more example of the same C features: the
statistics of channel c are taken over all B * H * W values of that channel.
``BatchNorm2d`` is therefore ``dlbook.norm.BatchNorm1d`` applied to the maps reshaped to
(B * H * W, C), and it inherits its training mode (batch statistics, running averages)
and evaluation mode (running averages). ``tests/test_norm2d.py`` checks it against
``torch.nn.BatchNorm2d`` in both modes.
"""

from __future__ import annotations

import torch

from dlbook.norm import BatchNorm1d


class BatchNorm2d(BatchNorm1d):
    """``y = gamma * (x - mu_c) / sqrt(var_c + eps) + beta`` per channel c of x (B, C,
    H, W), with mu_c and var_c over the batch *and* the positions (Ioffe and Szegedy,
    2015, sec. 3.2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) -> the normalized and rescaled maps, same shape."""
        if x.dim() != 4 or x.shape[1] != self.num_features:
            raise ValueError(
                f"x must have shape (B, {self.num_features}, H, W), "
                f"got {tuple(x.shape)}"
            )
        B, C, H, W = x.shape
        # every position is an example
        pixels = x.permute(0, 2, 3, 1).reshape(B * H * W, C)
        # (B, C, H, W)
        return super().forward(pixels).view(B, H, W, C).permute(0, 3, 1, 2)
