"""One checkpoint format for every model in the book, and the manifest of the shipped
ones.

A checkpoint file is three parts:

1. a magic line, ``DLBOOK-CHECKPOINT``, so any other file is recognised at once;
2. a JSON header line: the format version, the kind of checkpoint (``"char_lm"``,
   ``"diffusion_digits"``, ``"training_state"``, ...), the config that rebuilds the
   model, a fingerprint of that config and of the tensors' names, shapes and dtypes, the
   size of the payload, and a SHA-256 of the header and the payload together;
3. the payload: ``torch.save`` of the state dict and of any extra records (losses,
   history).

:func:`save_checkpoint` writes atomically and never replaces a file unless told to;
:func:`load_checkpoint` verifies everything before it unpickles anything, and unpickles
with ``weights_only=True``, which builds only tensors and plain Python containers. Every
failure is a ``ValueError`` naming the file and what did not match
(``FileNotFoundError`` for a missing file). The shipped checkpoints are also listed in
``checkpoints/MANIFEST.json`` with the SHA-256 of each whole file, checked by
:func:`shipped_checkpoint` before a chapter loads one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

MAGIC = b"DLBOOK-CHECKPOINT\n"
# version 1 (scale.py's first format) had no kind and no config in the header
VERSION = 2
_SHIPPED_DIR = Path(__file__).resolve().parent / "checkpoints"
_RECORDS_DIR = Path(__file__).resolve().parent / "records"
_MANIFEST = "MANIFEST.json"
_UMASK = os.umask(0o022)  # read the process's umask (the only way is to set it) ...
os.umask(_UMASK)  # ... and put it back at once


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint, as :func:`load_checkpoint` returns it."""

    path: Path  # the file it was read from
    kind: str  # what it holds, e.g. "char_lm"
    config: dict  # what rebuilds the model (JSON types: tuples come back as lists)
    state_dict: dict  # name -> tensor (or nested dicts of them), on the CPU
    extra: dict  # records saved alongside: losses, history, metrics


def _canonical(value: Any, name: str) -> str:
    """``value`` as canonical JSON (sorted keys), or a TypeError naming ``name``."""
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{name} must hold only JSON values (dict, list, str, finite "
            f"numbers, "
            f"bool, None), got {err}"
        ) from None


def _as_path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or a Path, got {type(path).__name__}")
    return Path(path)


def _describe(value: Any) -> Any:
    """Names, shapes and dtypes of the tensors in a (nested) state dict; no values."""
    if isinstance(value, torch.Tensor):
        return [list(value.shape), str(value.dtype)]
    if isinstance(value, dict):
        return {str(k): _describe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    return type(value).__name__


def fingerprint(config: dict, state_dict: dict) -> str:
    """A short hash of the config and of the parameter names, shapes and dtypes.

    Two checkpoints share it exactly when the same config built the same set of tensors,
    whatever the values; a model of another size or another config gets another one.
    """
    described = {
        "config": json.loads(_canonical(config, "config")),
        "tensors": _describe(state_dict),
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[
        :16
    ]


def _digest(header: dict, payload: bytes) -> str:
    """SHA-256 of the header (without its own checksum) and the payload."""
    digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode() + b"\n")
    digest.update(payload)
    return digest.hexdigest()


def _check_save_arguments(kind: Any, config: Any, state_dict: Any, extra: Any) -> None:
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"kind must be a non-empty str, got {kind!r}")
    for name, value in (
        ("config", config),
        ("state_dict", state_dict),
        ("extra", extra),
    ):
        if not isinstance(value, dict):
            raise TypeError(f"{name} must be a dict, got {type(value).__name__}")
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise TypeError(f"{name} must have str keys, got {bad[0]!r}")
    _canonical(config, "config")


