"""Uncertainty of accuracies measured on a finite test set (chapters 2 and 3).

A test set of n examples measures an accuracy with a granularity of 1/n and a sampling
error that, for n in the hundreds, is about a percentage point. ``wilson_interval``
gives a confidence interval for one accuracy; ``paired_test`` compares two classifiers
on the same examples by the ones on which they disagree (McNemar's exact test).
"""

from __future__ import annotations

import math

from dlbook.utils import check_int


def _check_counts(k: object, n: object) -> None:
    for name, value in (("k", k), ("n", n)):
        check_int(value, name)
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need n >= 1 and 0 <= k <= n, got k={k}, n={n}")


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's score interval (Wilson, 1927) for a proportion k / n; z = 1.96 gives
    95%.

    Unlike the normal approximation p +- z sqrt(p (1 - p) / n), it stays inside [0, 1]
    and is not empty at k = n, which matters for accuracies close to 100%.
    """
    _check_counts(k, n)
    if not z > 0:
        raise ValueError(f"z must be > 0, got {z!r}")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if k == 0 else max(0.0, centre - half)  # the exact ends, free of rounding
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


def paired_test(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar test: the p-value of the hypothesis that two classifiers
    are equally accurate, from the counts of examples that only A, or only B, gets
    right.

    Examples both get right or both get wrong say nothing about which is better. Under
    the hypothesis each disagreement is a fair coin, so only_a ~ Binomial(only_a +
    only_b, 1/2).
    """
    for name, value in (("only_a", only_a), ("only_b", only_b)):
        check_int(value, name, minimum=0)
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)
