"""The training scripts in scripts/: a required --out, no silent overwrite, a loadable result."""

import importlib.util
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from dlbook.checkpoint import shipped_checkpoint
from dlbook.gpt import (
    GPT,
    LSTM_CHECKPOINT,
    SHIPPED_LM_TRAINING,
    GPTConfig,
    TrainGPTConfig,
    build_char_lm,
    load_char_lm,
    train_gpt,
    training_from_record,
)
from dlbook.rnn import CharLSTM, CharLSTMConfig
from dlbook.text import CharCorpus, evaluate_char_lm

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
TINY = ["--steps", "3", "--eval_every", "2", "--n_layers", "1", "--d_model", "16",
        "--hidden_size", "16", "--block_size", "32", "--eval_windows", "8", "--warmup_steps", "1"]


def script(name):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind, model_class", [("gpt", GPT), ("lstm", CharLSTM)])
def test_train_gpt_script_round_trip(tmp_path, capsys, kind, model_class):
    out = tmp_path / "tiny.pt"
    script("train_gpt").main(["--model", kind, *TINY, "--out", str(out)])
    assert "saved" in capsys.readouterr().out
    model, vocab, record = load_char_lm(out)
    assert isinstance(model, model_class) and record["model"] == kind
    assert record["steps"] == 3 and record["history"]["step"] == [2, 3]
    assert len(record["history"]["step_loss"]) == 3  # the loss of every step is kept
    assert record["train_config"]["lm"]["training"]["schedule"]["warmup_steps"] == 1
    corpus = CharCorpus.pydoc()
    assert vocab.chars == corpus.vocab.chars
    val = evaluate_char_lm(model, corpus.val, 32, record["eval_windows"])
    assert val == pytest.approx(record["val_loss_subset"], abs=1e-4)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_char_lm(tmp_path / "missing.pt")


def test_train_gpt_script_needs_out_and_refuses_to_overwrite(tmp_path, capsys):
    train_gpt_script = script("train_gpt")
    with pytest.raises(SystemExit):
        train_gpt_script.main(TINY)  # no --out
    out = tmp_path / "exists.pt"
    out.write_bytes(b"precious")
    with pytest.raises(SystemExit, match="exists; pass --force"):
        train_gpt_script.main([*TINY, "--out", str(out)])
    assert out.read_bytes() == b"precious"
    train_gpt_script.main([*TINY, "--out", str(out), "--force"])
    assert load_char_lm(out)[2]["steps"] == 3


def test_train_diffusion_script_needs_out_and_refuses_to_overwrite(tmp_path):
    train_diffusion_script = script("train_diffusion")
    with pytest.raises(SystemExit):
        train_diffusion_script.main(["--steps", "1"])  # no --out
    out = tmp_path / "exists.pt"
    out.write_bytes(b"precious")
    with pytest.raises(SystemExit, match="exists; pass --force"):
        train_diffusion_script.main(["--steps", "1", "--out", str(out)])
    assert out.read_bytes() == b"precious"


def test_the_config_type_chooses_the_model_and_the_gpt_knows_its_context():
    gpt = GPTConfig(vocab_size=11, block_size=16, n_layers=1, n_heads=2, d_model=8)
    assert isinstance(build_char_lm(gpt), GPT)
    assert isinstance(build_char_lm(CharLSTMConfig(vocab_size=11)), CharLSTM)
    assert TrainGPTConfig(model=gpt).block_size == 16
    with pytest.raises(TypeError, match="GPTConfig or a CharLSTMConfig"):
        TrainGPTConfig(model="gpt")
    with pytest.raises(ValueError, match="set lm.block_size"):
        TrainGPTConfig(model=CharLSTMConfig(vocab_size=11))
    with pytest.raises(ValueError, match="vocab_size is 11"):
        train_gpt(TrainGPTConfig(model=gpt), CharCorpus.from_text("abc" * 50))
    assert torch.is_tensor(next(build_char_lm(gpt).parameters()))


def test_the_nested_config_describes_the_shipped_checkpoints_and_new_records(tmp_path):
    _, _, gpt_record = load_char_lm()
    config = training_from_record(gpt_record)
    assert config == replace(TrainGPTConfig(model=GPTConfig(**gpt_record["model_config"])),
                             lm=replace(SHIPPED_LM_TRAINING, training=replace(
                                 SHIPPED_LM_TRAINING.training, eval_every=100)))
    assert config.block_size == gpt_record["model_config"]["block_size"] == 128
    _, _, lstm_record = load_char_lm(shipped_checkpoint(LSTM_CHECKPOINT))
    lstm = training_from_record(lstm_record)
    assert isinstance(lstm.model, CharLSTMConfig) and lstm.block_size == 128
    assert lstm.lm.training.steps == lstm_record["steps"] and lstm.lm.training.lr == 0.01
    out = tmp_path / "tiny.pt"
    script("train_gpt").main(["--model", "lstm", *TINY, "--out", str(out)])
    record = load_char_lm(out)[2]
    again = training_from_record(record)
    assert again.lm.training.steps == 3 and again.block_size == 32
    assert again.lm.training.schedule.warmup_steps == 1
