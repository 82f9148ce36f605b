"""One-off conversion of the shipped checkpoints to dlbook.checkpoint's format; no retraining.

Reads the files of the old formats (plain ``torch.save`` dicts; the digits model as a ``.pt``
plus a ``.json`` of its metrics), re-saves exactly the same tensors (the character models stay
float16) and records in one verified checkpoint each, checks that every tensor and every
recorded number came through unchanged, and writes ``dlbook/checkpoints/MANIFEST.json``.

    python tools/convert_checkpoints.py OLD_DIR NEW_DIR

OLD_DIR holds the old files, e.g. extracted with
``git show ecfe84c:dlbook/checkpoints/gpt_char_pydoc.pt > old/gpt_char_pydoc.pt``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from dlbook.checkpoint import file_sha256, load_checkpoint, save_checkpoint
from dlbook.digits import DIGITS_KIND
from dlbook.gpt import CHAR_LM_KIND

SOURCE_COMMIT = "ecfe84c"  # the last commit with the old formats
NOTE = ("Converted from the old format without retraining: the same tensors and records, "
        f"re-saved in dlbook.checkpoint's format (tools/convert_checkpoints.py, from commit "
        f"{SOURCE_COMMIT}). These files were not retrained when converted. 'original_command' "
        "is the command that trained each file, reconstructed from its stored train_config or "
        "recipe (only settings that differ from the defaults are passed); 'command' is the "
        "same run with the training scripts in scripts/.")
COMMANDS = {  # reconstructed from each file's train_config / recipe: only non-defaults passed
    "gpt_char_pydoc.pt": {
        "original_command": "python -m dlbook.train_gpt --eval_every 100",
        "command": "python scripts/train_gpt.py --out gpt_char_pydoc.pt --eval_every 100",
    },
    "lstm_char_pydoc.pt": {
        "original_command": "python -m dlbook.train_gpt --model lstm --max_steps 100000 "
                            "--max_minutes 27.29 --lr 0.01 --eval_every 100",
        "command": "python scripts/train_gpt.py --out lstm_char_pydoc.pt --model lstm "
                   "--steps 8976 --lr 0.01 --min_lr 0.0001 --eval_every 100",
    },
    "diffusion_digits.pt": {
        "original_command": "python -m dlbook.train_diffusion",
        "command": "python scripts/train_diffusion.py --out diffusion_digits.pt",
    },
}
COMMAND_NOTE = (
    "'command' is the closest run with scripts/, not a bit-identical rerun: the old "
    "dlbook.train_gpt decayed the learning rate over the fraction of steps or of the CPU-time "
    "budget used, whichever was further along (the LSTM's budget of 27.29 CPU minutes ended "
    "at step 8976), while scripts/train_gpt.py decays it over --steps; the new "
    "dlbook.train loop also draws its batches and noise through one shared training loop.")


def _equal(a, b) -> bool:
    """Exact equality of nested records, tensors compared bit for bit."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def convert_char_lm(old: Path, new: Path) -> None:
    record = torch.load(old, map_location="cpu", weights_only=True)
    state = record.pop("state_dict")
    config = {"model": record.pop("model"), "model_config": record.pop("model_config"),
              "chars": record.pop("chars")}
    save_checkpoint(new, kind=CHAR_LM_KIND, config=config, state_dict=state, extra=record)
    back = load_checkpoint(new, kind=CHAR_LM_KIND)
    assert back.config == config and _equal(back.state_dict, state) and _equal(back.extra, record)


def convert_digits(old: Path, new: Path) -> None:
    saved = torch.load(old, map_location="cpu", weights_only=True)
    metrics = json.loads(old.with_suffix(".json").read_text())
    assert metrics == saved["metrics"], "the .json and the .pt disagree"
    recipe = saved["recipe"]
    config = {"diffusion": recipe["diffusion"], "unet": dict(recipe["unet"]),
              "classifier": dict(recipe["classifier"])}
    config = json.loads(json.dumps(config))  # tuples as JSON lists, as loading returns them
    state = {"model": saved["model"], "classifier": saved["classifier"]}
    extra = {"recipe": recipe, "metrics": saved["metrics"]}
    save_checkpoint(new, kind=DIGITS_KIND, config=config, state_dict=state, extra=extra)
    back = load_checkpoint(new, kind=DIGITS_KIND)
    assert _equal(back.state_dict, state) and _equal(back.extra, extra)


def main(old_dir: Path, new_dir: Path) -> None:
    kinds = {}
    for name in ("gpt_char_pydoc.pt", "lstm_char_pydoc.pt"):
        convert_char_lm(old_dir / name, new_dir / name)
        kinds[name] = CHAR_LM_KIND
    convert_digits(old_dir / "diffusion_digits.pt", new_dir / "diffusion_digits.pt")
    kinds["diffusion_digits.pt"] = DIGITS_KIND
    entries = [{"file": name, "kind": kind, "size": (new_dir / name).stat().st_size,
                "sha256": file_sha256(new_dir / name), **COMMANDS[name], "retrained": False}
               for name, kind in kinds.items()]
    manifest = {"format": "dlbook.checkpoint version 2", "note": NOTE,
                "command_note": COMMAND_NOTE, "checkpoints": entries}
    (new_dir / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
