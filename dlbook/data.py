"""Data for the book: the 8x8 digits that scikit-learn ships, small generated data sets,
and a reader for MNIST's IDX files.

Nothing here downloads at run time, except ``load_mnist(..., download=True)``, which a
reader calls on purpose (for example in Colab). Generated data sets take a
``torch.Generator`` so that every draw can be repeated; all tensors are returned on the
CPU, and the training loop moves them.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch
from torch.utils.data import TensorDataset

from dlbook.utils import check_positive_int, check_real

PathLike = Union[str, Path]


@dataclass(frozen=True)
class DigitsSplit:
    """A data set split three ways; each part is a ``TensorDataset`` of ``(x, y)``."""

    train: TensorDataset  # fit the parameters on this
    val: TensorDataset  # choose hyperparameters and when to stop on this
    test: TensorDataset  # report the final number on this, once


def _check_generator(generator: torch.Generator | None) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got "
            f"{type(generator).__name__}"
        )


def stratified_split(
    labels: Sequence[int] | np.ndarray,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split indices into train/validation/test so that every class keeps its
    proportions.

    Args:
        labels: the class of each example, shape (N,).
        fractions: the shares of (train, val, test); they must sum to 1.
        seed: seeds NumPy's legacy ``RandomState``, whose stream is frozen across NumPy
            versions, so the split is the same on every machine.

    Returns:
        Three sorted int64 index arrays that together cover ``range(N)`` exactly once.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(
            f"labels must be a non-empty 1-D array, got shape {labels.shape}"
        )
    if (
        len(fractions) != 3
        or min(fractions) < 0
        or not math.isclose(sum(fractions), 1.0)
    ):
        raise ValueError(
            f"fractions must be three non-negative shares summing to 1, got {fractions}"
        )
    rng = np.random.RandomState(seed)
    parts: tuple[list, list, list] = ([], [], [])
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_val = int(round(fractions[1] * len(members)))
        n_test = int(round(fractions[2] * len(members)))
        n_train = len(members) - n_val - n_test
        parts[0].append(members[:n_train])
        parts[1].append(members[n_train : n_train + n_val])
        parts[2].append(members[n_train + n_val :])
    return tuple(np.sort(np.concatenate(p)).astype(np.int64) for p in parts)


def load_digits(as_images: bool = False) -> DigitsSplit:
    """scikit-learn's 1,797 handwritten digits (8x8 pixels, 16 grey levels), split
    60/20/20.

    The split is stratified by class and fixed (seed 0), so every chapter and every
    machine sees the same test set. ``x`` is float32 in [0, 1] with shape (N, 64), or
    (N, 1, 8, 8) when ``as_images`` is true; ``y`` is int64 in 0..9.
    """
    if not isinstance(as_images, bool):
        raise TypeError(f"as_images must be a bool, got {type(as_images).__name__}")
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    # (N, 64), pixels were 0..16
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    if as_images:
        x = x.view(-1, 1, 8, 8)  # (N, C, H, W)
    y = torch.tensor(digits.target, dtype=torch.int64)
    parts = stratified_split(digits.target)
    return DigitsSplit(*(TensorDataset(x[idx], y[idx]) for idx in parts))


def make_rings(
    n: int, noise: float = 0.1, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes that no line separates: a disc of radius 1 (class 0) inside a ring of
    radius 1.5 to 2.5 (class 1). In polar coordinates ``(r, theta)`` the line
    ``r = 1.25`` separates them.

    Returns ``x`` of shape (n, 2), float32, and ``y`` of shape (n,), int64 (half of each
    class, rounded down for class 0). ``noise`` is the std of Gaussian noise added to
    the radius.
    """
    check_positive_int(n, "n", minimum=2)
    _check_generator(generator)
    check_real(noise, "noise", 0.0)
    y = (torch.arange(n) >= n // 2).long()
    # sqrt of a uniform draw spreads points evenly over the area of the disc
    inner = torch.sqrt(torch.rand(n, generator=generator))
    outer = 1.5 + torch.rand(n, generator=generator)
    r = torch.where(y == 0, inner, outer) + noise * torch.randn(n, generator=generator)
    theta = 2 * math.pi * torch.rand(n, generator=generator)
    x = torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=1)  # (n, 2)
    return x, y


def to_polar(x: torch.Tensor) -> torch.Tensor:
    """Map points ``(x1, x2)`` of shape (n, 2) to polar coordinates ``(r, theta)``,
    theta in (-pi, pi]."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must have shape (n, 2), got {shape}")
    return torch.stack([x.norm(dim=1), torch.atan2(x[:, 1], x[:, 0])], dim=1)  # (n, 2)


def make_blobs(
    n: int,
    centers: Sequence[Sequence[float]],
    std: float = 1.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian clusters, one class per center, with (nearly) equal counts.

    Args:
        n: total number of points.
        centers: K centers of dimension D, shape (K, D).
        std: standard deviation of each coordinate around its center.

    Returns ``x`` (n, D) float32 and ``y`` (n,) int64 in 0..K-1.
    """
    check_positive_int(n, "n")
    _check_generator(generator)
    c = torch.as_tensor(centers, dtype=torch.float32)
    if c.dim() != 2 or c.shape[0] < 1 or c.shape[1] < 1:
        raise ValueError(f"centers must have shape (K, D), got {tuple(c.shape)}")
    check_real(std, "std", 0.0, low_open=True)
    y = torch.arange(n) % c.shape[0]
    x = c[y] + std * torch.randn(n, c.shape[1], generator=generator)
    return x, y


