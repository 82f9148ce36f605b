"""Chapter 13's digit generators (a conditional VAE, GAN and flow), their checkpoint,
and one scoreboard that judges them and chapter 8's diffusion model alike.

``train_generators`` trains the three on the digits' training split; ``save_generators``
and ``load_generators`` write and read them in ``dlbook.checkpoint``'s verified format;
``scripts/train_generative.py`` makes the shipped file. ``sample_digits`` draws
class-conditional digits from any of the four families as pixels in [0, 1], and
``score_generator`` applies the judges of ``dlbook.judges``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from dlbook.checkpoint import load_checkpoint, save_checkpoint, shipped_checkpoint
from dlbook.data import load_digits
from dlbook.digits import TrainedDigits, generate, to_pixel_range
from dlbook.flow import (
    FlowConfig,
    RealNVP,
    bits_per_dim,
    dequantize,
    image_log_prob,
    logit_inverse,
    train_flow,
)
from dlbook.gan import (
    DCGANConfig,
    DCGANDiscriminator,
    DCGANGenerator,
    GANTrainConfig,
    train_gan,
)
from dlbook.judges import (
    feature_frechet_distance,
    intended_accuracy,
    memorisation_ratio,
)
from dlbook.train import TrainConfig
from dlbook.utils import set_seed
from dlbook.vae import N_LEVELS, VAE, VAEConfig, iwae_bound, to_levels, train_vae

FAMILIES = ("VAE", "GAN", "flow", "diffusion")


@dataclass(frozen=True)
class GenerativeRecipe:
    """Everything that decides the three shipped digit generators."""

    vae: VAEConfig = VAEConfig(latent_dim=16, hidden=128, n_classes=10)
    vae_training: TrainConfig = TrainConfig(
        steps=3000, batch_size=128, lr=2e-3, progress=False
    )
    gan: DCGANConfig = DCGANConfig(latent_dim=32, width=32, n_classes=10)
    gan_training: GANTrainConfig = GANTrainConfig(steps=3000, batch_size=64)
    flow: FlowConfig = FlowConfig(
        dim=64, n_layers=8, hidden=128, n_classes=10, mask="checkerboard"
    )
    flow_training: TrainConfig = TrainConfig(
        steps=2500, batch_size=128, lr=1e-3, progress=False
    )
    seed: int = 0  # seeds the three initialisations


@dataclass(frozen=True)
class TrainedGenerators:
    """The three conditional generators, in eval mode, with the record of their
    training."""

    vae: VAE
    gan: DCGANGenerator
    flow: RealNVP
    recipe: dict  # GenerativeRecipe as a dict
    metrics: dict  # training seconds and the GAN's curves, every 10th step


def train_generators(
    recipe: GenerativeRecipe = GenerativeRecipe(),
) -> TrainedGenerators:
    """Train the conditional VAE, GAN and flow on the training split of the digits
    (CPU)."""
    x, y = load_digits().train.tensors  # (N, 64) in [0, 1], (N,)
    set_seed(recipe.seed)
    vae = VAE(recipe.vae)
    vae_history = train_vae(vae, x, recipe.vae_training, y=y)
    set_seed(recipe.seed)
    G, D = DCGANGenerator(recipe.gan), DCGANDiscriminator(recipe.gan)
    images = 2 * x.view(-1, 1, 8, 8) - 1  # tanh range

    def sample_real(n: int, gen: torch.Generator):
        idx = torch.randint(0, len(x), (n,), generator=gen)
        return images[idx], y[idx]

    gan_history = train_gan(G, D, sample_real, recipe.gan_training)
    set_seed(recipe.seed)
    flow = RealNVP(recipe.flow)
    flow_history = train_flow(
        flow, to_levels(x).float(), recipe.flow_training, y=y, n_levels=N_LEVELS
    )
    metrics = {
        "vae_seconds": vae_history.seconds,
        "gan_seconds": gan_history.seconds,
        "flow_seconds": flow_history.seconds,
        "gan_curves": {
            k: getattr(gan_history, k)[::10]
            for k in ("d_loss", "g_loss", "d_real", "d_fake")
        },
    }
    return TrainedGenerators(
        vae.eval(), G.eval(), flow.eval(), dataclasses.asdict(recipe), metrics
    )


# shipped, listed in checkpoints/MANIFEST.json
GENERATIVE_CHECKPOINT = "generative_digits.pt"
GENERATIVE_KIND = "generative_digits"


def save_generators(
    path: str | Path, trained: TrainedGenerators, force: bool = False
) -> Path:
    """Write the three generators, their configs, recipe and metrics to one
    checkpoint."""
    config = {
        "vae": dataclasses.asdict(trained.vae.config),
        "gan": dataclasses.asdict(trained.gan.config),
        "flow": dataclasses.asdict(trained.flow.config),
    }
    state = {
        name: {
            k: v.detach().cpu() for k, v in getattr(trained, name).state_dict().items()
        }
        for name in ("vae", "gan", "flow")
    }
    return save_checkpoint(
        path,
        kind=GENERATIVE_KIND,
        config=config,
        state_dict=state,
        extra={"recipe": trained.recipe, "metrics": trained.metrics},
        force=force,
    )


def load_generators(path: str | Path | None = None) -> TrainedGenerators:
    """Load a file written by :func:`save_generators` on the CPU, in eval mode;
    ``path=None`` loads the shipped one, checked against the manifest."""
    path = shipped_checkpoint(GENERATIVE_CHECKPOINT) if path is None else Path(path)
    saved = load_checkpoint(path, kind=GENERATIVE_KIND)
    vae = VAE(VAEConfig(**saved.config["vae"]))
    gan = DCGANGenerator(DCGANConfig(**saved.config["gan"]))
    flow = RealNVP(FlowConfig(**saved.config["flow"]))
    for name, model in (("vae", vae), ("gan", gan), ("flow", flow)):
        model.load_state_dict(saved.state_dict[name])
    return TrainedGenerators(
        vae.eval(),
        gan.eval(),
        flow.eval(),
        saved.extra["recipe"],
        saved.extra["metrics"],
    )


@torch.no_grad()
def sample_digits(
    family: str,
    labels: torch.Tensor,
    generators: TrainedGenerators,
    diffusion: TrainedDigits,
    seed: int,
) -> torch.Tensor:
    """Digits of the given labels (B,) as pixels (B, 1, 8, 8) in [0, 1]. The VAE shows
    the decoder's mean image, the flow samples at temperature 1, and the diffusion model
    uses chapter 8's recorded setting (50 DDIM steps, guidance 2)."""
    gen = torch.Generator().manual_seed(seed)
    n = labels.shape[0]
    if family == "VAE":
        images = generators.vae.sample(n, labels, generator=gen)
    elif family == "GAN":
        z = torch.randn(n, generators.gan.config.latent_dim, generator=gen)
        images = (generators.gan(z, labels) + 1) / 2
    elif family == "flow":
        images = logit_inverse(generators.flow.sample(n, labels, generator=gen))
    elif family == "diffusion":
        images = to_pixel_range(
            generate(
                diffusion.model,
                diffusion.schedule,
                labels,
                sample_steps=50,
                guidance=2.0,
                seed=seed,
            )
        )
    else:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    return images.reshape(n, 1, 8, 8).clamp(0, 1)


