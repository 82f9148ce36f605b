"""Executing a chapter twice gives the same numbers: what the reader sees is reproducible.

The test command's first pytest run executed every chapter and stored it in the execution
cache (the site build shows those outputs). Here each chapter runs once more, in a fresh
kernel, and every number it prints, displays or glues into the text must equal the stored
one, timings aside (``booktools.bench.reported_numbers`` says which numbers count).
"""

import pytest
from jupyter_cache import get_cache

from booktools.bench import differences, execute, reported_numbers
from booktools.cache import execution_cache_path
from booktools.notebooks import chapters, read_chapter


@pytest.mark.parametrize("chapter", chapters(), ids=lambda p: p.stem)
def test_second_execution_reports_the_same_numbers(chapter):
    cache = get_cache(str(execution_cache_path()))
    try:  # the record whose code cells are those of the chapter as it is now
        record = cache.match_cache_notebook(read_chapter(chapter))
    except KeyError:
        pytest.fail(f"{chapter.name} is not in the execution cache: run the test command's "
                    "first step (pytest over the chapters) before tests/site")
    first = reported_numbers(cache.get_cache_bundle(record.pk).nb)
    second = reported_numbers(execute(chapter))
    assert first, f"{chapter.name} reported no numbers at all"
    diffs = differences(first, second)
    assert not diffs, f"{chapter.name} changed between two executions:\n" + "\n".join(diffs)
