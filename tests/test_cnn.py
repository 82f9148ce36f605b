"""Tests for dlbook.cnn: convolution and pooling from scratch against torch.nn.functional in
float64 (values and gradients), im2col/col2im, shifts, and the three digit networks."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook.cnn import (
    LeNet,
    LeNetConfig,
    RandomShift,
    ResNet,
    ResNetConfig,
    avg_pool2d,
    col2im,
    conv2d_backward,
    conv2d_im2col,
    conv2d_loops,
    conv_output_size,
    im2col,
    max_pool2d,
    shift_images,
)

DOUBLE = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


@st.composite
def conv_cases(draw):
    """Shapes, stride and padding of a valid convolution, and a seed for its tensors."""
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    size = [max(1, k - 2 * p) + draw(st.integers(0, 6)) for k, p in zip(kernel, padding)]
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), *size)
    c_out = draw(st.integers(1, 3))
    return shape, c_out, kernel, stride, padding, draw(st.integers(0, 2**16))


def random_conv(shape, c_out, kernel, seed):
    """x, weight and bias in float64, requiring gradients."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, dtype=DOUBLE, generator=gen, requires_grad=True)
    w = torch.randn(c_out, shape[1], *kernel, dtype=DOUBLE, generator=gen, requires_grad=True)
    b = torch.randn(c_out, dtype=DOUBLE, generator=gen, requires_grad=True)
    return x, w, b


def values_and_grads(fn, tensors, seed):
    """fn(*tensors) and the gradients of a random linear function of it."""
    out = fn(*tensors)
    probe = torch.randn(out.shape, dtype=DOUBLE, generator=torch.Generator().manual_seed(seed))
    grads = torch.autograd.grad((out * probe).sum(), tensors)
    return out.detach(), grads


@pytest.mark.parametrize("conv", [conv2d_loops, conv2d_im2col])
@settings(max_examples=25, deadline=None)
@given(case=conv_cases())
def test_conv2d_matches_torch(conv, case):
    shape, c_out, kernel, stride, padding, seed = case
    tensors = random_conv(shape, c_out, kernel, seed)
    ours, our_grads = values_and_grads(lambda *t: conv(*t, stride, padding), tensors, seed)
    ref, ref_grads = values_and_grads(lambda *t: F.conv2d(*t, stride, padding), tensors, seed)
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
    for mine, theirs in zip(our_grads, ref_grads):
        torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-10)


def test_conv2d_without_bias_and_output_size():
    x, w, _ = random_conv((2, 3, 9, 7), 4, (3, 2), seed=0)
    for conv in (conv2d_loops, conv2d_im2col):
        y = conv(x, w, stride=2, padding=1)
        torch.testing.assert_close(y, F.conv2d(x, w, stride=2, padding=1))
        assert y.shape == (2, 4, conv_output_size(9, 3, 2, 1), conv_output_size(7, 2, 2, 1))
    assert conv_output_size(8, 3, 1, 1) == 8 and conv_output_size(8, 2, 2, 0) == 4


def test_conv2d_backward_against_finite_differences():
    x, w, b = random_conv((2, 2, 5, 4), 3, (3, 2), seed=1)
    assert torch.autograd.gradcheck(lambda *t: conv2d_im2col(*t, (2, 1), (1, 0)), (x, w, b))


def test_conv2d_backward_function_equals_autograd():
    x, w, b = random_conv((3, 2, 6, 5), 4, (3, 3), seed=2)
    y = F.conv2d(x, w, b, stride=2, padding=1)
    grad_y = torch.randn_like(y)
    expected = torch.autograd.grad(y, (x, w, b), grad_y)
    got = conv2d_backward(grad_y, x.detach(), w.detach(), stride=2, padding=1)
    for mine, theirs in zip(got, expected):
        torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(case=conv_cases())
def test_im2col_col2im_match_unfold_fold_and_are_adjoint(case):
    shape, _, kernel, stride, padding, seed = case
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, dtype=DOUBLE, generator=gen)
    cols = im2col(x, kernel, stride, padding)
    torch.testing.assert_close(cols, F.unfold(x, kernel, padding=padding, stride=stride))
    c = torch.randn(cols.shape, dtype=DOUBLE, generator=gen)
    back = col2im(c, shape[2:], kernel, stride, padding)
    expected = F.fold(c, shape[2:], kernel, padding=padding, stride=stride)
    torch.testing.assert_close(back, expected)
    # <im2col(x), c> = <x, col2im(c)>: col2im is the transpose of the linear map im2col
    torch.testing.assert_close((cols * c).sum(), (x * back).sum())


@st.composite
def pool_cases(draw):
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    size = [max(1, k - 2 * p) + draw(st.integers(0, 6)) for k, p in zip(kernel, padding)]
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), *size)
    return shape, kernel, stride, padding, draw(st.integers(0, 2**16))