def make_linear_data(
    n: int,
    weight: Sequence[float],
    bias: float = 0.0,
    noise: float = 0.1,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Regression data from a known line: ``y = x w + b + noise``, ``x`` standard
    normal.

    Returns ``x`` (n, D) and ``y`` (n,), both float32, where D is ``len(weight)``.
    """
    check_positive_int(n, "n")
    _check_generator(generator)
    w = torch.as_tensor(weight, dtype=torch.float32)
    if w.dim() != 1 or len(w) == 0:
        raise ValueError(
            f"weight must be a non-empty 1-D sequence, got shape {tuple(w.shape)}"
        )
    check_real(bias, "bias")
    check_real(noise, "noise", 0.0)
    x = torch.randn(n, len(w), generator=generator)
    y = x @ w + bias + noise * torch.randn(n, generator=generator)
    return x, y


def make_sine_data(
    n: int,
    noise: float = 0.2,
    generator: torch.Generator | None = None,
    evenly_spaced: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy samples of ``sin(2 pi x)`` for ``x`` in [0, 1], the small regression
    problem Bishop (2006, section 1.1) uses to study over- and underfitting.

    ``x`` is drawn uniformly, or is the grid ``linspace(0, 1, n)`` when
    ``evenly_spaced``. Returns ``x`` and ``y``, each (n,) float32.
    """
    check_positive_int(n, "n")
    _check_generator(generator)
    check_real(noise, "noise", 0.0)
    x = torch.linspace(0, 1, n) if evenly_spaced else torch.rand(n, generator=generator)
    return x, torch.sin(2 * math.pi * x) + noise * torch.randn(n, generator=generator)


# IDX: a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
# one big-endian uint32 per dimension, then the values in row-major order, big-endian.
IDX_DTYPES = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def parse_idx(raw: bytes) -> np.ndarray:
    """Decode the bytes of an IDX file into an array of the shape its header names."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"not an IDX file: the magic number must start with two zero "
            f"bytes, "
            f"got {raw[:4].hex() or 'an empty file'}"
        )
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        valid = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(f"unknown IDX type code 0x{code:02X}; valid codes are {valid}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"truncated IDX header: {ndim} dimensions need {header} "
            f"bytes, "
            f"the file has {len(raw)}"
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[code])
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"IDX data of shape {shape} and type {dtype.str} needs "
            f"{expected} bytes, "
            f"the file has {len(raw) - header} after its header"
        )
    values = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))  # native byte order, a writable copy


def load_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (MNIST's format), plain or gzip-compressed, into a NumPy
    array."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no IDX file at {path}")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # the gzip magic number
        raw = gzip.decompress(raw)
    return parse_idx(raw)


MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
MNIST_FILES = {  # name -> MD5 of the .gz file
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}


def download_mnist(root: PathLike) -> None:
    """Download the four MNIST files that are missing from ``root`` and check their MD5
    sums."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for name, md5 in MNIST_FILES.items():
        target = root / f"{name}.gz"
        if target.exists() or (root / name).exists():
            continue
        errors = []
        for mirror in MNIST_MIRRORS:
            try:
                with urllib.request.urlopen(
                    mirror + target.name, timeout=60
                ) as response:
                    raw = response.read()
            except OSError as error:
                errors.append(f"{mirror}: {error}")
                continue
            if hashlib.md5(raw).hexdigest() != md5:
                errors.append(f"{mirror}: MD5 mismatch")
                continue
            target.write_bytes(raw)
            break
        else:
            raise OSError(f"could not download {target.name}: " + "; ".join(errors))


def _find_mnist_file(root: Path, name: str) -> Path:
    for candidate in (
        root / name,
        root / f"{name}.gz",
        root / name.replace("-idx", ".idx"),
    ):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{name} (or {name}.gz) not found in {root}; put MNIST's "
        f"four files "
        f"there or call load_mnist(root, download=True)"
    )


def load_mnist(
    root: PathLike,
    download: bool = False,
    as_images: bool = False,
    val_size: int = 10_000,
) -> DigitsSplit:
    """MNIST from its four IDX files in ``root``: 60,000 training and 10,000 test
    digits, 28x28.

    The last ``val_size`` training images become the validation set. ``x`` is float32 in
    [0, 1], shape (N, 784) or (N, 1, 28, 28) when ``as_images``; ``y`` is int64. Files
    are downloaded only when ``download`` is true and they are missing.
    """
    root = Path(root)
    if download:
        download_mnist(root)
    arrays = {name: load_idx(_find_mnist_file(root, name)) for name in MNIST_FILES}
    sets = []
    for prefix in ("train", "t10k"):
        images = arrays[f"{prefix}-images-idx3-ubyte"]
        labels = arrays[f"{prefix}-labels-idx1-ubyte"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"{prefix} images must be (N, H, W) and labels (N,), got "
                f"{images.shape} and {labels.shape}"
            )
        x = torch.tensor(images, dtype=torch.float32) / 255.0  # (N, H, W)
        x = x.unsqueeze(1) if as_images else x.flatten(1)  # (N, 1, H, W) or (N, H * W)
        sets.append((x, torch.tensor(labels, dtype=torch.int64)))
    (x, y), test = sets
    check_positive_int(val_size, "val_size", minimum=0)
    if val_size >= len(x):
        raise ValueError(
            f"val_size must be smaller than the {len(x)} training images, got "
            f"{val_size}"
        )
    cut = len(x) - val_size
    return DigitsSplit(
        TensorDataset(x[:cut], y[:cut]),
        TensorDataset(x[cut:], y[cut:]),
        TensorDataset(*test),
    )
