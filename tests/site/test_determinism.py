"""Executing a chapter twice gives the same numbers: what the reader sees is reproducible.

The site build executed every chapter the way a reader does, with PyTorch's default threads,
and stored it in the execution cache (the site shows those outputs). Here each chapter runs
once more in a fresh kernel in the same setting, and every number it prints, displays or
glues into the text must equal the stored one, timings aside
(``booktools.bench.reported_numbers`` says which numbers count).

These tests carry the ``rerun`` mark. The test command runs them on their own, after the
other site tests and without pytest-xdist, because xdist workers run on one thread each
(conftest.py) and the thread count changes the numerical path.
"""

import os

import pytest
from jupyter_cache import get_cache

from booktools.bench import differences, execute, reported_numbers
from booktools.cache import execution_cache_path
from booktools.notebooks import chapters, read_chapter


@pytest.mark.rerun
@pytest.mark.parametrize("chapter", chapters(), ids=lambda p: p.stem)
def test_second_execution_reports_the_same_numbers(chapter):
    cache = get_cache(str(execution_cache_path()))
    try:  # the record whose code cells are those of the chapter as it is now
        record = cache.match_cache_notebook(read_chapter(chapter))
    except KeyError:
        pytest.fail(f"{chapter.name} is not in the execution cache: build the site "
                    "(the README's build command) before tests/site")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        pytest.fail("run the rerun tests without -n: xdist workers use one thread, the build "
                    "used PyTorch's default")
    first = reported_numbers(cache.get_cache_bundle(record.pk).nb)
    second = reported_numbers(execute(chapter))
    assert first, f"{chapter.name} reported no numbers at all"
    diffs = differences(first, second)
    assert not diffs, f"{chapter.name} changed between two executions:\n" + "\n".join(diffs)
