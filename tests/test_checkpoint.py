"""Tests of dlbook.checkpoint: the one checkpoint format, its checks, and the shipped manifest."""

import argparse
import io
import json
import shutil

import pytest
import torch
from torch import nn

from dlbook import checkpoint
from dlbook.bert import CHECKPOINT_FILE
from dlbook.bpe import GPT_BPE_CHECKPOINT, BPETokenizer, load_bpe_lm
from dlbook.checkpoint import (
    load_checkpoint,
    read_manifest,
    save_checkpoint,
    shipped_checkpoint,
    verify_manifest,
)
from dlbook.digits import DIGITS_CHECKPOINT, load_trained_digits
from dlbook.gpt import GPT_CHECKPOINT, LSTM_CHECKPOINT, load_char_lm
from dlbook.ppo import CARTPOLE_CHECKPOINT
from dlbook.scoreboard import GENERATIVE_CHECKPOINT
from dlbook.text import CharCorpus, CharVocab

# every shipped file, each trained by the command its manifest entry records (chapters 5-14)
SHIPPED = [GPT_CHECKPOINT, LSTM_CHECKPOINT, DIGITS_CHECKPOINT, CHECKPOINT_FILE, "clip_digits.pt",
           "vit_digits.pt", "vit_vs_cnn.pt", GENERATIVE_CHECKPOINT, CARTPOLE_CHECKPOINT,
           GPT_BPE_CHECKPOINT]
CONFIG = {"d_in": 3, "d_out": 2, "sizes": [4, 5]}


def _saved(tmp_path, name="model.ckpt", **changes):
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    arguments = {"kind": "toy", "config": CONFIG, "state_dict": model.state_dict(),
                 "extra": {"val_loss": 1.2345678901234567, "history": [3.0, 2.0]}, **changes}
    return save_checkpoint(tmp_path / name, **arguments), model


def _no_unsafe_advice(message: str) -> None:
    assert "weights_only=False" not in message and "weights_only" not in message, message


def test_round_trip_keeps_tensors_config_and_records_exactly(tmp_path):
    path, model = _saved(tmp_path)
    loaded = load_checkpoint(path, kind="toy", expected_config=CONFIG)
    assert loaded.path == path and loaded.kind == "toy" and loaded.config == CONFIG
    assert loaded.state_dict.keys() == model.state_dict().keys()
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict[name], tensor)
    assert loaded.extra == {"val_loss": 1.2345678901234567, "history": [3.0, 2.0]}
    with pytest.raises(AttributeError):
        loaded.kind = "other"  # frozen
    assert [p.name for p in tmp_path.iterdir()] == ["model.ckpt"]  # no temporary file left


def test_nested_state_and_float16_survive(tmp_path):
    state = {"model": {"w": torch.randn(2, 3).half()}, "step": 7}
    path = save_checkpoint(tmp_path / "x.ckpt", kind="nested", config={}, state_dict=state)
    loaded = load_checkpoint(path)
    assert loaded.state_dict["model"]["w"].dtype == torch.float16
    assert torch.equal(loaded.state_dict["model"]["w"], state["model"]["w"])
    assert loaded.state_dict["step"] == 7 and loaded.extra == {}


def test_refuses_to_overwrite_without_force(tmp_path):
    path, _ = _saved(tmp_path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match=str(path)):
        _saved(tmp_path, extra={"val_loss": 9.0})
    assert path.read_bytes() == before
    _saved(tmp_path, extra={"val_loss": 9.0}, force=True)
    assert load_checkpoint(path).extra == {"val_loss": 9.0}


