"""Tests of dlbook.clip: the loss against transformers' CLIP loss, encoders, retrieval, learning."""

import pytest
import torch

from dlbook.clip import (
    CLIP,
    HELD_OUT_TEMPLATES,
    TRAIN_TEMPLATES,
    CLIPConfig,
    CLIPTrainConfig,
    caption,
    class_embeddings,
    clip_loss,
    encode_captions,
    recall_at_k,
    zero_shot_predict,
)


def test_clip_loss_matches_transformers():
    modeling_clip = pytest.importorskip("transformers.models.clip.modeling_clip")
    torch.manual_seed(0)
    logits = torch.randn(6, 6, dtype=torch.float64)  # rows: images, columns: captions
    # transformers' loss takes logits_per_text, the transpose (named clip_loss before version 5)
    reference = getattr(modeling_clip, "image_text_contrastive_loss", None) or \
        modeling_clip.clip_loss
    assert torch.allclose(clip_loss(logits), reference(logits.T), atol=1e-12)


def test_clip_loss_is_symmetric_and_small_for_a_sharp_diagonal():
    logits = torch.randn(5, 5)
    assert torch.allclose(clip_loss(logits), clip_loss(logits.T))
    assert clip_loss(100 * torch.eye(5)) < 1e-6


def test_held_out_templates_are_new():
    assert not set(TRAIN_TEMPLATES) & set(HELD_OUT_TEMPLATES)
    assert caption(7, "a handwritten {word}") == "a handwritten seven"
    assert caption(7, "the number {digit}") == "the number 7"


def test_text_encoder_ignores_padding():
    torch.manual_seed(0)
    model = CLIP(CLIPConfig(max_len=32)).eval()
    ids, lengths = encode_captions(["a handwritten seven"], 32)
    short, short_len = encode_captions(["a handwritten seven"], 20)
    with torch.no_grad():
        assert torch.allclose(model.encode_text(ids, lengths),
                              model.encode_text(short, short_len), atol=1e-6)


def test_recall_at_k():
    sim = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.3, 0.1]])
    q, items = torch.tensor([1, 0]), torch.tensor([0, 1, 0])
    assert recall_at_k(sim, q, items, 1) == 0.0  # each top item has the other class
    assert recall_at_k(sim, q, items, 2) == 0.5
    assert recall_at_k(sim, q, items, 3) == 1.0


def test_clip_learns_zero_shot_on_held_out_templates():
    from dlbook.clip import CLIPTrainConfig, train_clip
    from dlbook.data import load_digits

    data = load_digits(as_images=True)
    model, history = train_clip(CLIPTrainConfig(steps=150), *data.train.tensors)
    assert history.step_loss[-1] < history.step_loss[0]
    xt, yt = data.test.tensors
    pred = zero_shot_predict(model, xt, class_embeddings(model, HELD_OUT_TEMPLATES))
    assert (pred == yt).float().mean() > 0.3  # chance is 0.1


@pytest.mark.parametrize("call, error", [
    (lambda: clip_loss(torch.zeros(2, 3)), ValueError),
    (lambda: caption(10, "{word}"), ValueError),
    (lambda: caption(3, "no slot"), ValueError),
    (lambda: encode_captions(["far too long a caption"], 5), ValueError),
    (lambda: encode_captions(["UPPER"], 10), ValueError),
    (lambda: CLIP("config"), TypeError),
    (lambda: CLIPConfig(init_temperature=2.0), ValueError),
    (lambda: recall_at_k(torch.zeros(2, 3), torch.zeros(2), torch.zeros(3), 4), ValueError),
    (lambda: class_embeddings(CLIP(), []), ValueError),
])
def test_bad_inputs(call, error):
    with pytest.raises(error):
        call()


def test_shipped_clip_checkpoint_matches_its_record():
    from dlbook.checkpoint import load_checkpoint, shipped_checkpoint
    from dlbook.clip import evaluate_clip
    from dlbook.data import load_digits

    ck = load_checkpoint(shipped_checkpoint("clip_digits.pt"), kind="clip_digits")
    model = CLIP(CLIPConfig(**ck.config["model"]))
    model.load_state_dict(ck.state_dict)
    metrics = evaluate_clip(model, *load_digits(as_images=True).test.tensors)
    assert metrics["zero_shot"] == pytest.approx(ck.extra["metrics"]["zero_shot"], abs=1e-6)
    assert metrics["single"] == pytest.approx(ck.extra["metrics"]["single"], abs=1e-6)
    assert metrics["zero_shot"] > 0.85


