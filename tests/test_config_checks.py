"""dlbook.config_checks: the size checks the Transformer configs share."""

from types import SimpleNamespace

import pytest

from dlbook.config_checks import check_transformer_sizes


def test_accepts_positive_sizes_with_whole_heads():
    check_transformer_sizes(SimpleNamespace(d_model=32, n_heads=4, n_layers=2), ["n_layers"])


@pytest.mark.parametrize("sizes, names, error, match", [
    (dict(d_model=30, n_heads=4), [], ValueError, "d_model must be divisible by n_heads"),
    (dict(d_model=32, n_heads=4, n_layers=0), ["n_layers"], ValueError, "n_layers"),
    (dict(d_model=32, n_heads=4, n_layers=2.0), ["n_layers"], TypeError, "n_layers"),
])
def test_refuses_bad_sizes_naming_them(sizes, names, error, match):
    with pytest.raises(error, match=match):
        check_transformer_sizes(SimpleNamespace(**sizes), names)
