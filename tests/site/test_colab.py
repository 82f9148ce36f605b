"""Each chapter's Colab notebook runs in a fresh environment like Colab's, not the repo's.

The environment holds only what Colab preinstalls and the book relies on (torch, numpy,
matplotlib, scikit-learn, tqdm, and the Jupyter kernel), in whatever versions pip picks today
(torch stays at the CPU wheel that installs offline here). The notebook's own first cell then
installs dlbook as it would in Colab, from the git repository (``git+file://`` to this clone in
place of GitHub), and must leave torch and numpy exactly as they were. The notebook runs in an
empty folder: it can use nothing of the repository but the installed package.
"""

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from filelock import FileLock
from nbclient import NotebookClient

from booktools import ROOT, repository_url
from booktools.notebooks import chapters

VENV = ROOT / "_build" / "colab-venv"
COLAB_PACKAGES = ["torch==2.13.0", "numpy", "matplotlib", "scikit-learn", "tqdm", "ipykernel"]
KERNEL = "dlbook-colab-sim"


def pip_freeze(python: Path) -> dict:
    out = subprocess.run([str(python), "-m", "pip", "freeze"], capture_output=True, text=True,
                         check=True).stdout
    # "name==version", or "name @ url" for a package installed from a URL (dlbook here)
    return dict(re.split(r"==| @ ", line, maxsplit=1) for line in out.splitlines()
                if "==" in line or " @ " in line)


@pytest.fixture(scope="session")
def colab_python():
    """A venv with Colab's packages and a kernel for it, made once and shared by xdist workers."""
    with FileLock(str(VENV) + ".lock"):
        python = VENV / "bin" / "python"
        if not (VENV / "share" / "jupyter" / "kernels" / KERNEL).is_dir():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", *COLAB_PACKAGES],
                           check=True)
            subprocess.run([str(python), "-m", "ipykernel", "install", "--prefix", str(VENV),
                            "--name", KERNEL], check=True, capture_output=True)
        # A dlbook left from an earlier commit would satisfy the install cell, so pip would
        # keep it: remove it unless it was installed from the commit under test.
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], text=True,
                              capture_output=True, check=True).stdout.strip()
        installed = subprocess.run(
            [str(python), "-c", "import importlib.metadata as m; "
             "print(m.distribution('dlbook').read_text('direct_url.json'))"],
            capture_output=True, text=True).stdout
        if head not in installed:
            subprocess.run([str(python), "-m", "pip", "uninstall", "-q", "-y", "dlbook"],
                           check=True, capture_output=True)
    return python


@pytest.mark.parametrize("chapter", chapters(), ids=lambda p: p.stem)
def test_colab_notebook_runs_outside_the_repository(chapter, colab_python, tmp_path, monkeypatch):
    nb = nbformat.read(chapter.with_suffix(".ipynb"), as_version=4)
    install = nb.cells[0]
    github = f'DLBOOK = "git+{repository_url()}"'
    assert github in install.source
    # Pretend to be Colab, and install from this clone instead of GitHub. (Where pip fails,
    # the cell raises one RuntimeError naming the address: tests/test_book.py checks that.)
    install.source = install.source.replace(github, f'DLBOOK = "git+file://localhost{ROOT}"')
    nb.cells.insert(0, nbformat.v4.new_code_cell(
        "import sys, types\nsys.modules['google.colab'] = types.ModuleType('google.colab')"))
    before = pip_freeze(colab_python)
    monkeypatch.setenv("JUPYTER_PATH", str(VENV / "share" / "jupyter"))
    client = NotebookClient(nb, timeout=600, kernel_name=KERNEL,
                            resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel():
        with FileLock(str(VENV) + ".install.lock"):  # one pip install at a time in the venv
            client.execute_cell(nb.cells[0], 0)
            client.execute_cell(nb.cells[1], 1)
        for index, cell in enumerate(nb.cells[2:], start=2):
            client.execute_cell(cell, index)
    after = pip_freeze(colab_python)
    assert "dlbook" in after, "the install cell did not install dlbook"
    for package in ("torch", "numpy", "matplotlib"):
        assert after[package] == before[package], f"installing dlbook changed {package}"
