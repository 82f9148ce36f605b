"""dlbook.convblocks against library references, with copied weights.

- DenseNet: MONAI's ``_DenseLayer``, ``_DenseBlock`` and ``_Transition``
  (``monai.networks.nets.densenet``, 2-D), which follow the DenseNet-BC layers of the
  authors' code: BN, ReLU, 1x1 convolution to ``bn_size * growth`` channels, BN, ReLU,
  3x3 convolution; transition BN, ReLU, 1x1 convolution, 2x2 average pooling. Compared in
  training mode (batch statistics and the running averages they update) and in
  evaluation mode.
- ConvNeXt: Hugging Face's ``ConvNextLayer`` (the ``Block`` of the paper's code), built
  from a small ``ConvNextConfig`` with random weights (no download), with stochastic depth
  off (``drop_path=0``; in evaluation mode it is the identity anyway).

Both libraries are test-only references (requirements.txt); the tests are skipped where
they are not installed.
"""

import pytest
import torch
from torch import nn

from dlbook.convblocks import (
    ConvNeXtBlock,
    DenseBlock,
    DenseLayer,
    LayerNorm2d,
    transition,
)

densenet = pytest.importorskip("monai.networks.nets.densenet")
modeling_convnext = pytest.importorskip("transformers.models.convnext.modeling_convnext")
transformers = pytest.importorskip("transformers")


def copy_state(src: nn.Module, dst: nn.Module) -> None:
    """Copy every parameter and buffer of ``src`` into ``dst``, matched by order (the
    two modules build the same layers in the same order under different names)."""
    src_items, dst_items = list(src.state_dict().items()), dst.state_dict()
    assert len(src_items) == len(dst_items), (len(src_items), len(dst_items))
    state = {}
    for (src_name, value), (dst_name, target) in zip(src_items, dst_items.items()):
        assert value.shape == target.shape, (src_name, dst_name)
        kinds = {src_name.rsplit(".", 1)[-1], dst_name.rsplit(".", 1)[-1]}
        assert len(kinds) == 1 or kinds == {"layer_scale_parameter", "gamma"}, kinds
        state[dst_name] = value.clone()
    dst.load_state_dict(state)


def randomize_norms(module: nn.Module, gen: torch.Generator) -> None:
    """Random BN gains, shifts and running statistics, so that every one matters."""
    with torch.no_grad():
        for bn in module.modules():
            if isinstance(bn, nn.BatchNorm2d):
                bn.weight.copy_(1 + 0.3 * torch.randn(bn.weight.shape, generator=gen))
                bn.bias.copy_(0.3 * torch.randn(bn.bias.shape, generator=gen))
                bn.running_mean.copy_(torch.randn(bn.running_mean.shape, generator=gen))
                bn.running_var.copy_(0.5 + torch.rand(bn.running_var.shape, generator=gen))


def compare_in_both_modes(ours, ref, x, out_of_ref=lambda y: y):
    """Outputs in training mode, the running statistics it updates, and outputs in
    evaluation mode, all to double-precision rounding."""
    for mode in (True, False):
        ours.train(mode), ref.train(mode)
        torch.testing.assert_close(ours(x), out_of_ref(ref(x)), rtol=1e-10, atol=1e-10)
        for (name, a), (_, b) in zip(ours.named_buffers(), ref.named_buffers()):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=name)


@pytest.mark.parametrize("c_in, growth, bn_size", [(5, 4, 4), (8, 3, 2)])
def test_dense_layer_matches_monai(c_in, growth, bn_size):
    gen = torch.Generator().manual_seed(c_in)
    torch.manual_seed(c_in)
    ref = densenet._DenseLayer(2, c_in, growth, bn_size, dropout_prob=0.0).double()
    ours = DenseLayer(c_in, growth, bottleneck=bn_size).double()
    randomize_norms(ref, gen)
    copy_state(ref, ours)
    x = torch.randn(4, c_in, 6, 5, dtype=torch.float64, generator=gen)
    # MONAI's layer returns [x, new]; ours returns the new channels, the block concatenates
    compare_in_both_modes(ours, ref, x, lambda y: y[:, c_in:])


def test_dense_block_matches_monai():
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    c_in, growth, n_layers = 6, 4, 3
    ref = densenet._DenseBlock(2, n_layers, c_in, 4, growth, dropout_prob=0.0).double()
    ours = DenseBlock(c_in, growth, n_layers, bottleneck=4).double()
    randomize_norms(ref, gen)
    copy_state(ref, ours)
    x = torch.randn(3, c_in, 7, 7, dtype=torch.float64, generator=gen)
    compare_in_both_modes(ours, ref, x)
    assert ours(x).shape == (3, c_in + n_layers * growth, 7, 7)


