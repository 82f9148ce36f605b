"""Numbers as a reader reads them: ``1.2e-05`` becomes ``1.2 × 10⁻⁵`` in the prose.

Python's ``e`` format is what a chapter's ``{glue:text}`x:.1e``` role produces. The site (a
transform in ``booktools.sphinx_ext``) and the Colab notebooks (``booktools.myst``) both show
such numbers with a power of ten instead, through ``readable_number``.
"""

from __future__ import annotations

import re

SCIENTIFIC = re.compile(r"^(?P<sign>[-+]?)(?P<mantissa>\d+(?:\.\d+)?)e(?P<exponent>[-+]?\d+)$")
SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def readable_number(text: str) -> str:
    """``"1.2e-05"`` -> ``"1.2 × 10⁻⁵"``, ``"1e+06"`` -> ``"10⁶"``; other text unchanged.

    Only a whole string in Python's ``e`` notation is rewritten; the exponent loses its ``+``
    and leading zeros. A mantissa of exactly 1 is left out (``10⁻⁵``); ``0e+00`` stays ``0``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    match = SCIENTIFIC.match(text.strip())
    if match is None:
        return text
    sign, mantissa = match["sign"].replace("+", ""), match["mantissa"]
    exponent = int(match["exponent"])
    if float(mantissa) == 0:
        return sign + mantissa
    if exponent == 0:
        return sign + mantissa
    power = "10" + str(exponent).translate(SUPERSCRIPT)
    if mantissa == "1":
        return sign + power
    return f"{sign}{mantissa} × {power}"