def test_failed_save_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch):
    path, _ = _saved(tmp_path)
    before = path.read_bytes()

    def fail_midway(data, f, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        _saved(tmp_path, force=True)
    monkeypatch.undo()
    assert path.read_bytes() == before

    def fail_on_fsync(fd):
        raise OSError("fsync failed")  # the temporary file exists and is half written

    monkeypatch.setattr(checkpoint.os, "fsync", fail_on_fsync)
    with pytest.raises(OSError, match="fsync failed"):
        _saved(tmp_path, force=True)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.ckpt"]


@pytest.mark.parametrize("changes, error, match", [
    ({"kind": ""}, TypeError, "kind must be a non-empty str"),
    ({"kind": 3}, TypeError, "kind must be a non-empty str"),
    ({"config": [1]}, TypeError, "config must be a dict, got list"),
    ({"config": {"f": lambda: 0}}, TypeError, "config must hold only JSON values"),
    ({"config": {"x": float("nan")}}, TypeError, "config must hold only JSON values"),
    ({"state_dict": [torch.zeros(1)]}, TypeError, "state_dict must be a dict, got list"),
    ({"state_dict": {1: torch.zeros(1)}}, TypeError, "state_dict must have str keys"),
    ({"extra": "loss"}, TypeError, "extra must be a dict, got str"),
    ({"force": 1}, TypeError, "force must be a bool"),
])
def test_save_checks_its_arguments(tmp_path, changes, error, match):
    with pytest.raises(error, match=match):
        _saved(tmp_path, **changes)
    assert list(tmp_path.iterdir()) == []


def test_load_checks_its_arguments(tmp_path):
    path, _ = _saved(tmp_path)
    with pytest.raises(TypeError, match="path must be a str or a Path, got int"):
        load_checkpoint(3)
    with pytest.raises(TypeError, match="kind must be a str or None, got int"):
        load_checkpoint(path, kind=1)
    with pytest.raises(TypeError, match="expected_config must be a dict or None, got list"):
        load_checkpoint(path, expected_config=[1])


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        load_checkpoint(tmp_path / "missing.ckpt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _saved(tmp_path, name="no/such/dir.ckpt")


def test_wrong_kind_and_mismatched_config_are_refused(tmp_path):
    path, _ = _saved(tmp_path)
    with pytest.raises(ValueError, match=rf"{path}.*'toy' checkpoint, expected 'char_lm'"):
        load_checkpoint(path, kind="char_lm")
    wider = {**CONFIG, "d_out": 3}
    with pytest.raises(ValueError, match=rf"{path} was saved for another model or config: "
                                         r"d_out: saved 2, expected 3"):
        load_checkpoint(path, expected_config=wider)


@pytest.mark.parametrize("damage, match", [
    (lambda data: b"", "is empty"),
    (lambda data: data[: len(data) // 2], "truncated"),
    (lambda data: data[:-1], "truncated"),
    (lambda data: data + b"\0", "padded"),
    (lambda data: bytes(range(256)) * 40, "not a dlbook checkpoint"),
    (lambda data: b"PK\x03\x04" + data[4:], "not a dlbook checkpoint"),
    (lambda data: checkpoint.MAGIC + b"{not json\n" + data[-50:], "corrupted header"),
    (lambda data: checkpoint.MAGIC + b"[1, 2]\n" + data[-50:], "corrupted header"),
    (lambda data: data.replace(b'"version": 2', b'"version": 1', 1), "format version 1"),
    (lambda data: data.replace(b'"d_out": 2', b'"d_out": 3', 1), "corrupted"),
])
def test_damaged_files_are_refused_with_the_file_named(tmp_path, damage, match):
    path, _ = _saved(tmp_path)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError, match=match) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    _no_unsafe_advice(str(info.value))


def _torch_payload_with_a_forbidden_object() -> bytes:
    buffer = io.BytesIO()
    torch.save({"state_dict": {}, "extra": {"args": argparse.Namespace(lr=1)}}, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("payload", [b"random bytes that are not a torch file" * 10,
                                     _torch_payload_with_a_forbidden_object()],
                         ids=["random", "forbidden-global"])
def test_a_payload_torch_refuses_gives_no_unsafe_advice(tmp_path, payload):
    """A file whose checksums are right but whose payload torch refuses to unpickle safely."""
    header = {"version": checkpoint.VERSION, "kind": "toy", "config": {},
              "fingerprint": "0" * 16, "size": len(payload)}
    header["sha256"] = checkpoint._digest(dict(header), payload)
    path = tmp_path / "evil.ckpt"
    path.write_bytes(checkpoint.MAGIC + json.dumps(header).encode() + b"\n" + payload)
    with pytest.raises(ValueError, match="not a safe checkpoint") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    _no_unsafe_advice(str(info.value))


def test_every_single_byte_flip_is_refused(tmp_path):
    path, _ = _saved(tmp_path)
    data = path.read_bytes()
    for i in range(0, len(data), max(1, len(data) // 200)):
        flipped = bytearray(data)
        flipped[i] ^= 0x01
        path.write_bytes(bytes(flipped))
        with pytest.raises(ValueError, match=str(path)):
            load_checkpoint(path)


# ----- the shipped checkpoints and their manifest -----

def test_manifest_lists_every_shipped_file_with_its_hash():
    manifest = read_manifest()
    assert sorted(manifest) == sorted(SHIPPED)
    directory = checkpoint._SHIPPED_DIR
    assert sorted(p.name for p in directory.iterdir() if p.name != "MANIFEST.json") == \
        sorted(SHIPPED)
    for name, path in verify_manifest().items():
        entry = manifest[name]
        assert entry["sha256"] == checkpoint.file_sha256(path)
        assert entry["size"] == path.stat().st_size < 4e6  # a few MB at most
        assert entry["command"].removeprefix("OMP_NUM_THREADS=1 ").startswith("python scripts/")
        assert entry["retrained"] is True and "original_command" not in entry
        assert load_checkpoint(path).kind == entry["kind"]
    with pytest.raises(ValueError, match="name must be one of"):
        shipped_checkpoint("gpt.pt")


@pytest.fixture
def shipped_copy(tmp_path):
    """A copy of the shipped directory (files and manifest) that a test may damage."""
    copy = tmp_path / "checkpoints"
    shutil.copytree(checkpoint._SHIPPED_DIR, copy)
    return copy


@pytest.mark.parametrize("name", SHIPPED)
def test_a_changed_byte_in_a_shipped_file_is_refused(shipped_copy, name):
    path = shipped_copy / name
    data = bytearray(path.read_bytes())
    data[len(data) * 2 // 3] ^= 0x01  # inside the tensors
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{path} does not match MANIFEST.json"):
        shipped_checkpoint(name, shipped_copy)
    with pytest.raises(ValueError, match=rf"{path} is corrupted"):  # and without the manifest
        load_checkpoint(path)
    with pytest.raises(ValueError, match=str(path)):
        verify_manifest(shipped_copy)
    loader = {DIGITS_CHECKPOINT: load_trained_digits, GPT_CHECKPOINT: load_char_lm,
              LSTM_CHECKPOINT: load_char_lm, GPT_BPE_CHECKPOINT: load_bpe_lm}.get(
                  name, load_checkpoint)
    with pytest.raises(ValueError, match=str(path)):
        loader(path)


def test_shipped_bpe_gpt_carries_the_tokenizer_it_was_trained_with():
    corpus = CharCorpus.pydoc()
    # the recipe: chapter 7's 512-token BPE, learned on the training split only
    bpe = BPETokenizer.train(corpus.vocab.decode(corpus.train), vocab_size=512)
    model, tokenizer, record = load_bpe_lm(tokenizer=bpe)  # merges checked one by one
    assert tokenizer.merges == bpe.merges and model.config.vocab_size == 512
    assert record["tokenizer"] == "bpe" and record["steps"] == 3000
    assert record["val_chars"] == len(corpus.val)
    with pytest.raises(ValueError, match="other merges"):
        load_bpe_lm(tokenizer=BPETokenizer(bpe.chars, bpe.merges[:-1]))
    with pytest.raises(ValueError, match="'char_lm' checkpoint, expected 'bpe_lm'"):
        load_bpe_lm(checkpoint._SHIPPED_DIR / GPT_CHECKPOINT)


def test_loaders_refuse_the_wrong_kind(shipped_copy):
    with pytest.raises(ValueError, match="'diffusion_digits' checkpoint, expected 'char_lm'"):
        load_char_lm(shipped_copy / DIGITS_CHECKPOINT)
    with pytest.raises(ValueError, match="'char_lm' checkpoint, expected 'diffusion_digits'"):
        load_trained_digits(shipped_copy / GPT_CHECKPOINT)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_char_lm(shipped_copy / "missing.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_trained_digits(shipped_copy / "missing.pt")


def test_a_vocabulary_one_symbol_short_is_refused(shipped_copy):
    model, vocab, record = load_char_lm()
    assert len(vocab) == 103
    short = CharVocab(vocab.chars[:-1])
    with pytest.raises(ValueError, match=r"vocabulary of 103 characters, the corpus has 102"):
        load_char_lm(vocab=short)
    # a checkpoint saved with one symbol fewer, intact and consistent, is refused too
    saved = load_checkpoint(shipped_copy / GPT_CHECKPOINT)
    config = {**saved.config, "chars": saved.config["chars"][:-1],
              "model_config": {**saved.config["model_config"], "vocab_size": 102}}
    state = {k: v[:102] if v.shape[:1] == (103,) else v for k, v in saved.state_dict.items()}
    path = save_checkpoint(shipped_copy / "short.pt", kind="char_lm", config=config,
                           state_dict=state, extra=saved.extra)
    with pytest.raises(ValueError, match=rf"{path} has a vocabulary of 102 characters, the "
                                         r"corpus has 103: missing \['"):
        load_char_lm(path)
