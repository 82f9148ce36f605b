"""Contrastive learning on the digits: SimCLR's augmentations, the NT-Xent loss, linear
probes.

Chen et al. (2020) learn features without labels: two random augmentations of one image
should map to nearby unit vectors, and views of different images to distant ones. The
loss, NT-Xent (normalized temperature-scaled cross-entropy; InfoNCE, van den Oord et
al., 2018), is a softmax classification of each view's partner among the other 2N - 1
views of the batch. Features are judged by a *linear probe*, a linear classifier trained
on frozen features. Tests check ``nt_xent`` against cross-entropy over the similarity
matrix and a float64 loop.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from dlbook.train import TrainConfig, train
from dlbook.utils import (
    check_positive_int,
    check_real,
    make_generator,
    model_device,
    set_seed,
)


def augment(
    x: torch.Tensor,
    generator: torch.Generator,
    max_degrees: float = 15.0,
    max_shift: float = 1.0,
    scale: tuple[float, float] = (0.9, 1.1),
    noise: float = 0.1,
) -> torch.Tensor:
    """A random view of each digit: rotation, scaling and shift (one affine map per
    image, bilinear resampling), then Gaussian pixel noise. SimCLR's crops and colour
    jitter do not suit 8x8 grey images; these keep the digit recognisable.

    Args:
        x: (N, 64) or (N, 1, 8, 8) images in [0, 1]; the output has the same shape.
        max_degrees, max_shift, scale: ranges of the uniform random affine maps
            (``max_shift`` in pixels).
        noise: standard deviation of the added pixel noise.
    """
    if not isinstance(x, torch.Tensor) or x.shape[-1] not in (8, 64):
        raise ValueError(
            f"x must be digits (N, 64) or (N, 1, 8, 8), got "
            f"{tuple(getattr(x, 'shape', ())) or type(x).__name__}"
        )
    check_real(max_degrees, "max_degrees", 0.0, 180.0)
    check_real(noise, "noise", 0.0)
    images = x.reshape(-1, 1, 8, 8)  # (N, 1, 8, 8)
    n = len(images)

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=generator)

    angle = uniform(-max_degrees, max_degrees) * math.pi / 180
    s = uniform(*scale)
    shift = uniform(-max_shift, max_shift), uniform(-max_shift, max_shift)
    # maps output coordinates in [-1, 1] to input coordinates
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle) / s, -torch.sin(angle) / s
    theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle) / s, torch.cos(angle) / s
    # pixels -> [-1, 1]
    theta[:, 0, 2], theta[:, 1, 2] = shift[0] * 2 / 8, shift[1] * 2 / 8
    grid = F.affine_grid(theta.to(x.device), [n, 1, 8, 8], align_corners=False)
    out = F.grid_sample(images, grid, align_corners=False)  # zeros outside the image
    out = out + noise * torch.randn(out.shape, generator=generator).to(x.device)
    return out.clamp(0, 1).reshape(x.shape)


def nt_xent(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5
) -> torch.Tensor:
    """NT-Xent (Chen et al., 2020, eq. 1), averaged over all 2N views.

    With u the 2N unit vectors ``normalize([z1; z2])`` and ``s_ij = u_i . u_j``, the
    loss of view i with partner p(i) is ``-s_ip / tau + log sum_{k != i} exp(s_ik /
    tau)``.

    Args:
        z1, z2: (N, d) projections of the two views; row i of each comes from image i.
        temperature: tau > 0; small values weigh the hardest negatives most.
    """
    if z1.dim() != 2 or z1.shape != z2.shape or len(z1) < 2:
        raise ValueError(
            f"z1 and z2 must both be (N >= 2, d), got {tuple(z1.shape)} "
            f"and "
            f"{tuple(z2.shape)}"
        )
    check_real(temperature, "temperature", 0.0, low_open=True)
    n = len(z1)
    u = F.normalize(torch.cat([z1, z2]), dim=1)  # (2N, d), unit rows
    sim = u @ u.T / temperature  # (2N, 2N) cosine similarities over tau
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=u.device)
    # k != i: a view is not its own negative
    sim = sim.masked_fill(self_mask, float("-inf"))
    partner = torch.arange(2 * n, device=u.device).roll(n)  # p(i) = i + N mod 2N
    positive = sim[torch.arange(2 * n, device=u.device), partner]  # (2N,)
    return (torch.logsumexp(sim, dim=1) - positive).mean()


@dataclass(frozen=True)
class EncoderConfig:
    """An MLP encoder for 8x8 digits and SimCLR's projection head g (Chen et al.,
    2.1)."""

    d_in: int = 64  # pixels
    d_hidden: int = 256  # hidden width
    d_repr: int = 128  # the representation h, read by probes and fine-tuning
    d_proj: int = 64  # the projection z = g(h), used only by the loss


class Encoder(nn.Module):
    """``h = f(x)``, a two-layer MLP; ``project(h) = g(h)`` is the projection head."""

    def __init__(self, config: EncoderConfig = EncoderConfig()):
        super().__init__()
        c = self.config = config
        self.f = nn.Sequential(
            nn.Linear(c.d_in, c.d_hidden),
            nn.ReLU(),
            nn.Linear(c.d_hidden, c.d_repr),
            nn.ReLU(),
        )
        self.g = nn.Sequential(
            nn.Linear(c.d_repr, c.d_repr), nn.ReLU(), nn.Linear(c.d_repr, c.d_proj)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 64) -> h (N, d_repr)."""
        return self.f(x.flatten(1))

    def project(self, h: torch.Tensor) -> torch.Tensor:
        """h (N, d_repr) -> z (N, d_proj)."""
        return self.g(h)


