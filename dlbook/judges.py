"""Judges for generated 8x8 digits, shared by every generator in the book.

Each judge takes images as pixels (B, 1, 8, 8) or (B, 64) in [0, 1]:

- ``intended_accuracy``: chapter 8's LeNet (``dlbook.digits``) reads the digit; the
  fraction read as the class that was asked for.
- ``frechet_distance`` / ``feature_frechet_distance``: the Fréchet distance between
  Gaussians fitted to features of real and generated images (Heusel et al., 2017): FID's
  idea, with the LeNet's last hidden layer in place of Inception's pool features.
- ``memorisation_ratio``: the median distance of generated images to their nearest
  training image, divided by the same median for held-out real images. Near 1: new
  images; near 0: copies.
- ``seconds_per_sample``: the wall-clock cost of sampling.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from dlbook.digits import score_samples, to_model_range
from dlbook.utils import check_positive_int, time_runs


def _as_images(pixels: torch.Tensor) -> torch.Tensor:
    if pixels.dim() == 2 and pixels.shape[1] == 64:
        pixels = pixels.view(-1, 1, 8, 8)  # (B, 1, 8, 8)
    if pixels.dim() != 4 or pixels.shape[1:] != (1, 8, 8):
        raise ValueError(
            f"pixels must have shape (B, 64) or (B, 1, 8, 8), got {tuple(pixels.shape)}"
        )
    return pixels


def intended_accuracy(
    classifier: nn.Module, pixels: torch.Tensor, labels: torch.Tensor
) -> float:
    """The fraction of generated digits that ``classifier`` reads as the label they were
    generated for (``dlbook.digits.score_samples``, which takes the [-1, 1] range)."""
    images = _as_images(pixels)
    if labels.shape != images.shape[:1]:
        raise ValueError(
            f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}"
        )
    return score_samples(classifier, to_model_range(images), labels)["accuracy"]


@torch.no_grad()
def lenet_features(classifier: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """The activations (B, F) of the classifier's last hidden layer (LeNet: F6, 84
    units), i.e. everything but the final linear layer."""
    images = _as_images(pixels).to(next(classifier.parameters()).device)
    classifier.eval()
    return classifier.classifier[:-1](classifier.features(images)).double().cpu()


def _sqrtm_psd(matrix: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix, by
    eigh."""
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(
    mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor
) -> float:
    """The squared 2-Wasserstein (Fréchet) distance between N(mu1, cov1) and
    N(mu2, cov2) (Dowson & Landau, 1982):
    ``||mu1 - mu2||^2 + tr(cov1 + cov2 - 2 (cov1^1/2 cov2 cov1^1/2)^1/2)``.

    Computed in float64. The symmetric form under the trace has the eigenvalues of
    ``cov1 cov2`` but suits ``eigh``; FID's code takes ``sqrtm(cov1 @ cov2)``.
    """
    if mu1.shape != mu2.shape or mu1.dim() != 1:
        raise ValueError(
            f"mu1 and mu2 must be vectors of one length, got "
            f"{tuple(mu1.shape)} and {tuple(mu2.shape)}"
        )
    d = mu1.shape[0]
    for name, cov in (("cov1", cov1), ("cov2", cov2)):
        if cov.shape != (d, d):
            raise ValueError(
                f"{name} must have shape ({d}, {d}), got {tuple(cov.shape)}"
            )
    mu1, cov1, mu2, cov2 = (t.double() for t in (mu1, cov1, mu2, cov2))
    root1 = _sqrtm_psd(cov1)
    cross = _sqrtm_psd(root1 @ cov2 @ root1)
    return float(
        (mu1 - mu2).pow(2).sum()
        + torch.trace(cov1)
        + torch.trace(cov2)
        - 2 * torch.trace(cross)
    )


def gaussian_fit(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (F,) and covariance (F, F) of features (N, F), with N - 1 in the
    denominator."""
    if features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(
            f"features must be (N, F) with N >= 2, got {tuple(features.shape)}"
        )
    return features.mean(dim=0), torch.cov(features.T)


def feature_frechet_distance(
    classifier: nn.Module, generated: torch.Tensor, real: torch.Tensor
) -> float:
    """FID's idea at 8x8: the Fréchet distance between Gaussians fitted to the
    classifier's features of generated and of real pixels. Biased upwards at small N:
    compare models at equal N, with a real-against-real row as the floor."""
    return frechet_distance(
        *gaussian_fit(lenet_features(classifier, generated)),
        *gaussian_fit(lenet_features(classifier, real)),
    )


def memorisation_ratio(
    generated: torch.Tensor, train: torch.Tensor, held_out: torch.Tensor
) -> float:
    """median_g min_t ||g - t|| / median_h min_t ||h - t||, pixels flattened: how close
    the generated images lie to the training set, relative to held-out real images."""
    flat = [
        _as_images(p).flatten(1).float().cpu() for p in (generated, train, held_out)
    ]
    generated, train, held_out = flat
    nearest_generated = torch.cdist(generated, train).min(dim=1).values
    nearest_held_out = torch.cdist(held_out, train).min(dim=1).values
    return float(nearest_generated.median() / nearest_held_out.median())


def seconds_per_sample(
    sample: Callable[[], torch.Tensor], n: int, repeats: int = 3
) -> float:
    """The fastest of ``repeats`` calls of ``sample()`` (which makes n images), divided
    by n."""
    check_positive_int(n, "n")
    return min(time_runs(sample, repeats)) / n
