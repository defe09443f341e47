"""The statistics against hand-computed values and against scipy."""

from __future__ import annotations

import math
from types import ModuleType

import numpy as np
import pytest

from rec_models.abtest.stats import (
    binomial_variance,
    chi2_sf,
    ratio_variance,
    sample_size_per_arm,
    two_proportion_ztest,
    wilson,
    z_quantile,
)


def _scipy() -> (
    ModuleType
):  # an independent implementation to compare with (installed with the dev tools)
    return pytest.importorskip("scipy.stats")


def test_wilson_matches_published_values() -> None:
    # statsmodels proportion_confint(10, 100, method="wilson") = (0.05523, 0.17437)
    lo, hi = wilson(10, 100)
    assert (round(lo, 5), round(hi, 5)) == (0.05523, 0.17437)
    lo, hi = wilson(0, 50)  # no successes: the interval still has width
    assert lo == 0.0 and hi == pytest.approx(0.07135, abs=1e-5)
    assert wilson(50, 50)[1] == 1.0 and wilson(0, 0) == (0.0, 1.0)
    # an effective (fractional) sample widens the interval, the centre stays
    narrow, wide = wilson(100, 1000), wilson(50, 500)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]


def test_two_proportion_ztest_by_hand_and_by_scipy() -> None:
    scipy_stats = _scipy()
    z, p = two_proportion_ztest(45, 500, 70, 500)
    pooled = 115 / 1000
    se = math.sqrt(pooled * (1 - pooled) * (2 / 500))
    assert z == pytest.approx(0.05 / se)
    assert p == pytest.approx(2 * scipy_stats.norm.sf(0.05 / se))
    assert round(p, 4) == 0.0132
    assert two_proportion_ztest(0, 10, 0, 10) == (0.0, 1.0)
    with pytest.raises(ValueError):
        two_proportion_ztest(1, 0, 1, 10)


def test_sample_size_is_the_standard_formula() -> None:
    # 10% -> 12%, alpha 0.05 two-sided, power 0.8: 3,841 per arm (as published calculators)
    assert sample_size_per_arm(0.10, 0.12, 0.05, 0.8) == 3841
    assert sample_size_per_arm(0.10, 0.12, 0.05, 0.9) > 3841
    assert sample_size_per_arm(0.10, 0.12, 0.01, 0.8) > 3841
    assert sample_size_per_arm(0.10, 0.14, 0.05, 0.8) < 3841 / 3
    with pytest.raises(ValueError):
        sample_size_per_arm(0.1, 0.1, 0.05, 0.8)
    assert z_quantile(0.975) == pytest.approx(1.959964, abs=1e-6)


def test_delta_method_variance_equals_the_residual_formula() -> None:
    rng = np.random.default_rng(3)
    n = rng.integers(1, 40, size=500)
    x = rng.binomial(n, rng.beta(2, 18, size=500))
    r = x.sum() / n.sum()
    expected = len(n) / (len(n) - 1) * ((x - r * n) ** 2).sum() / n.sum() ** 2
    got = ratio_variance(int(x.sum()), int(n.sum()), int((x * x).sum()), int((x * n).sum()),
                         int((n * n).sum()), len(n))  # fmt: skip
    assert got == pytest.approx(expected, rel=1e-12)
    # one impression per user: the binomial variance (up to K / (K - 1))
    x1 = rng.binomial(1, 0.1, size=1000)
    k, s = 1000, int(x1.sum())
    assert ratio_variance(s, k, s, s, k, k) == pytest.approx(binomial_variance(s, k) * k / (k - 1))
    assert ratio_variance(1, 5, 1, 5, 25, 1) == math.inf  # one user: no variance estimate


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 6, 7])
def test_chi_square_tail_matches_scipy(df: int) -> None:
    scipy_stats = _scipy()
    for x in (0.01, 0.5, 1.0, 3.84, 7.5, 20.0, 60.0):
        assert chi2_sf(x, df) == pytest.approx(scipy_stats.chi2.sf(x, df), rel=1e-9, abs=1e-15)
    assert chi2_sf(0.0, df) == 1.0
