"""dlbook.data: the digits split, the generated data sets and the IDX reader."""

import gzip
import math
import struct
import urllib.request

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook.data import (
    DigitsSplit,
    load_digits,
    load_idx,
    load_mnist,
    make_blobs,
    make_linear_data,
    make_rings,
    make_sine_data,
    parse_idx,
    stratified_split,
    to_polar,
)


def test_digits_split_sizes_types_and_ranges():
    split = load_digits()
    assert isinstance(split, DigitsSplit)
    sizes = [len(split.train), len(split.val), len(split.test)]
    assert sum(sizes) == 1797
    assert all(abs(s - f * 1797) <= 10 for s, f in zip(sizes, (0.6, 0.2, 0.2))), sizes
    for part in (split.train, split.val, split.test):
        x, y = part.tensors
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape == (len(y), 64)
        assert x.min() >= 0 and x.max() <= 1 and x.max() == 1
        assert set(y.tolist()) == set(range(10))


def test_digits_split_is_stratified_disjoint_and_fixed():
    split, again = load_digits(), load_digits()
    for a, b in zip((split.train, split.val, split.test), (again.train, again.val, again.test)):
        assert torch.equal(a.tensors[0], b.tensors[0]) and torch.equal(a.tensors[1], b.tensors[1])
    all_y = torch.cat([p.tensors[1] for p in (split.train, split.val, split.test)])
    overall = torch.bincount(all_y, minlength=10).double() / len(all_y)
    for part in (split.train, split.val, split.test):
        share = torch.bincount(part.tensors[1], minlength=10).double() / len(part)
        assert (share - overall).abs().max() < 0.01
    # no image appears in two parts (the data set has a handful of exact duplicates, so compare
    # the number of distinct rows with the sum of the parts' distinct rows)
    rows = [{tuple(r.tolist()) for r in p.tensors[0]} for p in (split.train, split.val, split.test)]
    assert len(rows[0] & rows[2]) <= 2 and len(rows[1] & rows[2]) <= 2


def test_digits_as_images_and_bad_argument():
    split, flat = load_digits(as_images=True), load_digits()
    x = split.test.tensors[0]
    assert x.shape == (len(split.test), 1, 8, 8)
    assert torch.equal(x.flatten(1), flat.test.tensors[0])
    with pytest.raises(TypeError, match="as_images must be a bool"):
        load_digits(as_images="yes")


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=5, max_size=200), st.integers(0, 2**31 - 1))
def test_stratified_split_is_a_partition_with_class_shares(labels, seed):
    labels = np.array(labels)
    train, val, test = stratified_split(labels, (0.6, 0.2, 0.2), seed=seed)
    together = np.concatenate([train, val, test])
    assert sorted(together.tolist()) == list(range(len(labels)))
    for c in np.unique(labels):
        n_c = int((labels == c).sum())
        assert abs(int((labels[val] == c).sum()) - 0.2 * n_c) <= 0.5 + 1e-9
        assert abs(int((labels[test] == c).sum()) - 0.2 * n_c) <= 0.5 + 1e-9


def test_stratified_split_rejects_bad_arguments():
    with pytest.raises(ValueError, match="non-empty 1-D"):
        stratified_split(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="summing to 1"):
        stratified_split([0, 1, 0, 1], (0.5, 0.5, 0.5))


def test_rings_are_separable_in_polar_coordinates_only():
    g = torch.Generator().manual_seed(0)
    x, y = make_rings(400, noise=0.0, generator=g)
    assert x.shape == (400, 2) and y.shape == (400,) and y.dtype == torch.int64
    assert (y == 0).sum() == 200
    r = to_polar(x)[:, 0]
    assert r[y == 0].max() <= 1.0 + 1e-6 and r[y == 1].min() >= 1.5 - 1e-6
    # in Cartesian coordinates the best least-squares linear classifier is near chance
    features = torch.cat([x, torch.ones(400, 1)], dim=1).double()
    w = torch.linalg.lstsq(features, 2 * y.double().unsqueeze(1) - 1).solution
    assert ((features @ w).squeeze(1) > 0).eq(y.bool()).float().mean() < 0.7


def test_rings_repeat_with_the_same_generator():
    a = make_rings(50, generator=torch.Generator().manual_seed(3))
    b = make_rings(50, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_to_polar_round_trip():
    x = torch.randn(100, 2, dtype=torch.float64)
    r, theta = to_polar(x).unbind(1)
    back = torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=1)
    torch.testing.assert_close(back, x)
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        to_polar(torch.zeros(3, 3))