def write_atomically(path: str | Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, fsync it, then ``os.replace`` it into
    place.

    ``os.replace`` is atomic on POSIX and Windows, so a crash or an error leaves either
    the old file or the new one at ``path``, never a part-written one.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private; give it the usual mode
        os.chmod(tmp, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):  # POSIX: make the rename itself durable
        directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def save_checkpoint(
    path: str | Path,
    *,
    kind: str,
    config: dict,
    state_dict: dict,
    extra: dict | None = None,
    force: bool = False,
) -> Path:
    """Write a checkpoint atomically and return its path.

    Args:
        path: the file to write; its directory must exist.
        kind: what the checkpoint holds, checked again when it is loaded.
        config: JSON values that rebuild the model; stored readable in the header.
        state_dict: name -> tensor (``model.state_dict()``), or nested dicts of tensors.
        extra: records to keep with the weights (losses, history); tensors allowed.
        force: replace an existing file; without it an existing file is refused.
    """
    extra = {} if extra is None else extra
    _check_save_arguments(kind, config, state_dict, extra)
    if not isinstance(force, bool):
        raise TypeError(f"force must be a bool, got {type(force).__name__}")
    path = _as_path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass force=True to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"directory {path.parent} does not exist")
    buffer = io.BytesIO()
    # fails before any write
    torch.save({"state_dict": state_dict, "extra": extra}, buffer)
    payload = buffer.getvalue()
    header = {
        "version": VERSION,
        "kind": kind,
        "config": config,
        "fingerprint": fingerprint(config, state_dict),
        "size": len(payload),
    }
    header["sha256"] = _digest(header, payload)
    write_atomically(path, MAGIC + json.dumps(header).encode() + b"\n" + payload)
    return path


def read_verified(path: str | Path) -> tuple[dict, bytes]:
    """The header and payload of ``path``, after checking magic, version, size and
    SHA-256.

    Nothing is unpickled here: a file that fails a check never reaches ``torch.load``.
    """
    path = _as_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    data = path.read_bytes()
    if not data:
        raise ValueError(f"{path} is empty (0 bytes), not a dlbook checkpoint")
    if not data.startswith(MAGIC):
        raise ValueError(
            f"{path} is not a dlbook checkpoint: it does not start with "
            f"{MAGIC.strip().decode()!r} ({len(data)} bytes)"
        )
    header_line, _, payload = data[len(MAGIC) :].partition(b"\n")
    try:
        header = json.loads(header_line)
    except ValueError as err:
        raise ValueError(f"{path} has a corrupted header: {err}") from None
    fields = ("version", "kind", "config", "fingerprint", "size", "sha256")
    if not isinstance(header, dict) or any(k not in header for k in fields):
        raise ValueError(f"{path} has a corrupted header: expected the fields {fields}")
    digest, version, size = header.pop("sha256"), header["version"], header["size"]
    if version != VERSION:
        raise ValueError(
            f"{path} has format version {version}, this code reads {VERSION}"
        )
    if len(payload) != size:
        raise ValueError(
            f"{path} is truncated or padded: payload of {len(payload)} "
            f"bytes, "
            f"header says {size}"
        )
    if _digest(header, payload) != digest:
        raise ValueError(f"{path} is corrupted: its SHA-256 checksum does not match")
    return header, payload


def _config_difference(saved: dict, expected: dict) -> str:
    """The keys on which two configs differ, as 'key: saved X, expected Y'."""
    saved, expected = (
        json.loads(_canonical(saved, "config")),
        json.loads(_canonical(expected, "expected_config")),
    )
    keys = sorted(set(saved) | set(expected))
    return "; ".join(
        f"{k}: saved {saved.get(k, '(absent)')!r}, expected "
        f"{expected.get(k, '(absent)')!r}"
        for k in keys
        if saved.get(k) != expected.get(k)
    )