@torch.no_grad()
def heldout_bits_per_dim(
    family: str,
    generators: TrainedGenerators,
    x: torch.Tensor,
    y: torch.Tensor,
    seed: int = 0,
) -> float:
    """-log2 P(x | y) / 64 of integer-level test digits, an upper bound for both
    families that have one: the VAE's importance-weighted bound (k = 100) and the flow's
    dequantised likelihood (one draw of u), each minus 64 log 17 for the width of a grey
    level."""
    gen = torch.Generator().manual_seed(seed)
    if family == "VAE":
        log_p = iwae_bound(generators.vae, x, y, k=100, generator=gen)
    elif family == "flow":
        x_cont = dequantize(to_levels(x), N_LEVELS, generator=gen)
        log_p = image_log_prob(generators.flow, x_cont, y) - x.shape[1] * math.log(
            N_LEVELS
        )
    else:
        raise ValueError(f"family must be 'VAE' or 'flow', got {family!r}")
    return bits_per_dim(log_p, x.shape[1])


def score_generator(
    images: torch.Tensor,
    labels: torch.Tensor,
    judge: torch.nn.Module,
    real: torch.Tensor,
    train: torch.Tensor,
    held_out: torch.Tensor,
) -> dict:
    """The judges on one set of class-conditional pixels (B, 1, 8, 8): intended-digit
    accuracy, the LeNet-feature Fréchet distance to ``real``, and the memorisation
    ratio."""
    return {
        "accuracy": intended_accuracy(judge, images, labels),
        "frechet": feature_frechet_distance(judge, images, real),
        "memorisation": memorisation_ratio(images, train, held_out),
    }


__all__ = [
    "FAMILIES",
    "GenerativeRecipe",
    "TrainedGenerators",
    "train_generators",
    "save_generators",
    "load_generators",
    "sample_digits",
    "heldout_bits_per_dim",
    "score_generator",
]