def test_train_clip_script_round_trip(tmp_path, capsys):
    from dlbook.checkpoint import load_checkpoint
    from dlbook.cli import load_script

    module = load_script("train_clip")
    out = tmp_path / "clip.pt"
    module.main(["--out", str(out), "--steps", "2"])
    assert "wrote" in capsys.readouterr().out
    ck = load_checkpoint(out, kind="clip_digits")
    assert ck.config["steps"] == 2 and len(ck.extra["step_loss"]) == 2
    with pytest.raises(SystemExit):
        module.main(["--out", str(out), "--steps", "2"])


def test_caption_hubs_counts_first_images_and_the_digits_they_answer():
    from dlbook.clip import caption_hubs

    # four captions (digits 0, 1, 2, 2) over three images: image 1 is first for three
    # captions naming digits 1 and 2 (twice), image 0 for the caption of 0
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.8, 0.1], [0.0, 0.7, 0.6], [0.1, 0.5, 0.4]])
    hubs = caption_hubs(sim, torch.tensor([0, 1, 2, 2]))
    assert hubs == {"distinct_tops": 2, "max_occurrence": 3, "hub_digits": 2,
                    "mixed_tops": 1}
    with pytest.raises(ValueError, match="similarity must be"):
        caption_hubs(sim, torch.tensor([0, 1]))
    # images show digits 0, 2, 2: the caption of 1 is wrong at image 1, picked by
    # captions of 2 too (a mixed top); the captions of 2 are right
    hubs = caption_hubs(sim, torch.tensor([0, 1, 2, 2]), torch.tensor([0, 2, 2]))
    assert hubs["wrong"] == 1 and hubs["wrong_at_mixed"] == 1
    hubs = caption_hubs(sim, torch.tensor([0, 1, 2, 2]), torch.tensor([1, 1, 2]))
    assert hubs["wrong"] == 3 and hubs["wrong_at_mixed"] == 2  # 0 at 0 is alone there
    with pytest.raises(ValueError, match="image_labels"):
        caption_hubs(sim, torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1]))


def test_recorded_seeds_meet_the_chapters_margins():
    """scripts/clip_seeds.py's record of seeds 1 and 2 meets every margin chapter 11
    asserts on the shipped seed 0 (the chapter's hidden checks)."""
    import dataclasses
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "results" / "clip_seeds.json"
    record = json.loads(path.read_text())
    assert record["command"].startswith("python scripts/clip_seeds.py --out ")
    # the record was made with today's recipe: a changed CLIPTrainConfig (or CLIPConfig)
    # makes this fail rather than leave the JSON silently stale
    recipe = dataclasses.asdict(CLIPTrainConfig())
    recipe.pop("seed")
    assert record["recipe"] == recipe
    assert sorted(record["seeds"]) == ["1", "2"]
    for m in record["seeds"].values():
        assert m["zero_shot"] > 0.85 and m["zero_shot"] - sum(m["single"]) / 5 > 0.04
        assert m["seen_templates"] > m["zero_shot"] - 0.02
        assert m["i2t@5"] > 0.95 and m["i2t@1"] - m["t2i@1"] > 0.2
        assert m["i2t@5"] > m["i2t@1"] + 0.15 and m["t2i@1"] < m["t2i@5"] < 0.7
        assert 20 < m["distinct_tops"] < 42 and m["mixed_tops"] >= 5
        assert m["max_occurrence"] >= 3 and m["hub_digits"] >= 3


def test_one_recorded_seed_reproduces(tmp_path):
    """A short rerun of scripts/clip_seeds.py writes the same fields."""
    import json

    from dlbook.cli import load_script

    out = tmp_path / "seeds.json"
    load_script("clip_seeds").main(["--out", str(out), "--seeds", "3", "--steps", "3"])
    record = json.loads(out.read_text())
    assert set(record["seeds"]["3"]) >= {"zero_shot", "t2i@5", "hub_digits", "mixed_tops"}