class SimCLRLoss:
    """The batch loss for ``fit``: two augmentations of a batch of images, NT-Xent on
    their projections. The labels in the batch, if any, are not read."""

    def __init__(self, temperature: float, generator: torch.Generator):
        self.temperature = check_real(temperature, "temperature", 0.0, low_open=True)
        self.generator = generator

    def __call__(self, model: Encoder, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x = batch[0].to(next(model.parameters()).device)
        z1 = model.project(model(augment(x, self.generator)))  # view 1
        z2 = model.project(model(augment(x, self.generator)))  # view 2
        return nt_xent(z1, z2, self.temperature)


class Classifier(nn.Module):
    """A linear layer on an encoder's representation; ``freeze=True`` gives a linear
    probe."""

    def __init__(self, encoder: Encoder, n_classes: int = 10, freeze: bool = False):
        super().__init__()
        check_positive_int(n_classes, "n_classes", minimum=2)
        self.encoder, self.freeze = encoder, freeze
        for p in encoder.parameters():
            p.requires_grad_(not freeze)
        self.head = nn.Linear(encoder.config.d_repr, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 64) -> logits (N, n_classes)."""
        return self.head(self.encoder(x))


def label_subset(y: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Indices of a class-stratified ``fraction`` of the examples, at least one per
    class."""
    check_real(fraction, "fraction", 0.0, 1.0, low_open=True)
    gen = make_generator(seed)
    picked = []
    for c in torch.unique(y).tolist():
        members = torch.nonzero(y == c).flatten()
        k = max(1, round(fraction * len(members)))
        picked.append(members[torch.randperm(len(members), generator=gen)[:k]])
    return torch.cat(picked).sort().values


@dataclass(frozen=True)
class TransferConfig:
    """How ``label_efficiency`` trains its three classifiers; all use Adam and batches
    of 64. Training from scratch takes as many steps as the probe and the fine-tuning
    together."""

    probe_steps: int = 200  # linear probe on frozen features
    probe_lr: float = 1e-2
    finetune_steps: int = 100  # then every weight, starting from the probe (LP-FT)
    finetune_lr: float = 3e-4  # small: the features should move, not be overwritten
    scratch_lr: float = 1e-3
    batch_size: int = 64


def _fit(
    model: nn.Module,
    train_set: TensorDataset,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
) -> nn.Module:
    train(
        model,
        train_set,
        TrainConfig(
            steps=steps, lr=lr, batch_size=batch_size, seed=seed, progress=False
        ),
    )
    return model


@torch.no_grad()
def correct_predictions(model: nn.Module, test_set: TensorDataset) -> torch.Tensor:
    """A bool (N,) tensor: which test examples ``model`` classifies correctly."""
    model.eval()
    x, y = test_set.tensors
    return model(x.to(model_device(model))).argmax(1).cpu() == y


def label_efficiency(
    encoder: Encoder,
    train_set: TensorDataset,
    test_set: TensorDataset,
    fraction: float,
    seed: int = 0,
    config: TransferConfig = TransferConfig(),
) -> dict[str, torch.Tensor]:
    """Train three classifiers on a stratified ``fraction`` of the labelled
    ``train_set``:

    - ``"scratch"``: a fresh ``Encoder`` and head, every weight trained;
    - ``"probe"``: a linear probe on the pre-trained ``encoder`` (left unchanged);
    - ``"finetune"``: the probe, then every weight trained at a small rate (LP-FT).

    Returns name -> which test examples each gets right (bool, (N_test,)).
    """
    x, y = train_set.tensors
    idx = label_subset(y, fraction, seed)
    labelled = TensorDataset(x[idx], y[idx])
    c, out = config, {}
    set_seed(seed)
    scratch = Classifier(Encoder(encoder.config))
    _fit(
        scratch,
        labelled,
        c.probe_steps + c.finetune_steps,
        c.scratch_lr,
        c.batch_size,
        seed,
    )
    out["scratch"] = correct_predictions(scratch, test_set)
    set_seed(seed)
    model = Classifier(copy.deepcopy(encoder), freeze=True)
    _fit(model, labelled, c.probe_steps, c.probe_lr, c.batch_size, seed)
    out["probe"] = correct_predictions(model, test_set)
    for p in model.encoder.parameters():
        p.requires_grad_(True)
    _fit(model, labelled, c.finetune_steps, c.finetune_lr, c.batch_size, seed)
    out["finetune"] = correct_predictions(model, test_set)
    return out