def test_blobs_linear_and_sine_data():
    g = torch.Generator().manual_seed(0)
    x, y = make_blobs(300, [[0, 0], [5, 5], [0, 5]], std=0.5, generator=g)
    assert x.shape == (300, 2) and torch.bincount(y).tolist() == [100, 100, 100]
    torch.testing.assert_close(x[y == 1].mean(0), torch.tensor([5.0, 5.0]), atol=0.15, rtol=0)

    x, y = make_linear_data(500, [2.0, -1.0], bias=0.5, noise=0.01, generator=g)
    design = torch.cat([x, torch.ones(500, 1)], dim=1)
    coef = torch.linalg.lstsq(design, y.unsqueeze(1)).solution.squeeze(1)
    torch.testing.assert_close(coef, torch.tensor([2.0, -1.0, 0.5]), atol=0.01, rtol=0)

    x, y = make_sine_data(200, noise=0.0, generator=g)
    assert x.min() >= 0 and x.max() <= 1
    torch.testing.assert_close(y, torch.sin(2 * math.pi * x))
    x, y = make_sine_data(11, noise=0.1, generator=g, evenly_spaced=True)
    torch.testing.assert_close(x, torch.arange(11) / 10.0)
    assert 0 < (y - torch.sin(2 * math.pi * x)).abs().max() < 0.5


@pytest.mark.parametrize("call, error, match", [
    (lambda: make_rings(1), ValueError, "n must be an int >= 2"),
    (lambda: make_rings(10, noise=-1), ValueError, "noise must be >= 0"),
    (lambda: make_rings(10, generator=0), TypeError, "torch.Generator"),
    (lambda: make_blobs(10, [1.0, 2.0]), ValueError, r"shape \(K, D\)"),
    (lambda: make_blobs(10, [[0.0]], std=0), ValueError, "std must be > 0"),
    (lambda: make_linear_data(10, []), ValueError, "non-empty 1-D"),
    (lambda: make_sine_data(0), ValueError, "n must be a positive int"),
])
def test_generators_reject_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    """Encode an array as an IDX file, independently of the reader under test."""
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    big_endian = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    return header + array.astype(big_endian[code]).tobytes()


@pytest.mark.parametrize("code, dtype", [(0x08, np.uint8), (0x09, np.int8), (0x0B, np.int16),
                                         (0x0C, np.int32), (0x0D, np.float32), (0x0E, np.float64)])
def test_idx_round_trip_every_type(tmp_path, code, dtype):
    rng = np.random.default_rng(code)
    array = (rng.normal(size=(3, 4, 5)) * 50).astype(dtype)
    (tmp_path / "a.idx").write_bytes(idx_bytes(array, code))
    out = load_idx(tmp_path / "a.idx")
    assert out.shape == (3, 4, 5) and out.dtype == array.dtype
    np.testing.assert_array_equal(out, array)


def test_idx_reads_gzip_and_one_dimension(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    (tmp_path / "labels.gz").write_bytes(gzip.compress(idx_bytes(labels, 0x08)))
    np.testing.assert_array_equal(load_idx(tmp_path / "labels.gz"), labels)


@pytest.mark.parametrize("raw, match", [
    (b"", "two zero bytes"),
    (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "two zero bytes"),
    (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "unknown IDX type code 0x07"),
    (b"\x00\x00\x08\x03" + struct.pack(">I", 2), "truncated IDX header"),
    (b"\x00\x00\x08\x02" + struct.pack(">II", 2, 3) + bytes(5), "needs 6 bytes"),
    (b"\x00\x00\x08\x01" + struct.pack(">I", 2) + bytes(3), "needs 2 bytes"),
])
def test_idx_rejects_malformed_files(raw, match):
    with pytest.raises(ValueError, match=match):
        parse_idx(raw)


def test_load_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no IDX file"):
        load_idx(tmp_path / "nothing")


def write_fake_mnist(root, n_train=12, n_test=5, side=4):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, side, side)).astype(np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        (root / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images, 8)))
        (root / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(labels, 8))


def test_load_mnist_from_a_folder_without_network(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("load_mnist must not touch the network unless asked")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    write_fake_mnist(tmp_path)
    split = load_mnist(tmp_path, val_size=2)
    assert [len(split.train), len(split.val), len(split.test)] == [10, 2, 5]
    x, y = split.train.tensors
    assert x.shape == (10, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert 0 <= x.min() and x.max() <= 1
    images = load_mnist(tmp_path, as_images=True, val_size=0)
    assert images.train.tensors[0].shape == (12, 1, 4, 4) and len(images.val) == 0
    raw = load_idx(tmp_path / "train-images-idx3-ubyte.gz")
    torch.testing.assert_close(images.train.tensors[0][:, 0] * 255, torch.tensor(raw).float())


def test_load_mnist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_mnist(tmp_path)
    write_fake_mnist(tmp_path)
    with pytest.raises(ValueError, match="val_size must be smaller"):
        load_mnist(tmp_path, val_size=12)
    labels = np.zeros(3, dtype=np.uint8)  # 3 labels for 12 images
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(labels, 8))
    with pytest.raises(ValueError, match="train images must be"):
        load_mnist(tmp_path)