@pytest.mark.parametrize("ours, theirs", [(max_pool2d, F.max_pool2d), (avg_pool2d, F.avg_pool2d)])
@settings(max_examples=25, deadline=None)
@given(case=pool_cases())
def test_pooling_matches_torch(ours, theirs, case):
    shape, kernel, stride, padding, seed = case
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, dtype=DOUBLE, generator=gen),)
    x[0].requires_grad_(True)
    mine, my_grads = values_and_grads(lambda t: ours(t, kernel, stride, padding), x, seed)
    ref, ref_grads = values_and_grads(lambda t: theirs(t, kernel, stride, padding), x, seed)
    torch.testing.assert_close(mine, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(my_grads[0], ref_grads[0], rtol=1e-12, atol=1e-12)


def test_bad_inputs_raise_clear_errors():
    x, w, b = torch.zeros(2, 3, 8, 8), torch.zeros(4, 3, 3, 3), torch.zeros(4)
    for conv in (conv2d_loops, conv2d_im2col):
        with pytest.raises(ValueError, match=r"x must have shape \(B, C, H, W\), got \(3, 8\)"):
            conv(torch.zeros(3, 8), w)
        with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
            conv([[1.0]], w)
        with pytest.raises(ValueError, match=r"weight must have shape \(C_out, C_in, kH, kW\)"):
            conv(x, torch.zeros(4, 3, 3))
        with pytest.raises(ValueError, match="x has 3 channels, but weight .* expects 2"):
            conv(x, torch.zeros(4, 2, 3, 3))
        with pytest.raises(ValueError, match=r"bias must have shape \(4,\), got \(3,\)"):
            conv(x, w, torch.zeros(3))
        with pytest.raises(TypeError, match="same dtype"):
            conv(x.double(), w, b)
        with pytest.raises(ValueError, match="stride must be a positive int, got 0"):
            conv(x, w, b, stride=0)
        with pytest.raises(ValueError, match="padding must be an int >= 0, got -1"):
            conv(x, w, b, padding=-1)
        with pytest.raises(TypeError, match="stride must be a positive int, got float"):
            conv(x, w, b, stride=1.5)
        with pytest.raises(ValueError, match="kernel size 9 is larger than the padded input"):
            conv(x, torch.zeros(4, 3, 9, 9))
    with pytest.raises(ValueError, match="padding must be at most half the kernel size"):
        max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match=r"x must have shape \(B, C, H, W\)"):
        avg_pool2d(torch.zeros(8, 8), 2)
    with pytest.raises(ValueError, match=r"cols must have shape \(B, C\*3\*3, 64\)"):
        col2im(torch.zeros(2, 10, 64), (8, 8), 3, padding=1)
    with pytest.raises(ValueError, match="shift .* must be smaller than the image size"):
        shift_images(x, 8, 0)
    with pytest.raises(ValueError, match="max_shift must be an int >= 0"):
        RandomShift(-1)


def test_convolution_is_translation_equivariant():
    x, w, _ = random_conv((2, 1, 8, 8), 3, (3, 3), seed=3)
    x = x.detach()
    x[:, :, -2:, :] = 0  # nothing is lost off the bottom and the right edge when shifting
    x[:, :, :, -1:] = 0
    for conv in (conv2d_loops, conv2d_im2col):
        shifted_then_conv = conv(shift_images(x, 2, 1), w.detach(), padding=1)
        conv_then_shifted = shift_images(conv(x, w.detach(), padding=1), 2, 1)
        # equal away from the zero-filled border that the shift brings in
        torch.testing.assert_close(shifted_then_conv[:, :, 3:, 2:], conv_then_shifted[:, :, 3:, 2:])


def test_shifts():
    x = torch.arange(2 * 16, dtype=DOUBLE).reshape(2, 1, 4, 4)
    torch.testing.assert_close(shift_images(shift_images(x, 1, -2), -1, 2)[:, :, :3, 2:],
                               x[:, :, :3, 2:])  # fmt: skip
    assert shift_images(x, 0, 0).equal(x) and shift_images(x, 1, 0)[:, :, 0].eq(0).all()
    layer = RandomShift(1)
    assert layer.eval()(x).equal(x)
    torch.manual_seed(0)
    x = torch.rand(64, 2, 5, 5, dtype=DOUBLE)
    out, seen = layer.train()(x), set()
    for image, result in zip(x, out):
        matches = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                   if shift_images(image[None], dy, dx)[0].equal(result)]  # fmt: skip
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) == 9  # every shift occurs in 64 draws (fails with probability < 1e-3)


def overfit(model, steps=100, lr=1e-2):
    """Train on one fixed batch of 32 random 8x8 images with random labels; return the accuracy."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(32, 1, 8, 8, generator=gen), torch.randint(0, 10, (32,), generator=gen)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item(), loss.item()


@pytest.mark.parametrize(
    "make",
    [
        lambda: LeNet(),
        lambda: ResNet(ResNetConfig(width=8, blocks_per_stage=(1, 1))),
        lambda: ResNet(ResNetConfig(width=8, blocks_per_stage=(1, 1), batch_norm=False)),
        lambda: ResNet(ResNetConfig(width=8, blocks_per_stage=(1, 1), residual=False)),
    ],
    ids=["lenet", "resnet", "resnet-no-bn", "plain"],
)
def test_models_overfit_one_batch(make):
    torch.manual_seed(0)
    model = make()
    assert model(torch.zeros(5, 1, 8, 8)).shape == (5, 10)
    accuracy, loss = overfit(model)
    assert accuracy == 1.0 and loss < 0.1, (accuracy, loss)


def test_model_configs():
    config = ResNetConfig(blocks_per_stage=(3, 2))
    assert config.depth == 12
    convs = [m for m in ResNet(config).modules() if isinstance(m, torch.nn.Conv2d)]
    assert sum(m.kernel_size == (3, 3) for m in convs) == config.depth - 1
    plain = ResNet(dataclasses.replace(config, residual=False))
    assert all(m.kernel_size == (3, 3) for m in plain.modules() if isinstance(m, torch.nn.Conv2d))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.width = 8
    with pytest.raises(ValueError, match="blocks_per_stage must be a non-empty tuple"):
        ResNet(ResNetConfig(blocks_per_stage=()))
    with pytest.raises(ValueError, match="image_size must be divisible by 4"):
        LeNet(LeNetConfig(image_size=6))
    lenet = LeNet(LeNetConfig(in_channels=3, image_size=12))
    assert lenet(torch.zeros(2, 3, 12, 12)).shape == (2, 10)
