"""dlbook.convblocks' small networks (chapter 4's comparison) and the dense-block diagram:
shapes, parameter counts, config checks, and an overfit-one-batch test per network."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from dlbook.cnn import ResNet  # noqa: E402
from dlbook.convblocks import (  # noqa: E402
    ConvNeXt,
    ConvNeXtConfig,
    DenseLayer,
    DenseNet,
    DenseNetConfig,
    LayerNorm2d,
    dense_block_parameters,
)
from dlbook.utils import count_parameters  # noqa: E402


@pytest.mark.parametrize("make", [DenseNet, ConvNeXt])
def test_networks_map_digits_to_logits(make):
    assert make()(torch.randn(3, 1, 8, 8)).shape == (3, 10)


def test_default_networks_match_the_resnet_in_parameters():
    counts = [count_parameters(m()) for m in (ResNet, DenseNet, ConvNeXt)]
    assert max(counts) < 1.05 * min(counts), counts


def test_densenet_parameters_by_formula():
    config = DenseNetConfig(stem=8, growth=4, layers_per_block=(2, 3), compression=0.5)
    c1 = 8 + 2 * 4  # after the first block
    c2 = c1 // 2  # after the transition
    expected = (
        9 * 8 + 8  # stem convolution with bias
        + dense_block_parameters(8, 4, 2)
        + 2 * c1 + c1 * c2  # transition: BN and a bias-free 1x1 convolution
        + dense_block_parameters(c2, 4, 3)
        + 2 * (c2 + 12)  # final BN
        + (c2 + 12) * 10 + 10  # classifier
    )
    assert count_parameters(DenseNet(config)) == expected


def test_bottleneck_layer_shape_and_count():
    layer = DenseLayer(10, 3, bottleneck=4)
    assert layer(torch.randn(2, 10, 5, 5)).shape == (2, 3, 5, 5)
    # BN(10), 1x1 10 -> 12, BN(12), 3x3 12 -> 3
    assert count_parameters(layer) == 20 + 120 + 24 + 9 * 12 * 3


def test_layer_norm_2d_normalizes_each_pixel_over_channels():
    x = 3 * torch.randn(2, 5, 4, 4) + 1
    y = LayerNorm2d(5)(x)
    torch.testing.assert_close(y.mean(1), torch.zeros(2, 4, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(1, unbiased=False), torch.ones(2, 4, 4),
                               atol=1e-3, rtol=0)  # fmt: skip


@pytest.mark.parametrize("make", [DenseNet, ConvNeXt])
def test_each_network_overfits_one_batch(make):
    torch.manual_seed(0)
    model = make()
    x, y = torch.rand(16, 1, 8, 8), torch.arange(16) % 10
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05, loss.item()


def test_bad_configs():
    with pytest.raises(ValueError, match="compression"):
        DenseNetConfig(compression=0.0)
    with pytest.raises(ValueError, match="growth"):
        DenseNetConfig(growth=0)
    with pytest.raises(ValueError, match="blocks_per_stage"):
        ConvNeXtConfig(blocks_per_stage=(1, 0))
    with pytest.raises(ValueError, match="bottleneck"):
        DenseLayer(4, 2, bottleneck=0)


@pytest.mark.parametrize("n_layers", [1, 3, 4])
def test_dense_block_diagram_joins_every_earlier_map_once(n_layers):
    from dlbook.diagrams import dense_block

    fig, ax = plt.subplots()
    dense_block(ax, n_layers=n_layers)
    # one junction dot where lane j meets the riser of each later layer: L (L + 1) / 2
    dots = sum(len(line.get_xdata()) for line in ax.lines if line.get_marker() == "o")
    assert dots == n_layers * (n_layers + 1) // 2
    # every lane is a polyline that turns once; none passes through a box
    boxes = [p.get_extents() for p in ax.patches]
    for line in ax.lines:
        if line.get_marker() == "o":
            continue
        xy = ax.transData.transform(line.get_xydata())
        for (x0, y0), (x1, y1) in zip(xy[:-1], xy[1:]):
            for t in torch.linspace(0.1, 0.9, 17).tolist():  # away from the ends
                point = (x0 + t * (x1 - x0), y0 + t * (y1 - y0))
                assert not any(b.contains(*point) for b in boxes), point
    plt.close(fig)