def load_checkpoint(
    path: str | Path, *, kind: str | None = None, expected_config: dict | None = None
) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`, verifying it before
    unpickling.

    Raises ``FileNotFoundError`` if there is no file, and ``ValueError`` naming the file
    and what did not match if it is not a checkpoint, has another format version, is
    truncated or corrupted, holds another ``kind``, or was saved with another config
    than ``expected_config``. Tensors are loaded onto the CPU; ``load_state_dict`` then
    copies them to the device of the model they fill.
    """
    if kind is not None and not isinstance(kind, str):
        raise TypeError(f"kind must be a str or None, got {type(kind).__name__}")
    if expected_config is not None and not isinstance(expected_config, dict):
        raise TypeError(
            f"expected_config must be a dict or None, got "
            f"{type(expected_config).__name__}"
        )
    path = _as_path(path)
    header, payload = read_verified(path)
    if kind is not None and header["kind"] != kind:
        raise ValueError(
            f"{path} holds a {header['kind']!r} checkpoint, expected {kind!r}"
        )
    if expected_config is not None:
        difference = _config_difference(header["config"], expected_config)
        if difference:
            raise ValueError(
                f"{path} was saved for another model or config: {difference}"
            )
    try:
        content = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
        state_dict, extra = content["state_dict"], content["extra"]
    except Exception as err:  # the unpickler fails in many ways on bytes it cannot read
        # torch's own message advises an unsafe reload; ours names the file and the
        # error only
        raise ValueError(
            f"{path} has a payload that is not a safe checkpoint ({type(err).__name__})"
        ) from None
    if fingerprint(header["config"], state_dict) != header["fingerprint"]:
        raise ValueError(
            f"{path} holds tensors whose names or shapes do not match its "
            f"config "
            f"(fingerprint {header['fingerprint']})"
        )
    return Checkpoint(path, header["kind"], header["config"], state_dict, extra)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a whole file, as the manifest records it."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(directory: str | Path | None = None) -> dict:
    """The manifest of the shipped checkpoints: file name -> record (kind, sha256, size,
    commands). ``directory`` defaults to the package's ``checkpoints`` folder."""
    directory = _SHIPPED_DIR if directory is None else Path(directory)
    manifest = json.loads((directory / _MANIFEST).read_text())
    return {entry["file"]: entry for entry in manifest["checkpoints"]}


def verify_file(path: str | Path, entry: dict) -> Path:
    """Check a file's size and SHA-256 against its manifest ``entry``; return its
    path."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"shipped checkpoint {path} is missing")
    size, digest = path.stat().st_size, file_sha256(path)
    if size != entry["size"] or digest != entry["sha256"]:
        raise ValueError(
            f"{path} does not match {_MANIFEST}: size {size}, SHA-256 "
            f"{digest[:16]}..., the manifest says size {entry['size']}, "
            f"SHA-256 "
            f"{entry['sha256'][:16]}..."
        )
    return path


def shipped_checkpoint(name: str, directory: str | Path | None = None) -> Path:
    """The path of a shipped checkpoint, after checking it byte for byte against the
    manifest.

    Args:
        name: a file name listed in ``checkpoints/MANIFEST.json``, e.g.
            ``"gpt_char_pydoc.pt"``.
        directory: where the files and the manifest are (the package's, by default).
    """
    directory = _SHIPPED_DIR if directory is None else Path(directory)
    manifest = read_manifest(directory)
    if name not in manifest:
        raise ValueError(f"name must be one of {sorted(manifest)}, got {name!r}")
    return verify_file(directory / name, manifest[name])


def shipped_record(name: str) -> dict:
    """A measurement record shipped with the package (``dlbook/records/NAME.json``):
    the runs a script in ``scripts/`` made (on seeds too slow to train in a chapter)
    and the command that made them, so chapters read them on Colab too.

    Args:
        name: the record's name without ``.json``, e.g. ``"tokenizer_seeds"``.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    names = sorted(p.stem for p in _RECORDS_DIR.glob("*.json"))
    if name not in names:
        raise ValueError(f"name must be one of {names}, got {name!r}")
    record = json.loads((_RECORDS_DIR / f"{name}.json").read_text())
    if not isinstance(record, dict) or "command" not in record or "runs" not in record:
        raise ValueError(f"record {name!r} needs a 'command' and its 'runs'")
    return record


def verify_manifest(directory: str | Path | None = None) -> dict[str, Path]:
    """Check every file the manifest lists; return name -> path. Raises on the first
    mismatch."""
    directory = _SHIPPED_DIR if directory is None else Path(directory)
    return {
        name: verify_file(directory / name, entry)
        for name, entry in read_manifest(directory).items()
    }
