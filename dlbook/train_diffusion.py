"""Training diffusion models: the denoiser training loop, and chapter 8's digit generator, trained,
measured with chapter 4's classifier, saved and loaded.

``train_denoiser`` fits any denoiser of ``dlbook.diffusion`` to data.
``python -m dlbook.train_diffusion`` trains a class-conditional ``TinyUNet`` on the training
split of the 8x8 digits (a few minutes on two CPU cores), trains a ``LeNet`` on the same split,
scores generated digits with that LeNet, and writes ``checkpoints/diffusion_digits.pt`` next to
this file, with the measured numbers also in ``diffusion_digits.json``. The chapter and the tests
load the result with ``load_checkpoint``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dlbook.cnn import LeNet, LeNetConfig
from dlbook.data import load_digits
from dlbook.diffusion import (
    DiffusionConfig,
    NoiseSchedule,
    TinyUNet,
    UNetConfig,
    ddim_sample,
    ddpm_sample,
    diffusion_loss,
)
from dlbook.train import TrainConfig, evaluate, train
from dlbook.utils import get_device, set_seed

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # tqdm.auto warns without ipywidgets; a text bar is fine
    from tqdm.auto import tqdm

CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "diffusion_digits.pt"


@dataclass(frozen=True)
class DenoiserTrainConfig:
    """Minibatch training of a denoiser with AdamW and a cosine-decaying learning rate."""

    steps: int = 2000  # optimizer steps
    batch_size: int = 256  # examples per step, drawn with replacement
    lr: float = 2e-3  # peak learning rate, decayed to 0 by a cosine
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    p_uncond: float = 0.1  # label dropout for classifier-free guidance (ignored without labels)
    seed: int = 0  # seeds the batches, steps and noise
    progress: bool = True  # show a progress bar


def train_denoiser(model: nn.Module, x0: torch.Tensor, schedule: NoiseSchedule,
                   config: DenoiserTrainConfig = DenoiserTrainConfig(),
                   y: torch.Tensor | None = None) -> list[float]:
    """Minimize ``diffusion_loss`` on data x0 (N, ...) with labels y (N,) or None, on the
    model's device. Returns the loss of every step."""
    if y is not None and (y.shape != x0.shape[:1] or y.dtype != torch.int64):
        raise ValueError(f"y must be an int64 tensor of shape ({x0.shape[0]},), got "
                         f"{y.dtype} {tuple(y.shape)}")
    device = next(model.parameters()).device
    x0, y, schedule = x0.to(device), None if y is None else y.to(device), schedule.to(device)
    gen = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    lr_decay = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.steps)
    losses = []
    model.train()
    for _ in tqdm(range(config.steps), desc="denoiser", disable=not config.progress,
                  mininterval=2.0):
        idx = torch.randint(0, x0.shape[0], (config.batch_size,), generator=gen).to(device)
        # a random step and fresh noise for every example: one Monte Carlo term of L_simple each
        loss = diffusion_loss(model, x0[idx], schedule, None if y is None else y[idx],
                              config.p_uncond, generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lr_decay.step()  # cosine decay: large steps early, fine ones at the end
        losses.append(loss.item())
    model.eval()
    return losses


@dataclass(frozen=True)
class DigitsRecipe:
    """Everything that decides the committed digits model and how it is measured."""

    diffusion: DiffusionConfig = DiffusionConfig(n_steps=200, schedule="cosine")  # T = 200
    # keeps the full ancestral chain affordable on a CPU; the cosine schedule suits small images
    unet: UNetConfig = UNetConfig(channels=(16, 32), emb_dim=32)  # about 87 K parameters
    training: DenoiserTrainConfig = DenoiserTrainConfig(
        steps=3000, batch_size=128, lr=2e-3, p_uncond=0.1)
    classifier: LeNetConfig = LeNetConfig()  # chapter 4's LeNet scores the samples
    classifier_training: TrainConfig = TrainConfig(epochs=40, batch_size=64, lr=2e-3)
    sample_steps: int = 50  # DDIM steps used for the recorded quality
    guidance: float = 2.0  # classifier-free guidance scale (1 is plain conditioning)
    n_per_class: int = 20  # generated digits per class for the recorded quality
    seed: int = 0  # seeds the initializations of both networks


@dataclass
class DigitsCheckpoint:
    """A trained digit denoiser with its schedule, the LeNet that scores it and their numbers."""

    model: TinyUNet
    schedule: NoiseSchedule
    classifier: LeNet
    recipe: DigitsRecipe
    metrics: dict = field(default_factory=dict)


def to_model_range(x: torch.Tensor) -> torch.Tensor:
    """Pixels in [0, 1] (as ``load_digits`` gives them) to [-1, 1], the range diffusion uses."""
    return 2 * x - 1


def to_pixel_range(x: torch.Tensor) -> torch.Tensor:
    """Generated images in about [-1, 1] back to pixels in [0, 1]."""
    return ((x + 1) / 2).clamp(0, 1)


@torch.no_grad()
def score_samples(classifier: nn.Module, images: torch.Tensor,
                  labels: torch.Tensor | None = None) -> dict:
    """What a classifier makes of generated images (B, 1, 8, 8) in [-1, 1].

    Returns ``confidence`` (mean top softmax probability), ``counts`` (images per predicted
    class) and, when the conditioning ``labels`` (B,) are given, ``accuracy`` (the fraction
    predicted as their own label).
    """
    if images.dim() != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    device = next(classifier.parameters()).device
    classifier.eval()
    probs = F.softmax(classifier(to_pixel_range(images).to(device)), dim=1)  # (B, n_classes)
    confidence, predicted = probs.max(dim=1)
    result = {"confidence": confidence.mean().item(),
              "counts": torch.bincount(predicted.cpu(), minlength=probs.shape[1]).tolist()}
    if labels is not None:
        result["accuracy"] = (predicted.cpu() == labels.cpu()).float().mean().item()
    return result


def generate(model: TinyUNet, schedule: NoiseSchedule, labels: torch.Tensor, *,
             sample_steps: int | None, guidance: float, seed: int) -> torch.Tensor:
    """Digits (B, 1, 8, 8) in [-1, 1] for the given labels (B,): full DDPM ancestral sampling
    when ``sample_steps`` is None, else deterministic DDIM with that many steps."""
    n = model.config.image_size
    shape = (labels.shape[0], model.config.in_channels, n, n)
    kwargs = {"generator": torch.Generator().manual_seed(seed), "y": labels,
              "guidance": guidance, "clip": 1.0}
    if sample_steps is None:
        return ddpm_sample(model, shape, schedule, **kwargs)
    return ddim_sample(model, shape, schedule, sample_steps, **kwargs)


def measure(ckpt: DigitsCheckpoint, seed: int = 1) -> dict:
    """Score ``n_per_class`` generated digits per class, conditional and unconditional."""
    r = ckpt.recipe
    device = next(ckpt.model.parameters()).device
    labels = torch.arange(10, device=device).repeat(r.n_per_class)
    conditional = generate(ckpt.model, ckpt.schedule, labels, sample_steps=r.sample_steps,
                           guidance=r.guidance, seed=seed)
    # guidance 0 uses only the unconditional prediction: the model's own mix of classes
    unconditional = generate(ckpt.model, ckpt.schedule, labels, sample_steps=r.sample_steps,
                             guidance=0.0, seed=seed)
    return {"conditional": score_samples(ckpt.classifier, conditional, labels),
            "unconditional": score_samples(ckpt.classifier, unconditional)}


def train_digits(recipe: DigitsRecipe = DigitsRecipe(), device=None) -> DigitsCheckpoint:
    """Train the LeNet scorer and the digit denoiser on the training split; measure both."""
    device = device or get_device()
    digits = load_digits(as_images=True)
    set_seed(recipe.seed)
    classifier = LeNet(recipe.classifier)
    start = time.perf_counter()
    train(classifier, digits.train, recipe.classifier_training, device=device)
    classifier_seconds = time.perf_counter() - start
    x, y = digits.train.tensors
    set_seed(recipe.seed)
    model = TinyUNet(recipe.unet).to(device)
    schedule = NoiseSchedule.from_config(recipe.diffusion, device=device)
    start = time.perf_counter()
    losses = train_denoiser(model, to_model_range(x), schedule, recipe.training, y=y)
    ckpt = DigitsCheckpoint(model, schedule, classifier, recipe)
    ckpt.metrics = {
        "classifier_test_accuracy": evaluate(classifier, digits.test)["accuracy"],
        "classifier_seconds": classifier_seconds,
        "denoiser_seconds": time.perf_counter() - start,
        "final_loss": sum(losses[-200:]) / len(losses[-200:]),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        **measure(ckpt),
    }
    return ckpt


def save_checkpoint(ckpt: DigitsCheckpoint, path: Path = CHECKPOINT) -> None:
    """Write the weights, the recipe and the metrics (``.pt``) and the metrics (``.json``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"recipe": dataclasses.asdict(ckpt.recipe),
                "model": {k: v.cpu() for k, v in ckpt.model.state_dict().items()},
                "classifier": {k: v.cpu() for k, v in ckpt.classifier.state_dict().items()},
                "metrics": ckpt.metrics}, path)
    path.with_suffix(".json").write_text(json.dumps(ckpt.metrics, indent=2) + "\n")


def _recipe_from_dict(d: dict) -> DigitsRecipe:
    unet = {**d["unet"], "channels": tuple(d["unet"]["channels"])}
    return DigitsRecipe(
        diffusion=DiffusionConfig(**d["diffusion"]), unet=UNetConfig(**unet),
        training=DenoiserTrainConfig(**d["training"]), classifier=LeNetConfig(**{
            k: tuple(v) if isinstance(v, list) else v for k, v in d["classifier"].items()}),
        classifier_training=TrainConfig(**d["classifier_training"]),
        **{k: d[k] for k in ("sample_steps", "guidance", "n_per_class", "seed")})


def load_checkpoint(path: Path = CHECKPOINT, device=None) -> DigitsCheckpoint:
    """Rebuild the models saved by ``save_checkpoint``, in eval mode on ``device``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; run `python -m dlbook.train_diffusion`")
    device = device or get_device()
    saved = torch.load(path, map_location="cpu", weights_only=True)
    recipe = _recipe_from_dict(saved["recipe"])
    model, classifier = TinyUNet(recipe.unet), LeNet(recipe.classifier)
    model.load_state_dict(saved["model"])
    classifier.load_state_dict(saved["classifier"])
    schedule = NoiseSchedule.from_config(recipe.diffusion, device=device)
    return DigitsCheckpoint(model.to(device).eval(), schedule, classifier.to(device).eval(),
                            recipe, saved["metrics"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=DigitsRecipe().training.steps,
                        help="optimizer steps of the denoiser")
    parser.add_argument("--out", type=Path, default=CHECKPOINT, help="checkpoint path (.pt)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = DigitsRecipe()
    recipe = dataclasses.replace(
        recipe, training=dataclasses.replace(recipe.training, steps=args.steps))
    ckpt = train_digits(recipe)
    save_checkpoint(ckpt, args.out)
    print(json.dumps(ckpt.metrics, indent=2))


if __name__ == "__main__":
    main()
