"""Convolution, im2col and pooling on fixed lopsided cases (kernel, stride and padding all
different along height and width), against the defining sums written out index by index.

The hypothesis tests of ``tests/test_cnn.py`` draw random shapes; these cases are fixed, so a
mix-up of height and width fails on every run, as ``tools/mutate.py`` expects.
"""

import pytest
import torch
import torch.nn.functional as F

from dlbook.cnn import (
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

F64 = torch.float64
pytestmark = pytest.mark.usefixtures("one_thread")

# kernel (kh, kw), stride (sh, sw), padding (ph, pw), image (H, W)
CASE = dict(kernel=(2, 3), stride=(2, 1), padding=(0, 1), size=(5, 4))


def reference_conv(x, w, b, stride, padding):
    """y[b, o, i, j] = b[o] + sum_{c, u, v} x_pad[b, c, i s_h + u, j s_w + v] w[o, c, u, v]."""
    (sh, sw), (ph, pw) = stride, padding
    B, C, H, W = x.shape
    c_out, _, kh, kw = w.shape
    x_pad = torch.zeros(B, C, H + 2 * ph, W + 2 * pw, dtype=x.dtype)
    x_pad[:, :, ph:ph + H, pw:pw + W] = x
    out_h, out_w = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    y = torch.zeros(B, c_out, out_h, out_w, dtype=x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            for u in range(kh):
                for v in range(kw):
                    y[:, :, i, j] += x_pad[:, :, i * sh + u, j * sw + v] @ w[:, :, u, v].T
    return y + b.view(1, -1, 1, 1)


def _tensors(seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, *CASE["size"], generator=gen, dtype=F64)
    w = torch.randn(4, 3, *CASE["kernel"], generator=gen, dtype=F64)
    b = torch.randn(4, generator=gen, dtype=F64)
    return x, w, b


@pytest.mark.parametrize("conv", [conv2d_loops, conv2d_im2col])
def test_convolution_is_the_defining_sum(conv):
    x, w, b = _tensors()
    expected = reference_conv(x, w, b, CASE["stride"], CASE["padding"])
    torch.testing.assert_close(conv(x, w, b, CASE["stride"], CASE["padding"]), expected)
    # the other way round too: stride (1, 2), padding (1, 0), the kernel transposed
    xt, wt = x.transpose(2, 3).contiguous(), w.transpose(2, 3).contiguous()
    expected = reference_conv(xt, wt, b, (1, 2), (1, 0))
    torch.testing.assert_close(conv(xt, wt, b, (1, 2), (1, 0)), expected)


def test_output_size_formula():
    for n, k, s, p in ((5, 2, 2, 0), (4, 3, 1, 1), (7, 3, 2, 2), (8, 8, 3, 0)):
        assert conv_output_size(n, k, s, p) == (n + 2 * p - k) // s + 1


def test_im2col_and_col2im_by_index():
    (kh, kw), (sh, sw), (ph, pw) = CASE["kernel"], CASE["stride"], CASE["padding"]
    x, _, _ = _tensors()
    H, W = CASE["size"]
    cols = im2col(x, (kh, kw), (sh, sw), (ph, pw))
    out_h, out_w = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    x_pad = F.pad(x, (pw, pw, ph, ph))
    for c in range(x.shape[1]):
        for u in range(kh):
            for v in range(kw):
                row = (c * kh + u) * kw + v
                for i in range(out_h):
                    for j in range(out_w):
                        assert cols[:, row, i * out_w + j].equal(
                            x_pad[:, c, i * sh + u, j * sw + v])
    # col2im of all-ones columns counts how many windows cover each pixel
    ones = torch.ones_like(cols)
    counts = torch.zeros(H + 2 * ph, W + 2 * pw, dtype=F64)
    for i in range(out_h):
        for j in range(out_w):
            counts[i * sh:i * sh + kh, j * sw:j * sw + kw] += 1
    back = col2im(ones, (H, W), (kh, kw), (sh, sw), (ph, pw))
    torch.testing.assert_close(back, counts[ph:ph + H, pw:pw + W].expand_as(x))


def test_backward_sums_over_the_batch():
    """dL/dw and dL/db of L = sum(y * g) are sums over every example and position."""
    x, w, b = _tensors(1)
    stride, padding = CASE["stride"], CASE["padding"]
    y = reference_conv(x, w, b, stride, padding)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(2), dtype=F64)
    _, grad_w, grad_b = conv2d_backward(g, x, w, stride, padding)
    torch.testing.assert_close(grad_b, g.sum(dim=(0, 2, 3)))
    x_pad = F.pad(x, (padding[1], padding[1], padding[0], padding[0]))
    expected = torch.zeros_like(w)
    for i in range(y.shape[2]):
        for j in range(y.shape[3]):
            patch = x_pad[:, :, i * stride[0]:i * stride[0] + w.shape[2],
                          j * stride[1]:j * stride[1] + w.shape[3]]
            expected += torch.einsum("bo,bcuv->ocuv", g[:, :, i, j], patch)
    torch.testing.assert_close(grad_w, expected)


def test_pooling_with_padding_on_negative_inputs():
    """Max pooling never picks the padding, even when every input is negative; average pooling
    counts the padded zeros."""
    x = -1 - torch.rand(1, 2, 4, 5, generator=torch.Generator().manual_seed(0), dtype=F64)
    torch.testing.assert_close(max_pool2d(x, (2, 3), (2, 2), (1, 1)),
                               F.max_pool2d(x, (2, 3), (2, 2), (1, 1)))
    assert bool((max_pool2d(x, 2, padding=1) < 0).all())
    torch.testing.assert_close(avg_pool2d(x, (2, 3), (2, 2), (1, 1)),
                               F.avg_pool2d(x, (2, 3), (2, 2), (1, 1)))


def test_shift_images_moves_rows_and_columns_independently():
    x = torch.arange(20, dtype=F64).reshape(1, 1, 4, 5)
    for dy, dx in ((1, -2), (-1, 2), (2, 0), (0, -3), (-3, 1)):
        shifted = shift_images(x, dy, dx)
        for r in range(4):
            for c in range(5):
                src_r, src_c = r - dy, c - dx
                inside = 0 <= src_r < 4 and 0 <= src_c < 5
                assert shifted[0, 0, r, c].item() == (x[0, 0, src_r, src_c].item()
                                                      if inside else 0.0)