def test_transition_matches_monai():
    gen = torch.Generator().manual_seed(2)
    torch.manual_seed(2)
    ref = densenet._Transition(2, 12, 6).double()
    ours = transition(12, 6).double()
    randomize_norms(ref, gen)
    copy_state(ref, ours)
    x = torch.randn(3, 12, 8, 6, dtype=torch.float64, generator=gen)
    compare_in_both_modes(ours, ref, x)
    assert ours(x).shape == (3, 6, 4, 3)


@pytest.mark.parametrize("layer_scale", [1e-6, 0.7])
def test_convnext_block_matches_hugging_face(layer_scale):
    torch.manual_seed(3)
    dim = 12
    config = transformers.ConvNextConfig(
        hidden_act="gelu", layer_scale_init_value=layer_scale
    )
    ref = modeling_convnext.ConvNextLayer(config, dim, drop_path=0.0).double()
    ours = ConvNeXtBlock(dim, layer_scale=layer_scale).double()
    with torch.no_grad():  # gains, shifts and layer scale away from their initial values
        ref.layernorm.weight.normal_(1, 0.3)
        ref.layernorm.bias.normal_(0, 0.3)
        ref.layer_scale_parameter.mul_(torch.linspace(0.5, 2, dim, dtype=torch.float64))
    # the same initial layer scale, before the copy overwrites it
    assert torch.equal(ours.gamma, torch.full((dim,), layer_scale))
    copy_state(ref, ours)
    assert ours.norm.eps == ref.layernorm.eps == 1e-6
    x = torch.randn(2, dim, 9, 7, dtype=torch.float64)
    for mode in (True, False):  # no batch statistics, no dropout: both modes agree
        ours.train(mode), ref.train(mode)
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-10, atol=1e-10)
    if layer_scale == 0.7:  # the branch matters (at 1e-6 both are close to x anyway)
        assert (ours(x) - x).abs().max() > 0.1


def test_convnext_block_matches_hugging_face_in_float32():
    """The chapter's precision: agreement to ~1e-5 with random float32 weights."""
    torch.manual_seed(4)
    config = transformers.ConvNextConfig(hidden_act="gelu", layer_scale_init_value=1.0)
    ref = modeling_convnext.ConvNextLayer(config, 16, drop_path=0.0).eval()
    ours = ConvNeXtBlock(16, layer_scale=1.0).eval()
    copy_state(ref, ours)
    x = torch.randn(4, 16, 8, 8)
    with torch.no_grad():
        assert (ours(x) - ref(x)).abs().max() < 1e-5


@pytest.mark.parametrize("eps", [1e-6, 1e-5])
def test_layer_norm_2d_matches_hugging_face_channels_first(eps):
    """LayerNorm2d against transformers' channels-first ConvNeXt norm, which computes the
    mean and variance over the channel axis by hand: outputs and all gradients."""
    gen = torch.Generator().manual_seed(6)
    ours = LayerNorm2d(10, eps=eps).double()
    ref = modeling_convnext.ConvNextLayerNorm(
        10, eps=eps, data_format="channels_first"
    ).double()
    with torch.no_grad():  # gains and shifts away from 1 and 0
        ref.weight.copy_(torch.randn(10, dtype=torch.float64, generator=gen) * 0.3 + 1)
        ref.bias.copy_(torch.randn(10, dtype=torch.float64, generator=gen) * 0.3)
    copy_state(ref, ours)
    x = torch.randn(3, 10, 5, 4, dtype=torch.float64, generator=gen) * 2 + 0.5
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ours, y_ref = ours(x_ours), ref(x_ref)
    torch.testing.assert_close(y_ours, y_ref, rtol=1e-10, atol=1e-10)
    # each pixel's channels are normalized: zero mean and unit variance before the affine
    z = (y_ours - ours.bias.view(1, -1, 1, 1)) / ours.weight.view(1, -1, 1, 1)
    assert z.mean(1).abs().max() < 1e-10 and (z.var(1, unbiased=False) - 1).abs().max() < 1e-4
    upstream = torch.randn(y_ours.shape, dtype=torch.float64, generator=gen)
    (y_ours * upstream).sum().backward()
    (y_ref * upstream).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, rtol=1e-10, atol=1e-10)
    for name in ("weight", "bias"):
        torch.testing.assert_close(
            getattr(ours, name).grad, getattr(ref, name).grad, rtol=1e-10, atol=1e-10
        )
