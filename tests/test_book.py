"""The book's structure: chapters, Colab notebooks, table of contents, commands, pins."""

import importlib
import re
import shutil
import subprocess
import sys

import nbformat
import pytest
import yaml

from booktools import ROOT, repository_url, site_url
from booktools.bench import GLUE_TEXT, differences, reported_numbers
from booktools.myst import (
    GLUE_REFERENCE,
    MYST_DIRECTIVE,
    MYST_LABEL,
    MYST_ROLE,
    Context,
    book_index,
    to_markdown,
)
from booktools.notebooks import (
    INSTALL_TAG,
    LITERALINCLUDE,
    cached_values,
    chapters,
    colab_notebook,
    glue_values,
    install_cell,
    read_chapter,
    render,
    stale_notebooks,
)

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
    assert f'DLBOOK = "git+{repository_url()}"' in first.source
    install = re.search(r'"pip", "install".*?\]', first.source, re.S).group(0)
    assert '"dlbook @ {DLBOOK}"' in install
    for pkg in ("torch", "numpy", "matplotlib", "=="):
        assert pkg not in install, f"the install cell must not touch {pkg!r}: {install}"
    # No literalinclude survives in the notebook: Colab would show it as raw text.
    assert not any("{literalinclude}" in c.source for c in nb.cells)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_colab_notebook_markdown_has_no_myst_left(chapter):
    nb = nbformat.read(chapter.with_suffix(".ipynb"), as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        left = [m[0] for m in MYST_ROLE.finditer(cell.source)]
        left += [m[0] for m in MYST_DIRECTIVE.finditer(cell.source)]
        left += [m[0] for m in MYST_LABEL.finditer(cell.source)]
        assert not left, f"{chapter.stem}, {cell.id}: MyST that Colab shows as raw text: {left}"
        # A glued value the notebook holds is shown, not referred to.
        known = set(nb.metadata.get("dlbook", {}).get("glue", {}))
        referred = {m["name"] for m in GLUE_REFERENCE.finditer(cell.source)}
        assert not referred & known, f"{chapter.stem}: values not shown: {referred & known}"


def test_install_cell_failure_names_the_url_and_what_to_do(tmp_path):
    """Pretend to be Colab with an address pip cannot install from: the cell stops with one
    readable error, not pip's exit status followed by a ModuleNotFoundError further down."""
    url = f"git+file://{tmp_path}/no-such-repository"
    source = install_cell().source.replace(f"git+{repository_url()}", url)
    fake_colab = "import sys, types; sys.modules['google.colab'] = types.ModuleType('colab')\n"
    run = subprocess.run([sys.executable, "-c", fake_colab + source], capture_output=True,
                         text=True, cwd=tmp_path, timeout=120)
    assert run.returncode != 0
    error = run.stderr.strip().splitlines()[-1] if "pip said" not in run.stderr else run.stderr
    assert f"RuntimeError: pip could not install dlbook from {url}." in error
    assert "run this cell again" in error and "pip said:" in error
    assert "CalledProcessError" not in run.stderr


def book_context(glued=None, cell=5, glue_cells=None) -> Context:
    return Context(book=book_index(), doc="book/01_autodiff", glued=glued or {},
                   glue_cells=glue_cells or {}, cell=cell)


def test_glued_values_are_shown_formatted_as_the_site_formats_them():
    glued = {"n_gpt": {"text/plain": "822912"}, "acc": {"text/plain": "0.98765"},
             "loss": {"text/plain": "1.23456"}, "name": {"text/plain": "'LayerNorm'"},
             "table": {"text/markdown": "**bold**", "text/plain": "'bold'"}}
    text = ("The GPT ({glue:text}`n_gpt:,` parameters) reaches {glue:text}`acc:.1%`, "
            "loss {glue:text}`loss:.2f`, with {glue:text}`name`; {glue:md}`table`, "
            "{glue:}`loss`.")
    assert to_markdown(text, book_context(glued)) == (
        "The GPT (822,912 parameters) reaches 98.8%, loss 1.23, with LayerNorm; **bold**, "
        "1.23456.")
    # Without an execution, the text says where the value is computed.
    missing = to_markdown("loss {glue:text}`loss:.2f` and {glue:text}`acc:.1%`",
                          book_context(glue_cells={"loss": 3, "acc": 9}))
    assert missing == "loss *⟨loss, computed above⟩* and *⟨acc, computed below⟩*"


def test_glued_values_are_read_from_an_executed_chapter():
    record = nbformat.v4.new_output(
        "display_data", data={"application/papermill.record/text/plain": "822912"},
        metadata={"scrapbook": {"name": "n_gpt", "mime_prefix": "application/papermill.record/"}})
    printed = nbformat.v4.new_output("stream", name="stdout", text="822912\n")
    cell = nbformat.v4.new_code_cell('glue("n_gpt", 822912)')
    cell.outputs = [printed, record]
    assert glue_values(nbformat.v4.new_notebook(cells=[cell])) == {
        "n_gpt": {"text/plain": "822912"}}


def test_glued_values_come_from_the_cached_execution_of_the_same_code(tmp_path, monkeypatch):
    """The site build caches each executed chapter; any cache folder (one per state of the
    package) holding an execution of the chapter's current code cells supplies the values."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    monkeypatch.setenv("DLBOOK_CACHE_DIR", str(tmp_path))
    chapter = CHAPTERS[0]
    executed = read_chapter(chapter)
    code = next(c for c in executed.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output(
        "display_data", data={"application/papermill.record/text/plain": "0.25"},
        metadata={"scrapbook": {"name": "x", "mime_prefix": "application/papermill.record/"}})]
    get_cache(str(tmp_path / "an-older-package")).cache_notebook_bundle(
        CacheBundleIn(executed, str(chapter)), check_validity=False)
    assert cached_values(read_chapter(chapter)) == {"x": {"text/plain": "0.25"}}
    changed = read_chapter(chapter)
    next(c for c in changed.cells if c.cell_type == "code").source += "\nx = 1"
    assert cached_values(changed) is None


def test_references_and_directives_become_markdown_with_links():
    site, ctx = site_url(), book_context()
    bib = f"{site}book/bibliography.html"
    source = ("(sec-x)=\n## A section\n\n"
              "As {cite:t}`goodfellow2016deep` say "
              "{cite:p}`griewank2008evaluating,wengert1964simple`, see "
              "{doc}`API reference <api>`, {ref}`ch-gpt` and {doc}`bibliography`.\n\n"
              ":::{note}\nA {term}`gradient` is a vector.\n:::\n\n"
              "```{math}\n:label: eq-x\nx = 1\n```\n\n"
              "```{admonition} Why?\nBecause.\n```\n\n"
              "```python\n# a comment, not a heading, and {not} a role\n```")
    assert to_markdown(source, ctx) == (
        "## A section\n\n"
        f"As [Goodfellow et al. (2016)]({bib}) say ([Griewank and Walther, 2008]({bib}); "
        f"[Wengert, 1964]({bib})), see [API reference]({site}book/api.html), "
        f"[7. GPT]({site}book/07_gpt.html#ch-gpt) and [Bibliography]({bib}).\n\n"
        "> **Note**\n>\n> A gradient is a vector.\n\n"
        "$$\nx = 1\n$$\n\n"
        "> **Why?**\n>\n> Because.\n\n"
        "```python\n# a comment, not a heading, and {not} a role\n```")


def test_the_sync_check_ignores_glued_values_but_not_the_text(tmp_path):
    """A re-execution that changes a last digit must not make a notebook stale; a change of
    the chapter must."""
    for name in ("_config.yml", "references.bib"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "book").mkdir()
    chapter = tmp_path / "book" / "01_autodiff.md"
    shutil.copy(ROOT / "book" / "01_autodiff.md", chapter)
    target = chapter.with_suffix(".ipynb")

    def write(glued):
        text = render(colab_notebook(chapter, glued, tmp_path))
        target.write_text(text, encoding="utf8")
        return text

    assert "classifies 100%" in write({"xor_acc": {"text/plain": "100.0"}})
    assert stale_notebooks(tmp_path) == []
    assert "classifies 99%" in write({"xor_acc": {"text/plain": "99.4"}})
    assert stale_notebooks(tmp_path) == []
    assert "classifies *⟨xor_acc, computed above⟩*%" in write(None)
    assert stale_notebooks(tmp_path) == []
    chapter.write_text(chapter.read_text().replace("The loss falls", "The loss drops"))
    assert stale_notebooks(tmp_path) == [target]


def test_the_repository_url_is_written_once_and_used_everywhere():
    """_config.yml's repository.url is the one place; the README, the package metadata and
    every notebook use it, and no other GitHub repository."""
    tomllib = pytest.importorskip("tomllib")
    url = repository_url()
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert urls["Repository"] == url and urls["Documentation"] == site_url()
    readme = (ROOT / "README.md").read_text()
    assert f"git+{url}" in readme
    texts = {"README.md": readme, "pyproject.toml": (ROOT / "pyproject.toml").read_text()}
    texts.update({p.name: p.with_suffix(".ipynb").read_text() for p in CHAPTERS})
    for name, text in texts.items():
        for found in re.findall(r"https?://github\.com/[\w.-]+/[\w-]+", text):
            assert found == url, f"{name} names {found}, not the repository {url}"
    for chapter in CHAPTERS:
        assert f"git+{url}" in nbformat.read(chapter.with_suffix(".ipynb"), 4).cells[0].source


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
    exercises = re.findall(r"^`{3,}\{exercise\}", text, re.M)
    solutions = re.findall(r"^`{3,}\{solution-start\} (ex-\S+)", text, re.M)
    assert exercises, "exercises are sphinx-exercise directives (python -m booktools.exercises)"
    assert len(solutions) >= 1 and len(set(solutions)) == len(solutions), solutions
    assert "## References" in text, "a References section at the end"
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
    # set -e ignores a failure inside an && list: every command but the last must exit on one
    assert commands[0].endswith(" || exit 1"), "a failing test command must fail CI"
    for command in commands:
        command = command.removesuffix(" || exit 1")
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


def test_api_page_documents_every_module():
    api = (ROOT / "book" / "api.md").read_text()
    documented = set(re.findall(r"automodule:: (dlbook[\w.]*)", api))
    modules = {f"dlbook.{p.stem}" for p in (ROOT / "dlbook").glob("*.py") if p.stem != "__init__"}
    modules |= {f"dlbook.{p.parent.name}" for p in (ROOT / "dlbook").glob("*/__init__.py")}
    assert modules <= documented, f"book/api.md misses {sorted(modules - documented)}"


PSEUDO_MATH = re.compile(
    r"\b(sqrt|alpha_bar|eta_\w+|lambda_\w+|sigma_\w+|beta_\w+|x_\w+|h_\w+|theta_\w+)\b|\*\*|\^")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_captions_write_math_as_math(chapter):
    """Figure and listing captions use $...$ for math, never "sqrt(alpha_bar_t)"."""
    lines = chapter.read_text().split("\n")
    for i, line in enumerate(lines):
        match = re.match(r"^\s*:?caption:\s*(.*)", line)
        if match is None:
            continue
        caption, j = match[1], i + 1
        while j < len(lines) and lines[j].startswith("      "):  # a folded YAML caption
            caption, j = caption + " " + lines[j].strip(), j + 1
        prose = re.sub(r"`[^`]*`", "", re.sub(r"\$[^$]*\$", "", caption.replace("\\$", "")))
        assert not PSEUDO_MATH.search(prose), f"{chapter.name}:{i + 1}: {caption[:120]}"


def _code_cells(text: str) -> list[list[str]]:
    """The code lines of each {code-cell}, without its options (``:tags:`` or a YAML block)."""
    cells, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        if not re.match(r"^`{3,}\{code-cell\}", lines[i]):
            i += 1
            continue
        j = i + 1
        if j < len(lines) and lines[j].strip() == "---":
            j = lines.index("---", j + 1) + 1
        while j < len(lines) and lines[j].startswith(":"):
            j += 1
        end = next(k for k in range(j, len(lines)) if re.match(r"^`{3,}\s*$", lines[k]))
        cells.append(lines[j:end])
        i = end + 1
    return cells


def _included_lines(chapter) -> list[tuple[str, str]]:
    """(where, line) for every line of every object a chapter shows with literalinclude."""
    import ast

    shown = []
    for match in LITERALINCLUDE.finditer(chapter.read_text()):
        obj = re.search(r"^:pyobject:\s*(\S+)", match["options"], re.M)
        path = (chapter.parent / match["path"]).resolve()
        if obj is None or path.suffix != ".py":
            continue
        source = path.read_text()
        node = ast.parse(source)
        for part in obj[1].split("."):
            node = next(n for n in ast.iter_child_nodes(node) if getattr(n, "name", None) == part)
        start = min([d.lineno for d in node.decorator_list] + [node.lineno])
        for k, line in enumerate(source.split("\n")[start - 1:node.end_lineno]):
            shown.append((f"{path.name}:{start + k}", line))
    return shown


COLUMN = 88  # characters of code that fit the site's column without scrolling


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_code_a_reader_sees_fits_the_column(chapter):
    """Code cells and the package code a chapter includes fit in 88 characters a line."""
    long = [f"{chapter.name}, cell {n}: {len(line)}" for n, cell in
            enumerate(_code_cells(chapter.read_text()), 1) for line in cell if len(line) > COLUMN]
    long += [f"{where}: {len(line)}" for where, line in _included_lines(chapter)
             if len(line) > COLUMN]
    assert not long, f"{len(long)} lines wider than {COLUMN} characters: {long[:8]}"
