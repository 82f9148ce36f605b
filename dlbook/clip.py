"""CLIP on a CPU: digit images and generated captions, one contrastive loss, zero-shot
classes.

CLIP (Radford et al., 2021) trains an image encoder and a text encoder together so that
an image and its caption map to nearby unit vectors: in a batch of N pairs, the N x N
matrix of scaled cosine similarities should have its largest entries on the diagonal,
read as a classification along rows (image -> text) and along columns (text -> image);
the loss is the mean of the two cross-entropies (their fig. 3). Classes then become
sentences: embed "a photo of a {label}" for every label and pick the nearest (zero-shot
classification); averaging the embeddings of several templates is *prompt ensembling*
(their section 3.1.4).

Here the images are the 8x8 digits, the captions are written by templates
(``TRAIN_TEMPLATES``; ``HELD_OUT_TEMPLATES`` are never seen in training), the image
encoder is chapter 4's LeNet with a d_embed-wide last layer and the text encoder is
chapter 6's ``TransformerBlock`` over characters. Tests check ``clip_loss`` against
transformers' loss."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dlbook.attention import LearnedPositions, padding_mask
from dlbook.cnn import LeNet, LeNetConfig
from dlbook.text import PAD, CharVocab
from dlbook.transformer import TransformerBlock
from dlbook.utils import check_positive_int

NUMBER_WORDS = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
)
TRAIN_TEMPLATES = (
    "a handwritten {word}",
    "the number {digit}",
    "{word}, written by hand",
    "a photo of the digit {word}",
    "the digit {digit}",
    "a scanned {word}",
    "someone wrote a {word}",
    "{digit}",
    "an image of the number {word}",
    "a small picture of a {digit}",
    "{word}",
    "a blurry {word}",
)
HELD_OUT_TEMPLATES = (
    "a drawing of a {word}",
    "this is the digit {digit}",
    "a {word}, drawn in ink",
    "the handwritten number {digit}",
    "a picture of a {word}",
)
CAPTION_VOCAB = CharVocab(sorted(set("abcdefghijklmnopqrstuvwxyz0123456789 ,")))
# caption ids are the vocabulary's ids plus one: id 0 is PAD


def caption(label: int, template: str) -> str:
    """The caption of digit ``label`` in ``template`` ("{word}" -> "seven", "{digit}" ->
    "7")."""
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label <= 9:
        raise ValueError(f"label must be an int in 0..9, got {label!r}")
    if "{word}" not in template and "{digit}" not in template:
        raise ValueError(
            f"template must contain {{word}} or {{digit}}, got {template!r}"
        )
    return template.format(word=NUMBER_WORDS[label], digit=label)


def encode_captions(
    captions: Sequence[str], max_len: int, vocab: CharVocab = CAPTION_VOCAB
) -> tuple[torch.Tensor, torch.Tensor]:
    """Captions -> (ids (B, max_len) padded with PAD, lengths (B,)); a character's id is
    its id in ``vocab`` plus one."""
    if isinstance(captions, str) or not captions:
        raise ValueError("captions must be a non-empty sequence of strings")
    ids = torch.full((len(captions), max_len), PAD, dtype=torch.long)
    lengths = torch.empty(len(captions), dtype=torch.long)
    for i, text in enumerate(captions):
        if len(text) > max_len:
            raise ValueError(f"caption {text!r} is longer than max_len {max_len}")
        ids[i, : len(text)] = vocab.encode(text) + 1  # 0 is kept for PAD
        lengths[i] = len(text)
    return ids, lengths


@dataclass(frozen=True)
class CLIPConfig:
    """Sizes of the digit CLIP. CLIP's smallest text encoder has 12 layers of width 512,
    its embeddings 512 or more dimensions (Radford et al., section 2.4)."""

    d_embed: int = 32  # the shared embedding space
    d_model: int = 32  # width of the text encoder
    n_heads: int = 4  # attention heads of the text encoder
    n_layers: int = 2  # Transformer blocks of the text encoder
    d_ff: int = 64  # MLP width of each block
    max_len: int = 32  # longest caption, in characters
    vocab_size: int = len(CAPTION_VOCAB) + 1  # characters and PAD
    init_temperature: float = 0.07  # tau at the start; the logit scale 1/tau is learned

    def __post_init__(self) -> None:
        for name in (
            "d_embed",
            "d_model",
            "n_heads",
            "n_layers",
            "d_ff",
            "max_len",
            "vocab_size",
        ):
            check_positive_int(getattr(self, name), name)
        if not 0 < self.init_temperature < 1:
            raise ValueError(
                f"init_temperature must be in (0, 1), got {self.init_temperature}"
            )


class TextEncoder(nn.Module):
    """Characters -> embedding, learned positions, pre-LN blocks with a padding mask,
    layer norm, the mean over real characters, a linear map to d_embed. (CLIP reads the
    vector at the end-of-text token instead of a mean, and uses a causal mask.)"""

    def __init__(self, config: CLIPConfig):
        super().__init__()
        c = config
        self.embed = nn.Embedding(c.vocab_size, c.d_model, padding_idx=PAD)
        self.positions = LearnedPositions(c.max_len, c.d_model)
        self.blocks = nn.ModuleList(
            TransformerBlock(c.d_model, c.n_heads, c.d_ff) for _ in range(c.n_layers)
        )
        self.ln = nn.LayerNorm(c.d_model)
        self.proj = nn.Linear(c.d_model, c.d_embed, bias=False)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """ids (B, T), lengths (B,) -> caption vectors (B, d_embed), not normalized."""
        mask = padding_mask(
            lengths, ids.shape[1]
        )  # (B, 1, 1, T): no query sees padding
        h = self.positions(self.embed(ids))  # (B, T, d_model)
        for block in self.blocks:
            h, _ = block(h, mask)
        h = self.ln(h)
        real = mask[:, 0, 0, :, None].to(h.dtype)  # (B, T, 1)
        return self.proj((h * real).sum(1) / real.sum(1))  # mean over real characters


class CLIP(nn.Module):
    """Two encoders into one space, and a learned logit scale (inverse temperature)."""

    def __init__(self, config: CLIPConfig | None = None):
        super().__init__()
        config = CLIPConfig() if config is None else config
        if not isinstance(config, CLIPConfig):
            raise TypeError(
                f"config must be a CLIPConfig or None, got {type(config).__name__}"
            )
        self.config = config
        self.image_encoder = LeNet(
            LeNetConfig(n_classes=config.d_embed)
        )  # its last layer: d_embed
        self.text_encoder = TextEncoder(config)
        self.log_scale = nn.Parameter(
            torch.tensor(math.log(1 / config.init_temperature))
        )

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, 8, 8) -> unit vectors (B, d_embed)."""
        return F.normalize(self.image_encoder(images), dim=-1)

    def encode_text(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Caption ids (B, T) and lengths (B,) -> unit vectors (B, d_embed)."""
        return F.normalize(self.text_encoder(ids, lengths), dim=-1)

    def logit_scale(self) -> torch.Tensor:
        """1 / tau, clipped at 100 as in CLIP (section 2.5) so that training stays
        stable."""
        return self.log_scale.exp().clamp(max=100.0)

    def forward(
        self, images: torch.Tensor, ids: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """The (B, B) logits ``scale * I T^T``: row i compares image i with every
        caption."""
        return (
            self.logit_scale()
            * self.encode_images(images)
            @ self.encode_text(ids, lengths).T
        )


def clip_loss(logits: torch.Tensor) -> torch.Tensor:
    """The symmetric contrastive loss of N x N logits whose diagonal holds the true
    pairs: the mean of the cross-entropies along rows (image -> text) and columns (text
    -> image) (Radford et al., fig. 3)."""
    if (
        not isinstance(logits, torch.Tensor)
        or logits.dim() != 2
        or logits.shape[0] != logits.shape[1]
    ):
        raise ValueError(
            f"logits must be a square (N, N) tensor, got "
            f"{tuple(getattr(logits, 'shape', ())) or type(logits).__name__}"
        )
    targets = torch.arange(len(logits), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))


def caption_batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    templates: Sequence[str],
    max_len: int,
    generator: torch.Generator,
) -> Iterator[tuple[torch.Tensor, ...]]:
    """An endless stream of (images, ids, lengths): shuffled images, each with a caption
    in a template drawn at random. Two images of one digit in a batch are false
    negatives for each other; with 10 classes that is unavoidable and CLIP's loss
    tolerates it."""
    check_positive_int(batch_size, "batch_size")
    while True:
        order = torch.randperm(len(labels), generator=generator)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[start : start + batch_size]
            picks = torch.randint(len(templates), (batch_size,), generator=generator)
            texts = [
                caption(int(labels[i]), templates[int(t)]) for i, t in zip(idx, picks)
            ]
            ids, lengths = encode_captions(texts, max_len)
            yield images[idx], ids, lengths


def clip_batch_loss(model: CLIP, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """``clip_loss`` of one batch on the model's device (the loss ``dlbook.train.fit``
    calls)."""
    device = model.log_scale.device
    images, ids, lengths = (t.to(device) for t in batch)
    return clip_loss(model(images, ids, lengths))


@torch.no_grad()
def class_embeddings(model: CLIP, templates: Sequence[str]) -> torch.Tensor:
    """One unit vector per digit (10, d_embed): the normalized mean of the digit's
    caption embeddings over ``templates`` (prompt ensembling when there are several)."""
    if isinstance(templates, str) or not templates:
        raise ValueError("templates must be a non-empty sequence of strings")
    model.eval()
    device = model.log_scale.device
    rows = []
    for label in range(10):
        ids, lengths = encode_captions(
            [caption(label, t) for t in templates], model.config.max_len
        )
        rows.append(model.encode_text(ids.to(device), lengths.to(device)).mean(0))
    return F.normalize(torch.stack(rows), dim=-1)


@torch.no_grad()
def zero_shot_predict(
    model: CLIP, images: torch.Tensor, classes: torch.Tensor
) -> torch.Tensor:
    """The digit whose class embedding (10, d_embed) is nearest each image: (B,)
    labels."""
    model.eval()
    return (model.encode_images(images.to(classes.device)) @ classes.T).argmax(-1)


def recall_at_k(
    similarity: torch.Tensor,
    query_labels: torch.Tensor,
    item_labels: torch.Tensor,
    k: int,
) -> float:
    """The share of queries with at least one item of their own class among the k most
    similar (the class-level recall@k of metric learning).

    Args:
        similarity: (Q, N) scores of every query against every item.
        query_labels: (Q,) and item_labels: (N,) classes.
    """
    check_positive_int(k, "k")
    if similarity.dim() != 2 or similarity.shape != (
        len(query_labels),
        len(item_labels),
    ):
        raise ValueError(
            f"similarity must be (Q, N) = ({len(query_labels)}, "
            f"{len(item_labels)}), got {tuple(similarity.shape)}"
        )
    if k > similarity.shape[1]:
        raise ValueError(
            f"k must be at most the number of items {similarity.shape[1]}, got {k}"
        )
    top = similarity.topk(k, dim=1).indices  # (Q, k)
    hits = (item_labels[top] == query_labels[:, None]).any(dim=1)
    return hits.float().mean().item()


def caption_hubs(
    similarity: torch.Tensor,
    caption_labels: torch.Tensor,
    image_labels: torch.Tensor | None = None,
) -> dict:
    """Hubs among the images that captions retrieve first.

    Each caption (a row of ``similarity``, (Q, N)) picks its most similar image. The
    *1-occurrence* of an image is how many captions pick it (Radovanovic et al., 2010,
    call an item that occurs in many queries' neighbour lists a hub). Returns
    ``distinct_tops`` (images picked at all), ``max_occurrence`` (captions picking the
    most-picked image), ``hub_digits`` (how many different digits those captions name)
    and ``mixed_tops`` (images picked by captions of two or more different digits).
    Given ``image_labels`` (N,), also ``wrong`` (captions whose first image shows
    another digit) and ``wrong_at_mixed`` (of those, the ones whose first image is a
    mixed top, picked by captions of other digits too)."""
    if similarity.dim() != 2 or len(caption_labels) != similarity.shape[0]:
        raise ValueError(
            f"similarity must be (Q, N) with Q = len(caption_labels) = "
            f"{len(caption_labels)}, got {tuple(similarity.shape)}"
        )
    tops = similarity.argmax(dim=1).tolist()  # each caption's first image
    digits_of: dict[int, set[int]] = {}
    for image, label in zip(tops, caption_labels.tolist()):
        digits_of.setdefault(image, set()).add(label)
    counts = {image: tops.count(image) for image in digits_of}
    hub = max(counts, key=counts.get)
    found = {
        "distinct_tops": len(digits_of),
        "max_occurrence": counts[hub],
        "hub_digits": len(digits_of[hub]),
        "mixed_tops": sum(len(d) > 1 for d in digits_of.values()),
    }
    if image_labels is not None:
        if len(image_labels) != similarity.shape[1]:
            raise ValueError(
                f"image_labels must have one label per image, "
                f"{similarity.shape[1]}, got {len(image_labels)}"
            )
        wrong = [
            image
            for image, label in zip(tops, caption_labels.tolist())
            if image_labels[image].item() != label
        ]
        found["wrong"] = len(wrong)
        found["wrong_at_mixed"] = sum(len(digits_of[image]) > 1 for image in wrong)
    return found


@dataclass(frozen=True)
class CLIPTrainConfig:
    """How the shipped digit CLIP is trained (``scripts/train_clip.py``)."""

    model: CLIPConfig = CLIPConfig()
    steps: int = 1000  # optimizer steps
    batch_size: int = 64  # pairs per batch; the loss compares each with the other 63
    lr: float = 3e-3  # Adam; 5 percent warm-up, then cosine decay to 10 percent
    seed: int = 0  # seeds the initialization, the batch order and the templates drawn


def train_clip(
    config: CLIPTrainConfig,
    images: torch.Tensor,
    labels: torch.Tensor,
    progress: bool = False,
):
    """Train a CLIP on (image, generated caption) pairs with ``dlbook.train.fit``;
    returns ``(model, history)``. Captions use ``TRAIN_TEMPLATES`` only."""
    from dlbook.train import Schedule, TrainConfig, fit
    from dlbook.utils import make_generator, set_seed

    if not isinstance(config, CLIPTrainConfig):
        raise TypeError(
            f"config must be a CLIPTrainConfig, got {type(config).__name__}"
        )
    set_seed(config.seed)
    model = CLIP(config.model)
    batches = caption_batches(
        images,
        labels,
        config.batch_size,
        TRAIN_TEMPLATES,
        config.model.max_len,
        make_generator(config.seed),
    )
    train_config = TrainConfig(
        steps=config.steps,
        lr=config.lr,
        progress=progress,
        schedule=Schedule(warmup_steps=config.steps // 20, min_ratio=0.1),
    )
    history = fit(model, batches, clip_batch_loss, train_config, desc="clip")
    return model, history


@torch.no_grad()
def retrieval_captions(max_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The retrieval gallery: every digit in every held-out template, once.

    Returns (ids (10 K, max_len), lengths (10 K,), labels (10 K,)) for K templates."""
    pairs = [(label, t) for t in HELD_OUT_TEMPLATES for label in range(10)]
    ids, lengths = encode_captions([caption(label, t) for label, t in pairs], max_len)
    return ids, lengths, torch.tensor([label for label, _ in pairs])


@torch.no_grad()
def retrieval_similarity(
    model: CLIP, images: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine similarities (N, 10 K) of ``images`` with the retrieval gallery's captions
    (``retrieval_captions``), on the CPU, and the captions' labels (10 K,)."""
    model.eval()
    ids, lengths, text_labels = retrieval_captions(model.config.max_len)
    device = model.log_scale.device
    sim = (
        model.encode_images(images.to(device))
        @ model.encode_text(ids.to(device), lengths.to(device)).T
    ).cpu()
    return sim, text_labels


@torch.no_grad()
def evaluate_clip(model: CLIP, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """Zero-shot accuracy with the held-out templates, each alone ("single") and
    ensembled ("zero_shot"), and with the training templates; class-level recall@k, k =
    1 and 5, from images to the held-out captions ("i2t") and from those captions to
    images ("t2i")."""
    model.eval()
    ens = (
        (
            zero_shot_predict(
                model, images, class_embeddings(model, HELD_OUT_TEMPLATES)
            )
            == labels
        )
        .float()
        .mean()
        .item()
    )
    single = [
        (zero_shot_predict(model, images, class_embeddings(model, [t])) == labels)
        .float()
        .mean()
        .item()
        for t in HELD_OUT_TEMPLATES
    ]
    seen = (
        (
            zero_shot_predict(model, images, class_embeddings(model, TRAIN_TEMPLATES))
            == labels
        )
        .float()
        .mean()
        .item()
    )
    sim, text_labels = retrieval_similarity(model, images)  # (N, 10 K)
    labels = labels.cpu()
    recall = {}
    for k in (1, 5):
        recall[f"i2t@{k}"] = recall_at_k(sim, labels, text_labels, k)
        recall[f"t2i@{k}"] = recall_at_k(sim.T, text_labels, labels, k)
    return {"zero_shot": ens, "single": single, "seen_templates": seen, **recall}
