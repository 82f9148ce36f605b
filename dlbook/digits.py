"""Chapter 8's class-conditional digit generator: its recipe, its LeNet judge, and its
checkpoint.

``train_digits`` trains a ``TinyUNet`` denoiser (``dlbook.diffusion``) and chapter 4's
LeNet on the digits' training split and measures the samples with the LeNet;
``save_trained_digits`` and ``load_trained_digits`` write and read the result in
``dlbook.checkpoint``'s verified format. ``scripts/train_diffusion.py`` makes the
shipped file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dlbook.checkpoint import load_checkpoint, save_checkpoint, shipped_checkpoint
from dlbook.cnn import LeNet, LeNetConfig
from dlbook.data import load_digits
from dlbook.diffusion import (
    DenoiserTrainConfig,
    DiffusionConfig,
    NoiseSchedule,
    TinyUNet,
    UNetConfig,
    ddim_sample,
    ddpm_sample,
    train_denoiser,
)
from dlbook.train import Schedule, TrainConfig, evaluate, train
from dlbook.utils import (
    get_device,
    set_seed,
)


@dataclass(frozen=True)
class DigitsRecipe:
    """Everything that decides the shipped digits model and how it is measured."""

    # T = 200
    diffusion: DiffusionConfig = DiffusionConfig(n_steps=200, schedule="cosine")
    # keeps the full ancestral chain affordable on a CPU; the cosine schedule suits
    # small images
    # about 87 K parameters
    unet: UNetConfig = UNetConfig(channels=(16, 32), emb_dim=32)
    training: DenoiserTrainConfig = DenoiserTrainConfig(
        training=TrainConfig(
            steps=3000,
            batch_size=128,
            lr=2e-3,
            optimizer="adamw",
            schedule=Schedule(min_ratio=0.0),
        ),
        p_uncond=0.1,
    )
    classifier: LeNetConfig = LeNetConfig()  # chapter 4's LeNet scores the samples
    classifier_training: TrainConfig = TrainConfig(epochs=40, batch_size=64, lr=2e-3)
    sample_steps: int = 50  # DDIM steps used for the recorded quality
    guidance: float = 2.0  # classifier-free guidance scale (1 is plain conditioning)
    n_per_class: int = 20  # generated digits per class for the recorded quality
    seed: int = 0  # seeds the initializations of both networks


def to_model_range(x: torch.Tensor) -> torch.Tensor:
    """Pixels in [0, 1] (as ``load_digits`` gives them) to [-1, 1], the range diffusion
    uses."""
    return 2 * x - 1


def to_pixel_range(x: torch.Tensor) -> torch.Tensor:
    """Generated images in about [-1, 1] back to pixels in [0, 1]."""
    return ((x + 1) / 2).clamp(0, 1)


@torch.no_grad()
def score_samples(
    classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None
) -> dict:
    """What a classifier makes of generated images (B, 1, 8, 8) in [-1, 1].

    Returns ``confidence`` (mean top softmax probability), ``counts`` (images per
    predicted class) and, when the conditioning ``labels`` (B,) are given, ``accuracy``
    (the fraction predicted as their own label).
    """
    if images.dim() != 4:
        raise ValueError(
            f"images must have shape (B, C, H, W), got {tuple(images.shape)}"
        )
    device = next(classifier.parameters()).device
    classifier.eval()
    # (B, n_classes)
    probs = F.softmax(classifier(to_pixel_range(images).to(device)), dim=1)
    confidence, predicted = probs.max(dim=1)
    result = {
        "confidence": confidence.mean().item(),
        "counts": torch.bincount(predicted.cpu(), minlength=probs.shape[1]).tolist(),
    }
    if labels is not None:
        result["accuracy"] = (predicted.cpu() == labels.cpu()).float().mean().item()
    return result


def generate(
    model: TinyUNet,
    schedule: NoiseSchedule,
    labels: torch.Tensor,
    *,
    sample_steps: int | None,
    guidance: float,
    seed: int,
) -> torch.Tensor:
    """Digits (B, 1, 8, 8) in [-1, 1] for the given labels (B,): full DDPM ancestral
    sampling when ``sample_steps`` is None, else deterministic DDIM with that many
    steps."""
    n = model.config.image_size
    shape = (labels.shape[0], model.config.in_channels, n, n)
    kwargs = {
        "generator": torch.Generator().manual_seed(seed),
        "y": labels,
        "guidance": guidance,
        "clip": 1.0,
    }
    if sample_steps is None:
        return ddpm_sample(model, shape, schedule, **kwargs)
    return ddim_sample(model, shape, schedule, sample_steps, **kwargs)


def measure(
    model: TinyUNet,
    schedule: NoiseSchedule,
    classifier: nn.Module,
    recipe: DigitsRecipe,
    seed: int = 1,
) -> dict:
    """Score ``n_per_class`` generated digits per class, conditional and
    unconditional."""
    device = next(model.parameters()).device
    labels = torch.arange(10, device=device).repeat(recipe.n_per_class)
    conditional = generate(
        model,
        schedule,
        labels,
        sample_steps=recipe.sample_steps,
        guidance=recipe.guidance,
        seed=seed,
    )
    # guidance 0 uses only the unconditional prediction: the model's own mix of classes
    unconditional = generate(
        model,
        schedule,
        labels,
        sample_steps=recipe.sample_steps,
        guidance=0.0,
        seed=seed,
    )
    return {
        "conditional": score_samples(classifier, conditional, labels),
        "unconditional": score_samples(classifier, unconditional),
    }


def train_digits(
    recipe: DigitsRecipe = DigitsRecipe(), device: torch.device | None = None
) -> TrainedDigits:
    """Train the LeNet scorer and the digit denoiser on the training split; measure
    both."""
    device = device or get_device()
    digits = load_digits(as_images=True)
    set_seed(recipe.seed)
    classifier = LeNet(recipe.classifier)
    classifier_history = train(
        classifier, digits.train, recipe.classifier_training, device=device
    )
    x, y = digits.train.tensors
    set_seed(recipe.seed)
    model = TinyUNet(recipe.unet).to(device)
    schedule = NoiseSchedule.from_config(recipe.diffusion, device=device)
    history = train_denoiser(model, to_model_range(x), schedule, recipe.training, y=y)
    metrics = {
        "classifier_test_accuracy": evaluate(classifier, digits.test)["accuracy"],
        "classifier_seconds": classifier_history.seconds,
        "denoiser_seconds": history.seconds,
        "final_loss": sum(history.step_loss[-200:]) / len(history.step_loss[-200:]),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        **measure(model, schedule, classifier, recipe),
    }
    return TrainedDigits(
        model, schedule, classifier.eval(), dataclasses.asdict(recipe), metrics
    )


# ----- the checkpoint of chapter 8's digit generator

# shipped file name, listed in checkpoints/MANIFEST.json
DIGITS_CHECKPOINT = "diffusion_digits.pt"
DIGITS_KIND = "diffusion_digits"


@dataclass(frozen=True)
class TrainedDigits:
    """Chapter 8's class-conditional digit generator, with the LeNet that scores its
    samples."""

    model: TinyUNet  # the denoiser eps_theta(x_t, t, y), in eval mode
    schedule: NoiseSchedule  # the noise schedule it was trained with
    classifier: LeNet  # chapter 4's LeNet, trained alongside to score generated digits
    recipe: dict  # how both were trained: the training script's configs, as dicts
    metrics: dict  # what the training script measured (accuracy, confidence, seconds)


def _as_tuples(config: dict) -> dict:
    """JSON turns tuples into lists; the config dataclasses want their tuples back."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}


