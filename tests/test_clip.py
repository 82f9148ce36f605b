"""Tests of dlbook.clip: the loss against transformers' CLIP loss, encoders, retrieval, learning."""

import pytest
import torch

from dlbook.clip import (
    CLIP,
    HELD_OUT_TEMPLATES,
    TRAIN_TEMPLATES,
    CLIPConfig,
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
    import importlib.util
    from pathlib import Path

    from dlbook.checkpoint import load_checkpoint

    path = Path(__file__).resolve().parents[1] / "scripts" / "train_clip.py"
    spec = importlib.util.spec_from_file_location("train_clip", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "clip.pt"
    module.main(["--out", str(out), "--steps", "2"])
    assert "wrote" in capsys.readouterr().out
    ck = load_checkpoint(out, kind="clip_digits")
    assert ck.config["steps"] == 2 and len(ck.extra["step_loss"]) == 2
    with pytest.raises(SystemExit):
        module.main(["--out", str(out), "--steps", "2"])
