"""The shipped corpus: one text on every Python, checked when it is read."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

import dlbook.corpus as corpus
from dlbook.text import CharCorpus

ROOT = Path(__file__).resolve().parents[1]
OTHER_PYTHONS = ("3.10", "3.12", "3.13")


def test_snapshot_matches_its_recorded_hash_and_size():
    text = corpus.pydoc_text()
    assert len(text) == corpus.N_CHARACTERS
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == corpus.SHA256
    assert corpus.PYTHON_VERSION in corpus.FILE.name


def test_licence_and_attribution_ship_beside_the_text():
    licence = corpus.FILE.with_name("LICENSE-PSF.txt").read_text(encoding="utf8")
    assert "PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2" in licence
    assert "Python Software Foundation" in corpus.ATTRIBUTION


def test_char_corpus_uses_the_snapshot():
    data = CharCorpus.pydoc()
    assert len(data.train) + len(data.val) == corpus.N_CHARACTERS
    assert len(data.vocab) == 103


def test_a_damaged_copy_is_refused(tmp_path, monkeypatch):
    damaged = tmp_path / corpus.FILE.name
    data = bytearray(corpus.FILE.read_bytes())
    data[1000] ^= 1
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(corpus, "FILE", damaged)
    with pytest.raises(ValueError, match="damaged"):
        corpus.pydoc_text()


def test_a_missing_copy_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "FILE", tmp_path / "nothing.txt")
    with pytest.raises(FileNotFoundError, match="nothing.txt"):
        corpus.pydoc_text()


def _interpreter(version: str) -> str | None:
    """The interpreter of a Python version: pyenv's own build (these machines have 3.10-3.13
    there), else one on PATH that is not a pyenv shim."""
    pyenv = Path.home() / ".pyenv" / "versions"
    for candidate in sorted(pyenv.glob(f"{version}.*"), reverse=True):
        exe = candidate / "bin" / f"python{version}"
        if exe.exists():
            return str(exe)
    found = shutil.which(f"python{version}")
    return found if found and "shims" not in found else None


@pytest.mark.parametrize("version", OTHER_PYTHONS)
def test_other_pythons_read_the_same_corpus_and_parse_the_code(version):
    """Without torch (only Python 3.11 has a torch wheel here): the corpus loader gives the
    same text, and every source file in the repository compiles."""
    python = _interpreter(version)
    if python is None:
        pytest.fail(f"Python {version} is not installed; the README says which are verified")
    script = (
        "import importlib.util, hashlib, sys, compileall, pathlib\n"
        f"root = pathlib.Path({str(ROOT)!r})\n"
        "path = root / 'dlbook' / 'corpus' / '__init__.py'\n"
        "spec = importlib.util.spec_from_file_location('corpus', path)\n"
        "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        "text = mod.pydoc_text()\n"
        "print(len(text), len(set(text)), hashlib.sha256(text.encode()).hexdigest())\n"
        "ok = all(compileall.compile_dir(str(root / d), quiet=1, force=True, legacy=False,\n"
        "         workers=1) for d in ('dlbook', 'booktools', 'tests', 'scripts', 'tools')\n"
        "         if (root / d).is_dir())\n"
        "sys.exit(0 if ok else 3)\n"
    )
    # compile into a throwaway cache so the repository's __pycache__ is not touched
    env = {"PYTHONPYCACHEPREFIX": "/tmp/dlbook-pycache-" + version, "PATH": "/usr/bin:/bin"}
    out = subprocess.run([python, "-c", script], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    n, distinct, digest = out.stdout.split()[-3:]
    assert (int(n), int(distinct), digest) == (corpus.N_CHARACTERS, 103, corpus.SHA256)
