"""The command line shared by the training scripts in ``scripts/``.

Every script writes one result file and takes the same three options: ``--out`` (required),
``--force`` (replace an existing ``--out``) and ``--threads`` (torch CPU threads). A script
lists only its own options, as ``{flag: add_argument keywords}``, and calls
``parse_script_args``, which builds the parser, refuses an existing ``--out`` before any
training starts, and sets the thread count. ``load_script`` imports a script as a module,
so that tests can call its ``main``.
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

OUT_HELP = "checkpoint path; an existing file is refused unless --force"
SCRIPTS_DIR = Path(__file__).resolve().parents[1] / "scripts"


def _positive_int(text: str) -> int:
    """argparse type: an int of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive int, got {text}")
    return value


def script_parser(
    description: str,
    options: Mapping[str, Mapping[str, Any]],
    out_help: str = OUT_HELP,
) -> argparse.ArgumentParser:
    """A parser with ``--out`` (a required path) and ``--force``, then ``options`` in
    their order (flag -> keywords of ``add_argument``), then ``--threads``."""
    if not isinstance(description, str):
        raise TypeError(f"description must be a str, got {type(description).__name__}")
    if not isinstance(options, Mapping):
        raise TypeError(f"options must be a mapping, got {type(options).__name__}")
    reserved = {"--out", "--force", "--threads"} & set(options)
    if reserved:
        raise ValueError(f"options must not redefine the common flags, got {sorted(reserved)}")
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, required=True, help=out_help)
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    for flag, keywords in options.items():
        parser.add_argument(flag, **keywords)
    parser.add_argument("--threads", type=_positive_int, default=None,
                        help="torch CPU threads")
    return parser


def parse_script_args(
    doc: str,
    options: Mapping[str, Mapping[str, Any]],
    argv: Sequence[str] | None = None,
    out_help: str = OUT_HELP,
) -> argparse.Namespace:
    """Parse a script's command line (``argv``, or ``sys.argv`` when None), with the first
    line of the script's docstring ``doc`` as its description. Exits if ``--out`` exists
    and ``--force`` is not given (before minutes of training, not after), and sets
    ``torch.set_num_threads`` when ``--threads`` is given."""
    parser = script_parser(doc.strip().splitlines()[0], options, out_help)
    args = parser.parse_args(None if argv is None else list(argv))
    if args.out.exists() and not args.force:
        raise SystemExit(f"{args.out} exists; pass --force to replace it")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    return args


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` of this source tree as a module (tests call its
    ``main``)."""
    path = SCRIPTS_DIR / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"no script {name!r}: {path} does not exist")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
