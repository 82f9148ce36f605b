"""dlbook.stats against scipy.stats."""

import pytest
from scipy import stats

from dlbook.stats import paired_test, wilson_interval


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (350, 359), (359, 359), (180, 359)])
def test_wilson_interval_matches_scipy(k, n):
    low, high = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    ours = wilson_interval(k, n, z=stats.norm.ppf(0.975))
    assert ours == pytest.approx((low, high), abs=1e-12)
    assert ours[0] <= k / n <= ours[1]


@pytest.mark.parametrize("a,b", [(0, 0), (0, 5), (7, 2), (10, 10), (1, 12), (30, 12)])
def test_paired_test_matches_scipy_binomtest(a, b):
    expected = 1.0 if a + b == 0 else stats.binomtest(a, a + b, 0.5).pvalue
    assert paired_test(a, b) == pytest.approx(expected, rel=1e-12)


def test_errors():
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson_interval(5, 4)
    with pytest.raises(TypeError, match="k must be an int"):
        wilson_interval(0.5, 4)
    with pytest.raises(ValueError, match="z must be"):
        wilson_interval(1, 4, z=0)
    with pytest.raises(ValueError, match="only_a must be an int >= 0"):
        paired_test(-1, 3)