def recipe_config(
    recipe: dict, name: str
) -> DiffusionConfig | UNetConfig | LeNetConfig:
    """The config object ``recipe[name]`` records, for ``name`` in diffusion, unet,
    classifier."""
    classes = {
        "diffusion": DiffusionConfig,
        "unet": UNetConfig,
        "classifier": LeNetConfig,
    }
    if name not in classes:
        raise ValueError(f"name must be one of {sorted(classes)}, got {name!r}")
    value = recipe[name]
    return (
        value
        if isinstance(value, classes[name])
        else classes[name](**_as_tuples(value))
    )


def save_trained_digits(
    path: str | Path,
    *,
    model: TinyUNet,
    classifier: LeNet,
    recipe: Any,
    metrics: dict,
    force: bool = False,
) -> Path:
    """Save the denoiser and the classifier, with the recipe (a dataclass or a dict)
    that trained them and their metrics, in one checkpoint file."""
    recipe = (
        dataclasses.asdict(recipe) if dataclasses.is_dataclass(recipe) else dict(recipe)
    )
    config = {
        "diffusion": dataclasses.asdict(recipe_config(recipe, "diffusion")),
        "unet": dataclasses.asdict(model.config),
        "classifier": dataclasses.asdict(classifier.config),
    }
    state = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "classifier": {k: v.detach().cpu() for k, v in classifier.state_dict().items()},
    }
    return save_checkpoint(
        path,
        kind=DIGITS_KIND,
        config=config,
        state_dict=state,
        extra={"recipe": recipe, "metrics": metrics},
        force=force,
    )


def load_trained_digits(
    path: str | Path | None = None, device: torch.device | str | None = None
) -> TrainedDigits:
    """Load a checkpoint written by :func:`save_trained_digits`, in eval mode on
    ``device`` (the CPU by default). ``path=None`` loads the shipped one, checked
    against the manifest."""
    path = shipped_checkpoint(DIGITS_CHECKPOINT) if path is None else Path(path)
    device = torch.device("cpu") if device is None else torch.device(device)
    saved = load_checkpoint(path, kind=DIGITS_KIND)
    model = TinyUNet(recipe_config(saved.config, "unet"))
    classifier = LeNet(recipe_config(saved.config, "classifier"))
    model.load_state_dict(saved.state_dict["model"])
    classifier.load_state_dict(saved.state_dict["classifier"])
    schedule = NoiseSchedule.from_config(
        recipe_config(saved.config, "diffusion"), device=device
    )
    return TrainedDigits(
        model.to(device).eval(),
        schedule,
        classifier.to(device).eval(),
        saved.extra["recipe"],
        saved.extra["metrics"],
    )
