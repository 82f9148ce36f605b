"""The size checks shared by the Transformer configs (``BertConfig``, ``ViTConfig``)."""

from __future__ import annotations

from collections.abc import Iterable

from dlbook.utils import check_positive_int


def check_transformer_sizes(config: object, names: Iterable[str]) -> None:
    """Check that each field of ``config`` named in ``names`` is a positive int, and that
    ``config.d_model`` is divisible by ``config.n_heads`` (each head gets d_model /
    n_heads dimensions). Raises TypeError or ValueError naming the field."""
    for name in names:
        check_positive_int(getattr(config, name), name)
    if config.d_model % config.n_heads:
        raise ValueError(
            f"d_model must be divisible by n_heads, got {config.d_model} and "
            f"{config.n_heads}"
        )
