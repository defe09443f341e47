"""The statistics of the A/B report: pure functions of counts, standard library only.

- `wilson(x, n)`: the Wilson score interval of a proportion (good at small n and rates near 0).
- `two_proportion_ztest(x1, n1, x2, n2)`: the textbook pooled z-test; it treats every impression
  as an independent trial.
- `ratio_variance(...)`: the delta-method variance of a ratio metric (CTR = clicks/impressions)
  when the randomisation unit is the user, as here: one user's impressions are correlated (some
  users click much more than others), so the binomial variance understates the real one and the
  textbook test finds "significant" differences between identical arms too often. The ratio of
  the two variances is the design effect; dividing n by it gives the effective sample size.
- `sample_size_per_arm(p1, p2, alpha, power)`: the standard two-proportion formula.
- `chi2_sf(x, df)`: chi-square tail, for the sample-ratio-mismatch check.
"""

from __future__ import annotations

import math
from statistics import NormalDist

_NORMAL = NormalDist()


def z_quantile(q: float) -> float:
    return _NORMAL.inv_cdf(q)


def two_sided_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2.0))


def wilson(x: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of x successes in n trials (n may be an effective, fractional n)."""
    if n <= 0:
        return (0.0, 1.0)
    z = z_quantile(0.5 + confidence / 2)
    p = x / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


def two_proportion_ztest(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """(z, two-sided p) of p2 - p1 with the pooled standard error (independent trials)."""
    if n1 <= 0 or n2 <= 0:
        raise ValueError("both groups need at least one trial")
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return (0.0, 1.0)
    z = (x2 / n2 - x1 / n1) / se
    return (z, two_sided_p(z))


def ratio_variance(
    sum_x: int, sum_n: int, sum_xx: int, sum_xn: int, sum_nn: int, units: int
) -> float:
    """Delta-method variance of R = sum(x_u) / sum(n_u) over `units` independent units (users).

    Var(R) ~ units / (units - 1) * sum((x_u - R n_u)^2) / sum(n_u)^2, with the sum of squared
    residuals expanded into the per-unit sums, computed exactly in integers before one division.
    """
    if units < 2 or sum_n <= 0:
        return math.inf
    # sum((x - R n)^2) * sum_n^2 = sum_n^2 sum_xx - 2 sum_x sum_n sum_xn + sum_x^2 sum_nn
    scaled = sum_n * sum_n * sum_xx - 2 * sum_x * sum_n * sum_xn + sum_x * sum_x * sum_nn
    return units / (units - 1) * max(scaled, 0) / sum_n**4


def binomial_variance(x: int, n: int) -> float:
    if n <= 0:
        return math.inf
    p = x / n
    return p * (1 - p) / n


def sample_size_per_arm(p1: float, p2: float, alpha: float, power: float) -> int:
    """Trials per arm for a two-sided test of p1 vs p2 at `alpha` with `power` (pooled H0)."""
    if not (0 < p1 < 1 and 0 < p2 < 1) or p1 == p2:
        raise ValueError(f"rates must lie in (0, 1) and differ, got {p1} and {p2}")
    za, zb = z_quantile(1 - alpha / 2), z_quantile(power)
    mean = (p1 + p2) / 2
    root = za * math.sqrt(2 * mean * (1 - mean)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(root * root / (p2 - p1) ** 2)


def chi2_sf(x: float, df: int) -> float:
    """P(X > x) for a chi-square variable with integer `df` degrees of freedom (closed forms)."""
    if df < 1:
        raise ValueError("df must be at least 1")
    if x <= 0:
        return 1.0
    half = x / 2
    if df % 2 == 0:  # e^(-x/2) * sum_{i < df/2} (x/2)^i / i!
        term = total = 1.0
        for i in range(1, df // 2):
            term *= half / i
            total += term
        return min(1.0, math.exp(-half) * total)
    # odd: erfc(sqrt(x/2)) + sqrt(2x/pi) e^(-x/2) sum_{i=1}^{(df-1)/2} x^(i-1) / (3*5*...*(2i-1))
    tail = math.erfc(math.sqrt(half))
    term, total = 1.0, 0.0
    for i in range(1, (df - 1) // 2 + 1):
        term = term * x / (2 * i - 1) if i > 1 else 1.0
        total += term
    return min(1.0, tail + math.sqrt(2 * x / math.pi) * math.exp(-half) * total)
