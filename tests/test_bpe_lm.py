"""Chapter 7's GPT on BPE tokens: dlbook.bpe's BPECorpus, per-character losses, the
bpe_lm checkpoint, and scripts/train_gpt.py --tokenizer bpe."""

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dlbook.bpe import (
    BPE_LM_KIND,
    BPECorpus,
    BPETokenizer,
    evaluate_per_char,
    load_bpe_lm,
    per_char_loss,
    save_bpe_lm,
)
from dlbook.checkpoint import load_checkpoint
from dlbook.gpt import GPT, GPTConfig, load_char_lm
from dlbook.text import CharCorpus, evaluate_char_lm

TEXT = "the cat sat on the mat; the dog sat on the log. " * 30 + "a cat on a mat."
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture(scope="module")
def corpus():
    return BPECorpus.from_char_corpus(CharCorpus.from_text(TEXT), vocab_size=40)


def _gpt(vocab_size, block_size=8):
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layers=1,
                         n_heads=2, d_model=16, dropout=0.0))


def test_corpus_is_the_char_corpus_re_encoded_with_a_bpe_of_its_training_text(corpus):
    chars = CharCorpus.from_text(TEXT)
    train_text, val_text = chars.vocab.decode(chars.train), chars.vocab.decode(chars.val)
    assert corpus.vocab.merges == BPETokenizer.train(train_text, 40).merges
    assert corpus.vocab.decode(corpus.train) == train_text
    assert corpus.vocab.decode(corpus.val) == val_text
    assert (corpus.train_chars, corpus.val_chars) == (len(train_text), len(val_text))
    assert corpus.chars_per_token == len(val_text) / len(corpus.val) > 1.5
    assert corpus.train.dtype == corpus.val.dtype == torch.long
    assert f"{len(corpus.vocab)} tokens" in repr(corpus)


def test_corpus_rejects_wrong_types():
    with pytest.raises(TypeError, match="corpus must be a CharCorpus"):
        BPECorpus.from_char_corpus(TEXT)
    with pytest.raises(TypeError, match="tokenizer must be a BPETokenizer"):
        BPECorpus.from_char_corpus(CharCorpus.from_text(TEXT), tokenizer="bpe")


def test_per_char_loss_spreads_the_total_over_the_characters():
    assert per_char_loss(3.0, 100, 250) == pytest.approx(1.2)
    assert per_char_loss(1.5, 7, 7) == 1.5  # characters as tokens: unchanged
    with pytest.raises(ValueError, match="n_chars"):
        per_char_loss(1.0, 10, 0)


def test_evaluate_per_char_matches_torch_cross_entropy(corpus):
    # a validation split of 1 + 3 * T tokens: three windows cover every target once
    block = 8
    val = corpus.val[: 1 + 3 * block]
    part = BPECorpus(corpus.vocab, corpus.train, val, corpus.train_chars,
                     len(corpus.vocab.decode(val)))
    model = _gpt(len(corpus.vocab), block).eval()
    with torch.no_grad():
        logits = model(val[:-1].view(3, block))
        total = F.cross_entropy(logits.flatten(0, 1), val[1:], reduction="sum").item()
    expected = total / (len(val) - 1) * len(val) / part.val_chars
    assert evaluate_per_char(model, part, block) == pytest.approx(expected, rel=1e-6)


def test_with_no_merges_the_loss_per_char_is_the_loss_per_token():
    chars = CharCorpus.from_text(TEXT)
    tokenizer = BPETokenizer(sorted(set(TEXT)), [])
    corpus = BPECorpus.from_char_corpus(chars, tokenizer=tokenizer)
    assert corpus.chars_per_token == 1.0
    model = _gpt(len(tokenizer))
    assert evaluate_per_char(model, corpus, 8) == evaluate_char_lm(model, corpus.val, 8)


def test_save_and_load_round_trip_rebuilds_the_tokenizer(tmp_path, corpus):
    model = _gpt(len(corpus.vocab))
    path = tmp_path / "bpe.pt"
    record = save_bpe_lm(path, model, corpus, block_size=8, eval_windows=4,
                         summary={"steps": 0})
    loaded, tokenizer, saved = load_bpe_lm(path, tokenizer=corpus.vocab)
    assert tokenizer.chars == corpus.vocab.chars and tokenizer.merges == corpus.vocab.merges
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor.half().float())
    assert not loaded.training and saved["steps"] == 0
    assert saved["val_loss_per_char"] == pytest.approx(
        record["val_loss"] * len(corpus.val) / corpus.val_chars)
    assert evaluate_per_char(loaded, corpus, 8) == pytest.approx(saved["val_loss_per_char"],
                                                                  abs=1e-6)
    assert load_checkpoint(path).kind == BPE_LM_KIND
    with pytest.raises(ValueError, match="holds a 'bpe_lm' checkpoint"):
        load_char_lm(path)  # not a character model
    other = BPETokenizer(corpus.vocab.chars, corpus.vocab.merges[:-1])
    with pytest.raises(ValueError, match="other merges"):
        load_bpe_lm(path, tokenizer=other)
    with pytest.raises(FileExistsError):
        save_bpe_lm(path, model, corpus, block_size=8, eval_windows=4)


def test_save_refuses_a_model_of_another_vocabulary(tmp_path, corpus):
    with pytest.raises(ValueError, match="vocab_size is 41"):
        save_bpe_lm(tmp_path / "x.pt", _gpt(41), corpus, block_size=8, eval_windows=4)
    with pytest.raises(TypeError, match="model must be a GPT"):
        save_bpe_lm(tmp_path / "x.pt", torch.nn.Linear(2, 2), corpus, block_size=8,
                    eval_windows=4)


def test_train_gpt_script_trains_on_bpe_tokens(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("train_gpt", SCRIPTS / "train_gpt.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "tiny_bpe.pt"
    script.main(["--tokenizer", "bpe", "--vocab_size", "200", "--steps", "2",
                 "--eval_every", "2", "--n_layers", "1", "--d_model", "16",
                 "--block_size", "16", "--eval_windows", "4", "--warmup_steps", "1",
                 "--out", str(out)])
    assert "per character" in capsys.readouterr().out
    chars = CharCorpus.pydoc()
    train_text = chars.vocab.decode(chars.train)  # the BPE learns from this split only
    model, tokenizer, record = load_bpe_lm(out)
    assert tokenizer.merges == BPETokenizer.train(train_text, 200).merges
    assert model.config.vocab_size == 200 and record["tokenizer"] == "bpe"
    assert record["val_chars"] == len(chars.val) and record["steps"] == 2
    with pytest.raises(SystemExit):
        script.main(["--tokenizer", "bpe", "--model", "lstm", "--out", str(tmp_path / "y")])
