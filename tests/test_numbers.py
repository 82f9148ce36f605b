"""booktools.numbers: glued numbers in e notation read as powers of ten, on site and Colab."""

import pytest

from booktools.numbers import readable_number
from tests.test_book import book_context, to_markdown


@pytest.mark.parametrize("text, expected", [
    ("1e-05", "10⁻⁵"), ("1.2e-05", "1.2 × 10⁻⁵"), ("3.64e+03", "3.64 × 10³"),
    ("-2.5e+06", "-2.5 × 10⁶"), ("1.0e+06", "1.0 × 10⁶"), ("7e-12", "7 × 10⁻¹²"),
    ("0e+00", "0"), ("1e+00", "1"),
])
def test_e_notation_becomes_a_power_of_ten(text, expected):
    assert readable_number(text) == expected


@pytest.mark.parametrize("text", ["12.3", "1,024", "LayerNorm", "98.8%", "e-5", "1e-5x", ""])
def test_other_text_is_left_alone(text):
    assert readable_number(text) == text


def test_only_strings_are_accepted():
    with pytest.raises(TypeError, match="text must be a str, got float"):
        readable_number(1e-5)


def test_colab_notebooks_show_the_same_power_of_ten_as_the_site():
    glued = {"diff": {"text/plain": "3.2e-07"}, "big": {"text/plain": "1000000.0"}}
    text = "largest difference {glue:text}`diff:.0e`, of {glue:text}`big:.1e` values"
    assert to_markdown(text, book_context(glued)) == (
        "largest difference 3 × 10⁻⁷, of 1.0 × 10⁶ values")


def test_colab_numbers_equations_per_chapter_as_the_site_does():
    from booktools.myst import page_targets

    text = "# 3. MLPs\n\n$$ a = b $$ (eq-first)\n\ntext\n\n$$ c = d $$ (eq-second)\n"
    _, targets = page_targets("book/03_mlp", text)
    assert (targets["eq-first"].title, targets["eq-second"].title) == ("(3.1)", "(3.2)")
    _, front = page_targets("book/preface", text)
    assert front["eq-second"].title == "(2)"
