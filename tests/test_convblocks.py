"""Tests of dlbook.convblocks: shapes, parameter counts two ways, and each block against
the same computation written with torch.nn.functional ops."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook.cnn import BasicBlock
from dlbook.convblocks import (
    ConvNeXtBlock,
    DenseBlock,
    convnext_block_parameters,
    dense_block_parameters,
)
from dlbook.utils import count_parameters

F = torch.nn.functional


@settings(max_examples=20, deadline=None)
@given(c_in=st.integers(1, 8), growth=st.integers(1, 6), n_layers=st.integers(1, 4),
       hw=st.integers(1, 6))
def test_dense_block_shape_and_parameters(c_in, growth, n_layers, hw):
    block = DenseBlock(c_in, growth, n_layers)
    out = block(torch.randn(2, c_in, hw, hw))
    assert out.shape == (2, c_in + n_layers * growth, hw, hw)
    assert count_parameters(block) == dense_block_parameters(c_in, growth, n_layers)


def test_dense_block_keeps_its_input_and_matches_functional_ops():
    torch.manual_seed(0)
    block = DenseBlock(3, 4, 3).double().train()
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    out = block(x)
    assert torch.equal(out[:, :3], x)  # the input is passed on unchanged
    feats = x
    for layer in block.layers:  # the same computation, from functional ops
        h = F.batch_norm(feats, None, None, layer.norm.weight, layer.norm.bias,
                         training=True)
        feats = torch.cat([feats, F.conv2d(F.relu(h), layer.conv.weight, padding=1)], 1)
    torch.testing.assert_close(out, feats)


@pytest.mark.parametrize("channels", [1, 4, 16])
def test_convnext_block_parameters_and_shape(channels):
    block = ConvNeXtBlock(channels)
    assert count_parameters(block) == convnext_block_parameters(channels)
    assert block(torch.randn(2, channels, 9, 7)).shape == (2, channels, 9, 7)


def test_convnext_block_matches_functional_ops():
    torch.manual_seed(0)
    c = 6
    block = ConvNeXtBlock(c, layer_scale=0.5).double()
    with torch.no_grad():
        block.norm.weight.normal_()
        block.norm.bias.normal_()
    x = torch.randn(2, c, 8, 8, dtype=torch.float64)
    h = F.conv2d(x, block.dwconv.weight, block.dwconv.bias, padding=3, groups=c)
    # layer norm over channels, then the MLP as two 1x1 convolutions, all channels-first
    mu = h.mean(1, keepdim=True)
    var = h.var(1, unbiased=False, keepdim=True)
    h = (h - mu) / torch.sqrt(var + block.norm.eps)
    h = h * block.norm.weight[:, None, None] + block.norm.bias[:, None, None]
    h = F.conv2d(h, block.fc1.weight[:, :, None, None], block.fc1.bias)
    h = F.conv2d(F.gelu(h), block.fc2.weight[:, :, None, None], block.fc2.bias)
    expected = x + block.gamma[:, None, None] * h
    torch.testing.assert_close(block(x), expected)


def test_convnext_block_starts_near_identity():
    block = ConvNeXtBlock(8)  # layer scale 1e-6
    x = torch.randn(2, 8, 6, 6)
    assert (block(x) - x).abs().max() < 1e-4


def test_bad_arguments():
    with pytest.raises(ValueError, match="growth"):
        DenseBlock(3, 0, 2)
    with pytest.raises(ValueError, match="channels"):
        ConvNeXtBlock(0)


def test_basic_block_count_for_the_chapter_comparison():
    # the chapter compares against ResNet's basic block: 18 C^2 conv weights + 4 C BN
    c = 32
    assert count_parameters(BasicBlock(c, c, 1, True, True)) == 18 * c * c + 4 * c
