"""booktools/exercises.py: the converter from a numbered list + hidden solution cells to
sphinx-exercise directives keeps every code cell, in order, and runs only once."""

import pytest

from booktools.exercises import convert
from booktools.notebooks import chapters, read_chapter

CHAPTER = """\
# 4. Convolutional networks

Text.

## Exercises

1. **Pooling.** Check the gradient of
   `max_pool2d`.
2. Compute the receptive field.

```{code-cell} ipython3
:tags: [hide-cell]

# Solution 1: where the gradients of pooling go
x = 1
```

```{code-cell} ipython3
:tags: [hide-cell, raises-exception]

# Solution to exercise 2
y = x + 1
```

## References

- A paper.
"""


def test_each_exercise_gets_its_solution_right_after_it():
    out = convert(CHAPTER, "04_cnn")
    assert "````{exercise} Pooling\n:label: ex-04_cnn-1\n\nCheck the gradient of\n`max_pool2d`." \
        in out
    assert "````{solution-start} ex-04_cnn-1\n:label: sol-04_cnn-1\n:class: dropdown\n````" in out
    assert out.index("ex-04_cnn-2\n\nCompute") > out.index("# Solution 1")
    assert ":tags: [raises-exception]\n\n# Solution to exercise 2" in out  # other tags stay
    assert "hide-cell" not in out
    assert out.count("````{solution-end}") == 2
    assert out.endswith("## References\n\n- A paper.\n")


def test_converting_twice_changes_nothing():
    once = convert(CHAPTER, "04_cnn")
    assert convert(once, "04_cnn") == once


def test_solutions_out_of_order_are_refused():
    swapped = CHAPTER.replace("# Solution 1:", "# Solution 9:")
    with pytest.raises(ValueError, match="exercise 9"):
        convert(swapped, "04_cnn")


@pytest.mark.parametrize("chapter", chapters(), ids=lambda p: p.stem)
def test_the_book_keeps_its_code_cells(chapter, tmp_path):
    converted = tmp_path / chapter.name
    converted.write_text(convert(chapter.read_text(encoding="utf8"), chapter.stem))
    before = [c.source for c in read_chapter(chapter).cells if c.cell_type == "code"]
    after = [c.source for c in read_chapter(converted).cells if c.cell_type == "code"]
    assert after == before
