"""The book's structure: chapters, Colab notebooks, table of contents, commands, pins."""

import importlib
import re

import nbformat
import pytest
import yaml

from booktools import ROOT
from booktools.bench import GLUE_TEXT, differences, reported_numbers
from booktools.notebooks import INSTALL_TAG, LITERALINCLUDE, chapters, stale_notebooks

CHAPTERS = chapters()


def test_there_are_chapters():
    assert CHAPTERS, "no chapter found in book/"


def test_colab_notebooks_are_generated_from_the_current_chapters():
    stale = stale_notebooks()
    assert not stale, f"regenerate with `python -m booktools.notebooks`: {stale}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_colab_notebook_installs_dlbook_only_in_colab_and_pins_nothing(chapter):
    nb = nbformat.read(chapter.with_suffix(".ipynb"), as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "code" and INSTALL_TAG in first.metadata.get("tags", [])
    assert 'if "google.colab" in sys.modules:' in first.source
    install = re.search(r'"pip", "install".*?\]', first.source, re.S).group(0)
    assert "dlbook @ git+https://github.com/" in install
    for pkg in ("torch", "numpy", "matplotlib", "=="):
        assert pkg not in install, f"the install cell must not touch {pkg!r}: {install}"
    # No literalinclude survives in the notebook: Colab would show it as raw text.
    assert not any("{literalinclude}" in c.source for c in nb.cells)


def test_toc_lists_every_chapter_and_every_entry_exists():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    for f in files:
        assert (ROOT / f"{f}.md").is_file(), f"_toc.yml names {f}, which does not exist"
    listed = {f for f in files}
    for chapter in CHAPTERS:
        assert f"book/{chapter.stem}" in listed, f"{chapter.name} is not in _toc.yml"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_follows_the_book_pattern(chapter):
    text = chapter.read_text()
    assert re.match(r"---\njupytext:\n", text), "chapters start with the jupytext front matter"
    assert re.search(r"^# \d+\. ", text, re.M), "a numbered title '# N. Title'"
    assert "## Summary" in text and "## Exercises" in text
    assert ":tags: [remove-cell]" in text, "numbers in the prose are asserted in hidden cells"
    assert ":tags: [hide-cell]" in text, "exercise solutions are hidden cells"
    assert re.search(r"^set_seed\(", text, re.M), "chapters seed their random generators"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_literalincludes_show_objects_that_exist(chapter):
    for match in LITERALINCLUDE.finditer(chapter.read_text()):
        path = (chapter.parent / match["path"]).resolve()
        assert path.is_file(), f"{chapter.name}: {match['path']} does not exist"
        obj = re.search(r"^:pyobject:\s*(\S+)", match["options"], re.M)
        if obj is None:
            continue
        module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
        target = module
        for part in obj.group(1).split("."):
            assert hasattr(target, part), f"{chapter.name}: {obj.group(1)} not in {path.name}"
            target = getattr(target, part)


def test_every_citation_is_in_the_bibliography():
    keys = set(re.findall(r"^@\w+\{([^,]+),", (ROOT / "references.bib").read_text(), re.M))
    for page in (ROOT / "book").glob("*.md"):
        for group in re.findall(r"\{cite:[pt]\}`([^`]+)`", page.read_text()):
            for key in group.split(","):
                assert key.strip() in keys, f"{page.name} cites {key!r}, not in references.bib"


def test_ci_runs_exactly_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    commands = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")
                and not line.startswith(("set ", "cd ", "command -v chromium"))]
    assert len(commands) == 2, commands
    for command in commands:
        assert command in readme, f".ci/run runs a command the README does not show: {command}"


def test_requirements_pin_torch_and_the_package_stays_loose():
    requirements = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^torch==2\.13\.0$", requirements, re.M)
    assert re.search(r"^jupyter-book==1\.", requirements, re.M)
    pyproject = (ROOT / "pyproject.toml").read_text()
    deps = re.search(r"dependencies = \[(.*?)\]", pyproject, re.S).group(1)
    assert "==" not in deps and "<" not in deps, f"dlbook must not pin its dependencies: {deps}"


def test_reported_numbers_leave_out_timings_and_ignore_how_streams_were_split():
    def glue(name, value):
        return nbformat.v4.new_output(
            "display_data", data={GLUE_TEXT: repr(value)},
            metadata={"scrapbook": {"name": name, "mime_prefix": "application/papermill.record/"}})

    def run(parts, step_ms, loss):
        cell = nbformat.v4.new_code_cell("...")
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=t) for t in parts]
        cell.outputs += [glue("val_loss", loss), glue("step_ms", step_ms)]
        return nbformat.v4.new_notebook(cells=[cell])

    first = reported_numbers(run([f"loss 1.25, 300 steps\ntook {3.2} s\n"], 12.5, 0.1 + 0.2))
    assert first == [[1, "stdout", ["1.25", "300"]], [1, "val_loss", ["0.3"]]]
    # split differently, other timings, the loss differing in its 17th digit: the same
    second = reported_numbers(run(["loss 1.25, ", f"300 steps\ntook {4.7} s\n"], 19.1, 0.3))
    assert differences(first, second) == []
    third = reported_numbers(run(["loss 1.26, 300 steps\n"], 12.5, 0.3))
    assert differences(first, third) == [
        "code cell 1 (stdout): ['1.25', '300'] then ['1.26', '300']"]
