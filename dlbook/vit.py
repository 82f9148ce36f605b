"""Vision transformers: patches as tokens (ViT), what they attend to, and Swin's
windows.

ViT (Dosovitskiy et al., 2021) cuts an image into P x P patches, maps each flattened
patch to a d_model vector with one shared matrix, prepends a learned class token, adds
learned position embeddings and runs chapter 6's pre-LN ``TransformerBlock`` stack; the
class token's final vector, after a layer norm, feeds a linear classifier. Tests check
``ViT`` against ``transformers.ViTForImageClassification`` with copied weights.

``attention_rollout`` follows Abnar and Zuidema (2020). ``WindowAttention`` is the
(shifted) window attention of Swin (Liu et al., 2021, section 3.2), without its relative
position bias; ``window_dense_mask`` gives the (HW, HW) mask under which global
attention computes the same thing, which the tests check."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dlbook.attention import MultiHeadAttention
from dlbook.config_checks import check_transformer_sizes
from dlbook.transformer import TransformerBlock
from dlbook.utils import check_int, check_positive_int, check_real


def _check_images(x: object, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(
            f"{name} must be images (B, C, H, W), got shape {tuple(x.shape)}"
        )


def patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into non-overlapping patches: (B, C, H, W) -> (B, N, C * P * P).

    Patches are numbered row by row (N = (H / P) * (W / P)); each is flattened in the
    order (channel, row, column), the order of a ``Conv2d`` weight's last three
    dimensions."""
    _check_images(x)
    check_positive_int(patch_size, "patch_size")
    B, C, H, W = x.shape
    if H % patch_size or W % patch_size:
        raise ValueError(
            f"image size ({H}, {W}) must be divisible by patch_size {patch_size}"
        )
    p = patch_size
    x = x.view(B, C, H // p, p, W // p, p)  # (B, C, rows, P, cols, P)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, rows, cols, C, P, P)
    return x.reshape(B, (H // p) * (W // p), C * p * p)  # (B, N, C P P)


class PatchEmbedding(nn.Module):
    """The linear map of every flattened P x P patch to d_model, stored as a stride-P
    convolution.

    ``forward`` uses the convolution; ``forward_matmul`` the same weights as one matrix
    applied to ``patchify``'s rows (Dosovitskiy et al., eq. 1: ``x_p E``). Both give (B,
    N, d_model)."""

    def __init__(self, in_channels: int, d_model: int, patch_size: int):
        super().__init__()
        for name, value in (
            ("in_channels", in_channels),
            ("d_model", d_model),
            ("patch_size", patch_size),
        ):
            check_positive_int(value, name)
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, d_model, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> patch vectors (B, N, d_model), by the strided
        convolution."""
        _check_images(x)
        return (
            self.proj(x).flatten(2).transpose(1, 2)
        )  # (B, d_model, rows, cols) -> (B, N, D)

    def forward_matmul(self, x: torch.Tensor) -> torch.Tensor:
        """The same map as a matrix product: ``patchify(x) @ E + b``."""
        E = self.proj.weight.flatten(1).T  # (C P P, d_model)
        return patchify(x, self.patch_size) @ E + self.proj.bias  # (B, N, d_model)


@dataclass(frozen=True)
class ViTConfig:
    """A ViT for 8x8 digits. ViT-Base (Dosovitskiy et al., table 1) has d_model 768, 12
    heads, 12 layers, d_ff 3072 and 16x16 patches of 224x224 images."""

    image_size: int = 8  # input height and width
    patch_size: int = 2  # side of a square patch: (8 / 2)^2 = 16 patch tokens
    in_channels: int = 1  # grey-scale images
    n_classes: int = 10  # digits 0-9
    d_model: int = 32  # width of every token vector
    n_heads: int = 4  # attention heads per block
    n_layers: int = 2  # Transformer blocks
    d_ff: int = 64  # hidden width of each block's MLP (the paper uses 4 d_model)
    dropout: float = 0.0  # residual dropout (the paper: 0.1 when training from scratch)
    layer_norm_eps: float = (
        1e-6  # epsilon of every layer norm (the paper's code uses 1e-6)
    )

    def __post_init__(self) -> None:
        sizes = ("image_size", "patch_size", "in_channels", "n_classes", "d_model")
        check_transformer_sizes(self, (*sizes, "n_heads", "n_layers", "d_ff"))
        check_real(self.dropout, "dropout", 0.0, 1.0, high_open=True)
        check_real(self.layer_norm_eps, "layer_norm_eps", 0.0, low_open=True)
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size must be divisible by patch_size, got "
                f"{self.image_size} and {self.patch_size}"
            )

    @property
    def n_patches(self) -> int:
        """Patch tokens per image, N = (image_size / patch_size)^2."""
        return (self.image_size // self.patch_size) ** 2


class ViT(nn.Module):
    """Patch embedding, class token, learned positions, pre-LN blocks, layer norm,
    linear head on the class token (Dosovitskiy et al., eqs. 1-4)."""

    def __init__(self, config: ViTConfig | None = None):
        super().__init__()
        config = ViTConfig() if config is None else config
        if not isinstance(config, ViTConfig):
            raise TypeError(
                f"config must be a ViTConfig or None, got {type(config).__name__}"
            )
        self.config = c = config
        self.patch_embed = PatchEmbedding(c.in_channels, c.d_model, c.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.d_model))  # x_class of eq. 1
        self.pos_embed = nn.Parameter(torch.randn(1, c.n_patches + 1, c.d_model) * 0.02)
        self.blocks = nn.ModuleList(
            TransformerBlock(c.d_model, c.n_heads, c.d_ff, c.dropout)
            for _ in range(c.n_layers)
        )
        self.ln = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.n_classes)
        for (
            module
        ) in self.modules():  # chapter 6's blocks use PyTorch's default epsilon
            if isinstance(module, nn.LayerNorm):
                module.eps = c.layer_norm_eps

    def tokens(
        self, x: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Images (B, C, H, W) -> final token vectors (B, 1 + N, d_model), after the
        last layer norm, and, when ``need_weights``, each block's attention weights (B,
        n_heads, 1+N, 1+N)."""
        _check_images(x)
        c = self.config
        if x.shape[1:] != (c.in_channels, c.image_size, c.image_size):
            raise ValueError(
                f"x must be (B, {c.in_channels}, {c.image_size}, {c.image_size}), "
                f"got {tuple(x.shape)}"
            )
        patches = self.patch_embed(x)  # (B, N, d_model)
        cls = self.cls_token.expand(len(x), -1, -1)  # (B, 1, d_model)
        h = torch.cat([cls, patches], dim=1) + self.pos_embed  # (B, 1 + N, d_model)
        maps = []
        for block in self.blocks:
            h, weights = block(h, need_weights=need_weights)
            maps.append(weights)
        return self.ln(h), maps if need_weights else []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> logits (B, n_classes), read from the class token."""
        return self.head(self.tokens(x)[0][:, 0])


def attention_rollout(maps: list[torch.Tensor], residual: bool = True) -> torch.Tensor:
    """Attention rollout (Abnar and Zuidema, 2020, section 3): how much each input token
    flows into each output token through all layers.

    Each layer's weights are averaged over heads; with ``residual`` the skip connection
    is added as ``0.5 A + 0.5 I`` (rows still sum to 1); the layers' matrices are
    multiplied, first layer rightmost: ``R = A_L ... A_2 A_1``.

    Args:
        maps: per layer, weights (B, n_heads, T, T), as ``ViT.tokens(x,
            need_weights=True)``.

    Returns:
        (B, T, T); row i is the share of every input token in output token i.
    """
    if not isinstance(maps, (list, tuple)) or not maps:
        raise ValueError("maps must be a non-empty list of (B, n_heads, T, T) tensors")
    for i, m in enumerate(maps):
        if (
            not isinstance(m, torch.Tensor)
            or m.dim() != 4
            or m.shape[-1] != m.shape[-2]
        ):
            raise ValueError(
                f"maps[{i}] must be (B, n_heads, T, T), got "
                f"{tuple(getattr(m, 'shape', ())) or type(m).__name__}"
            )
    T = maps[0].shape[-1]
    eye = torch.eye(T, dtype=maps[0].dtype, device=maps[0].device)
    rollout = eye.expand(maps[0].shape[0], T, T)
    for m in maps:
        a = m.mean(dim=1)  # (B, T, T): heads averaged
        if residual:
            a = 0.5 * a + 0.5 * eye
        rollout = a @ rollout  # this layer mixes what the earlier layers produced
    return rollout


# -- Swin: attention within windows, and shifted windows
# ---------------------------------------


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """Feature maps (B, H, W, C) -> windows (B * n_windows, window^2, C), windows row by
    row."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(
            f"x must be (B, H, W, C), got {tuple(getattr(x, 'shape', ()))}"
        )
    check_positive_int(window, "window")
    B, H, W, C = x.shape
    if H % window or W % window:
        raise ValueError(
            f"H and W must be divisible by window {window}, got ({H}, {W})"
        )
    x = x.view(
        B, H // window, window, W // window, window, C
    )  # (B, rows, M, cols, M, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, C)  # (B nW, M M, C)


def window_reverse(windows: torch.Tensor, window: int, H: int, W: int) -> torch.Tensor:
    """The inverse of ``window_partition``: (B * n_windows, window^2, C) -> (B, H, W,
    C)."""
    C = windows.shape[-1]
    x = windows.view(
        -1, H // window, W // window, window, window, C
    )  # (B, rows, cols, M, M, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, H, W, C)


def _region_labels(size: int, window: int, shift: int) -> torch.Tensor:
    """Swin's three bands along one axis of the cyclically shifted map: [0, size -
    window), [size - window, size - shift), [size - shift, size); tokens of different
    bands were not neighbours before the shift."""
    labels = torch.zeros(size, dtype=torch.long)
    if shift:
        labels[size - window : size - shift] = 1
        labels[size - shift :] = 2
    return labels


def _check_window(H: int, W: int, window: int, shift: int) -> None:
    for name, value in (("H", H), ("W", W), ("window", window)):
        check_positive_int(value, name)
    check_int(shift, "shift", minimum=0)
    if H % window or W % window or shift >= window:
        raise ValueError(
            f"need H and W divisible by window and 0 <= shift < window, got "
            f"H={H}, W={W}, window={window}, shift={shift}"
        )


def shifted_window_mask(H: int, W: int, window: int, shift: int) -> torch.Tensor:
    """The masks of the shifted windows (n_windows, window^2, window^2), True = may
    attend.

    After the map is rolled by ``-shift`` along both axes, a window at the bottom or
    right edge holds tokens from opposite sides of the image; only tokens of the same
    region may attend to each other (Liu et al., 2021, fig. 4). With ``shift = 0`` every
    mask is all True."""
    _check_window(H, W, window, shift)
    rows, cols = _region_labels(H, window, shift), _region_labels(W, window, shift)
    region = (rows[:, None] * 3 + cols[None, :]).view(1, H, W, 1)  # a label per token
    labels = window_partition(region, window).squeeze(-1)  # (nW, M M)
    return labels[:, :, None] == labels[:, None, :]  # (nW, M M, M M)


def window_dense_mask(H: int, W: int, window: int, shift: int = 0) -> torch.Tensor:
    """The (H W, H W) mask, tokens in row-major order, under which global attention
    equals (shifted) window attention: i may attend j when both fall in the same shifted
    window and the same region."""
    _check_window(H, W, window, shift)
    r = (torch.arange(H) - shift) % H  # row of each token after rolling by -shift
    c = (torch.arange(W) - shift) % W
    rr, cc = (
        r[:, None].expand(H, W).reshape(-1),
        c[None, :].expand(H, W).reshape(-1),
    )  # (HW,)
    win = (rr // window) * (W // window) + cc // window  # window of each token
    reg = (
        _region_labels(H, window, shift)[rr] * 3 + _region_labels(W, window, shift)[cc]
    )
    return (win[:, None] == win[None, :]) & (reg[:, None] == reg[None, :])  # (HW, HW)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping window x window squares of a
    feature map, optionally after a cyclic shift (W-MSA and SW-MSA of Swin, section
    3.2)."""

    def __init__(self, d_model: int, n_heads: int, window: int, shift: int = 0):
        super().__init__()
        check_positive_int(window, "window")
        check_int(shift, "shift", minimum=0)
        if shift >= window:
            raise ValueError(f"shift must be smaller than window {window}, got {shift}")
        self.window, self.shift = window, shift
        self.attn = MultiHeadAttention(d_model, n_heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map x (B, H, W, d_model) -> (B, H, W, d_model)."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ValueError(
                f"x must be (B, H, W, d_model), got {tuple(getattr(x, 'shape', ()))}"
            )
        B, H, W, _ = x.shape
        M, s = self.window, self.shift
        mask = shifted_window_mask(H, W, M, s).to(x.device)  # (nW, M M, M M)
        if s:
            x = torch.roll(
                x, shifts=(-s, -s), dims=(1, 2)
            )  # the cyclic shift of fig. 4
        windows = window_partition(x, M)  # (B nW, M M, d_model)
        mask = mask.repeat(B, 1, 1)[
            :, None
        ]  # (B nW, 1, M M, M M): the same for every image
        out, _ = self.attn(windows, windows, windows, mask)
        out = window_reverse(out, M, H, W)  # (B, H, W, d_model)
        return torch.roll(out, shifts=(s, s), dims=(1, 2)) if s else out


def attention_flops(H: int, W: int, d_model: int, window: int | None = None) -> int:
    """Multiply-adds of one multi-head self-attention over an H x W map (Liu et al.,
    eqs. 1-2): ``4 h w C^2 + 2 (h w)^2 C`` globally, ``4 h w C^2 + 2 M^2 h w C`` in M x
    M windows."""
    for name, value in (("H", H), ("W", W), ("d_model", d_model)):
        check_positive_int(value, name)
    n = H * W
    projections = 4 * n * d_model**2  # Q, K, V and output projections
    if window is None:
        return projections + 2 * n * n * d_model
    check_positive_int(window, "window")
    return projections + 2 * window**2 * n * d_model


# -- Inductive bias: ViT against chapter 4's ResNet
# -------------------------------------------


@dataclass(frozen=True)
class BiasRunConfig:
    """One cell of the ViT-against-ResNet grid. Both models see the same batches for the
    same number of steps (matched on steps and examples, not on FLOPs, which the chapter
    reports)."""

    model: str = "vit"  # "vit" or "resnet"
    n_train: int = (
        1079  # training images, as many of each digit as possible (1079: all)
    )
    augment: bool = (
        False  # random shifts of up to one pixel (``dlbook.cnn.RandomShift``)
    )
    seed: int = 0  # seeds the subset, the initialization and the batch order
    vit: ViTConfig = ViTConfig(d_model=32, n_layers=2, d_ff=64)  # about 18k parameters
    resnet_width: int = 16  # ``ResNetConfig(width=16)``: about 20k parameters
    steps: int = 300  # optimizer steps
    batch_size: int = 32
    lr: float = 5e-3  # AdamW; warm-up, then cosine decay to 10 percent

    def __post_init__(self) -> None:
        if self.model not in ("vit", "resnet"):
            raise ValueError(f"model must be 'vit' or 'resnet', got {self.model!r}")
        for name in ("n_train", "steps", "batch_size", "resnet_width"):
            check_positive_int(getattr(self, name), name)


def class_balanced_subset(
    dataset: torch.utils.data.TensorDataset, n: int, seed: int
) -> torch.utils.data.TensorDataset:
    """``n`` examples of ``dataset`` (x, y), as equal a number of each class as the data
    allow (all of them when n >= len(dataset)), drawn with ``seed``."""
    check_positive_int(n, "n")
    x, y = dataset.tensors
    if n >= len(y):
        return dataset
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=gen)
    rank = torch.empty_like(
        order
    )  # rank of each example within its class, in random order
    for c in y.unique():
        members = order[y[order] == c]
        rank[members] = torch.arange(len(members))
    keep = order[
        torch.argsort(rank[order], stable=True)[:n]
    ]  # round-robin over the classes
    return torch.utils.data.TensorDataset(x[keep], y[keep])


def build_bias_model(config: BiasRunConfig) -> nn.Module:
    """The model of one grid cell, with the augmentation layer in front when asked
    for."""
    from dlbook.cnn import RandomShift, ResNet, ResNetConfig

    model = (
        ViT(config.vit)
        if config.model == "vit"
        else ResNet(ResNetConfig(width=config.resnet_width))
    )
    return nn.Sequential(RandomShift(1), model) if config.augment else model


def bias_run(
    config: BiasRunConfig,
    data,
    device: torch.device | None = None,
    progress: bool = False,
) -> tuple[nn.Module, float]:
    """Train one grid cell with ``dlbook.train.train``; returns the model and its test
    accuracy.

    Args:
        data: ``dlbook.data.load_digits(as_images=True)``.
    """
    from dlbook.train import Schedule, TrainConfig, evaluate, train
    from dlbook.utils import set_seed

    if not isinstance(config, BiasRunConfig):
        raise TypeError(f"config must be a BiasRunConfig, got {type(config).__name__}")
    subset = class_balanced_subset(data.train, config.n_train, config.seed)
    set_seed(config.seed)
    model = build_bias_model(config)
    train_config = TrainConfig(
        steps=config.steps,
        batch_size=config.batch_size,
        lr=config.lr,
        schedule=Schedule(warmup_steps=config.steps // 10, min_ratio=0.1),
        optimizer="adamw",
        weight_decay=0.05,
        seed=config.seed,
        progress=progress,
    )
    train(model, subset, train_config, device=device)
    return model, evaluate(model, data.test)["accuracy"]


def position_similarity(model: ViT) -> torch.Tensor:
    """Cosine similarities (N, N) of the patches' learned position embeddings (the class
    token's left out), patches in row-major order."""
    if not isinstance(model, ViT):
        raise TypeError(f"model must be a ViT, got {type(model).__name__}")
    pos = nn.functional.normalize(
        model.pos_embed[0, 1:].detach(), dim=-1
    )  # (N, d_model)
    return pos @ pos.T


def near_far_similarity(
    similarity: torch.Tensor, near: int = 1, far: int = 4
) -> tuple[float, float]:
    """Mean similarity of grid patches at city-block distance ``near``, and at ``far``
    or more, from an (N, N) matrix over a square grid of N patches in row-major
    order."""
    side = round(similarity.shape[0] ** 0.5)
    if similarity.dim() != 2 or similarity.shape != (side * side, side * side):
        raise ValueError(
            f"similarity must be (N, N) with N a square, got {tuple(similarity.shape)}"
        )
    rows, cols = torch.arange(side * side) // side, torch.arange(side * side) % side
    dist = (rows[:, None] - rows[None, :]).abs() + (cols[:, None] - cols[None, :]).abs()
    return (
        similarity[dist == near].mean().item(),
        similarity[dist >= far].mean().item(),
    )
