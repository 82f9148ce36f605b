"""dlbook.cli: the training scripts' shared command line."""

import pytest
import torch

from dlbook.cli import SCRIPTS_DIR, load_script, parse_script_args, script_parser

DOC = """Train something small.

More text that is not the description.
"""
OPTIONS = {"--steps": dict(type=int, default=7, help="optimizer steps"),
           "--no-augment": dict(action="store_true")}


def test_common_and_own_options_in_order(tmp_path, capsys):
    parser = script_parser("Train.", OPTIONS)
    flags = [a.option_strings[0] for a in parser._actions if a.option_strings][1:]  # no -h
    assert flags == ["--out", "--force", "--steps", "--no-augment", "--threads"]
    args = parse_script_args(DOC, OPTIONS, ["--out", str(tmp_path / "x.pt")])
    assert args.out == tmp_path / "x.pt" and args.steps == 7 and not args.no_augment
    assert args.force is False and args.threads is None
    with pytest.raises(SystemExit):
        parse_script_args(DOC, OPTIONS, ["--help"])
    shown = capsys.readouterr().out
    assert "Train something small." in shown and "More text" not in shown  # first line


def test_out_is_required_and_an_existing_file_is_refused_unless_force(tmp_path):
    with pytest.raises(SystemExit):
        parse_script_args(DOC, OPTIONS, ["--steps", "3"])  # no --out
    out = tmp_path / "exists.pt"
    out.write_bytes(b"precious")
    with pytest.raises(SystemExit, match="exists; pass --force"):
        parse_script_args(DOC, OPTIONS, ["--out", str(out)])
    assert out.read_bytes() == b"precious"
    assert parse_script_args(DOC, OPTIONS, ["--out", str(out), "--force"]).force


def test_threads_are_set_and_must_be_positive(tmp_path):
    before = torch.get_num_threads()
    try:
        parse_script_args(DOC, OPTIONS, ["--out", str(tmp_path / "x"), "--threads", "1"])
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(SystemExit):
        parse_script_args(DOC, OPTIONS, ["--out", str(tmp_path / "x"), "--threads", "0"])


@pytest.mark.parametrize("description, options, error", [
    (3, {}, TypeError),
    ("x", [("--steps", {})], TypeError),
    ("x", {"--out": {}}, ValueError),
])
def test_bad_arguments(description, options, error):
    with pytest.raises(error):
        script_parser(description, options)


@pytest.mark.parametrize("name", ["train_bert", "train_clip", "train_vit", "vit_vs_cnn",
                                  "clip_seeds", "train_generative", "train_diffusion"])
def test_every_script_uses_the_shared_command_line(name, capsys):
    module = load_script(name)
    assert module.main.__module__ == name
    with pytest.raises(SystemExit):
        module.main(["--help"])
    usage = capsys.readouterr().out
    assert "--out OUT" in usage and "--force" in usage and "--threads" in usage
    assert "parse_script_args" in (SCRIPTS_DIR / f"{name}.py").read_text()


def test_load_script_names_a_missing_script():
    with pytest.raises(FileNotFoundError, match="no script"):
        load_script("no_such_script")
