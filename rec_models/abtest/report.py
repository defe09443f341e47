"""The A/B report: per-arm rates with intervals, each arm against the control, and a verdict
only once the planned sample size is reached (fixed-horizon testing: no peeking).

Per arm and metric (CTR = clicks / impressions, CVR = conversions / clicks):
- the rate and its 95% Wilson interval, computed on the effective sample size n / D, where D is
  the arm's design effect (delta-method variance over binomial variance, at least 1): users are
  the randomisation unit and one user's impressions are correlated;
- against the control: the difference, its confidence interval and the z-test p-value with the
  delta-method (user-clustered) standard error, which decides; the textbook pooled two-proportion
  p-value is shown beside it (it assumes independent impressions and is too optimistic when D > 1).

The plan (baseline, minimum detectable effect, alpha, power) gives the trials per arm by the
two-proportion formula, times the design effect (the plan's, or estimated from the log, pooled
over arms). With more than two arms alpha is split over the comparisons (Bonferroni). Until
every arm has the planned size, the report says the test is underpowered and shows neither
p-values nor differences: acting on an early look inflates the false-positive rate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from rec_models.abtest.config import Plan
from rec_models.abtest.stats import (
    binomial_variance,
    chi2_sf,
    ratio_variance,
    sample_size_per_arm,
    two_proportion_ztest,
    two_sided_p,
    wilson,
    z_quantile,
)
from rec_models.events.reader import ArmSums

SRM_ALPHA = 0.001  # sample-ratio-mismatch alarm threshold (the usual, strict one)


class ReportError(ValueError):
    """The log cannot support a report (empty, a single arm, an unknown control)."""


@dataclass(frozen=True)
class Rate:
    successes: int
    trials: int
    units: int  # users contributing trials
    rate: float | None
    ci95: tuple[float, float] | None
    variance: float  # delta-method (user-clustered)
    design_effect: float  # variance / binomial variance, floored at 1


@dataclass(frozen=True)
class ArmReport:
    arm: str
    users: int
    ctr: Rate
    cvr: Rate


@dataclass(frozen=True)
class Comparison:
    arm: str
    control: str
    metric: str
    status: str  # underpowered | better | worse | no_difference | no_plan | untestable
    difference: float | None = None
    ci: tuple[float, float] | None = None
    relative: float | None = None
    p_value: float | None = None  # user-clustered z-test: decides
    p_value_binomial: float | None = None  # textbook pooled z-test, for reference


@dataclass
class Report:
    arms: list[ArmReport]
    control: str
    plan: Plan | None
    alpha: float | None  # per comparison (Bonferroni-split)
    required_per_arm: int | None  # trials of the plan's metric, design effect included
    formula_per_arm: int | None  # the two-proportion formula alone
    design_effect: float | None
    design_effect_source: str | None  # "plan" | "estimated"
    reached: dict[str, bool]
    comparisons: list[Comparison]
    srm_p: float
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["plan"] = (
            None if self.plan is None else asdict(self.plan) | {"effect": self.plan.effect}
        )
        return out


def rate_of(sums: ArmSums, metric: str) -> Rate:
    if metric == "ctr":
        x, n, units = sums.clicks, sums.impressions, sums.users
        xx, xn, nn = sums.sum_xx, sums.sum_xn, sums.sum_nn
    else:
        x, n, units = sums.conversions, sums.clicks, sums.users_clicked
        xx, xn, nn = sums.sum_cc, sums.sum_cx, sums.sum_xx
    if n == 0:
        return Rate(x, n, units, None, None, math.inf, 1.0)
    var = ratio_variance(x, n, xx, xn, nn, units)
    binom = binomial_variance(x, n)
    deff = max(1.0, var / binom) if binom > 0 and math.isfinite(var) else 1.0
    return Rate(x, n, units, x / n, wilson(x / deff, n / deff), var, deff)


def _compare(arm: ArmReport, control: ArmReport, metric: str, alpha: float) -> Comparison:
    t, c = getattr(arm, metric), getattr(control, metric)
    if t.rate is None or c.rate is None or not math.isfinite(t.variance + c.variance):
        return Comparison(arm.arm, control.arm, metric, "untestable")
    diff = t.rate - c.rate
    se = math.sqrt(t.variance + c.variance)
    p = two_sided_p(diff / se) if se > 0 else (1.0 if diff == 0 else 0.0)
    half = z_quantile(1 - alpha / 2) * se
    _, p_binom = two_proportion_ztest(c.successes, c.trials, t.successes, t.trials)
    status = "no_difference" if p >= alpha else ("better" if diff > 0 else "worse")
    return Comparison(
        arm.arm,
        control.arm,
        metric,
        status,
        diff,
        (diff - half, diff + half),
        diff / c.rate if c.rate else None,
        p,
        p_binom,
    )


def _srm(arms: list[ArmSums], shares: dict[str, float]) -> float:
    total_share = sum(shares[a.arm] for a in arms)
    users = sum(a.users for a in arms)
    chi2 = sum(
        (a.users - users * shares[a.arm] / total_share) ** 2 / (users * shares[a.arm] / total_share)
        for a in arms
    )
    return chi2_sf(chi2, len(arms) - 1)


def build_report(
    sums: list[ArmSums],
    plan: Plan | None,
    control: str | None = None,
    shares: dict[str, float] | None = None,
) -> Report:
    """The report over the arms in `sums` (at least two), `control` first by default."""
    sums = [s for s in sums if s.impressions > 0]
    if not sums:
        raise ReportError("no impressions to analyse")
    names = [s.arm for s in sums]
    if len(sums) < 2:
        raise ReportError(f"only one arm ({names[0]}) has impressions: an A/B test needs two")
    control = control or ("A" if "A" in names else "control" if "control" in names else names[0])
    if control not in names:
        raise ReportError(f"control arm {control!r} has no impressions (arms: {', '.join(names)})")
    shares = shares or dict.fromkeys(names, 1.0)
    missing = [n for n in names if n not in shares]
    if missing:
        raise ReportError(f"no traffic share for arm(s) {', '.join(missing)}")
    arms = [ArmReport(s.arm, s.users, rate_of(s, "ctr"), rate_of(s, "cvr")) for s in sums]
    by_name = {a.arm: a for a in arms}
    others = [a for a in arms if a.arm != control]
    report = Report(arms, control, plan, None, None, None, None, None, {}, [], _srm(sums, shares))
    if report.srm_p < SRM_ALPHA:
        report.warnings.append(
            f"sample ratio mismatch: users per arm differ from the traffic shares "
            f"(chi-square p = {report.srm_p:.2g}); check assignment and dropped impressions "
            "before trusting any result"
        )
    if plan is None:
        report.comparisons = [Comparison(a.arm, control, "ctr", "no_plan") for a in others]
        return report
    metric = plan.metric
    report.alpha = plan.alpha / len(others)
    report.formula_per_arm = sample_size_per_arm(
        plan.baseline, plan.target, report.alpha, plan.power
    )
    if plan.design_effect is not None:
        deff, source = plan.design_effect, "plan"
    else:
        rates = [getattr(a, metric) for a in arms]
        weight = sum(r.trials for r in rates)
        deff = max(1.0, sum(r.design_effect * r.trials for r in rates) / weight) if weight else 1.0
        source = "estimated"
    report.design_effect, report.design_effect_source = round(deff, 4), source
    report.required_per_arm = math.ceil(report.formula_per_arm * report.design_effect)
    report.reached = {a.arm: getattr(a, metric).trials >= report.required_per_arm for a in arms}
    for arm in others:
        if not all(report.reached.values()):
            report.comparisons.append(Comparison(arm.arm, control, metric, "underpowered"))
        else:
            report.comparisons.append(_compare(arm, by_name[control], metric, report.alpha))
    return report


def log_warnings(overview: dict[str, Any], arms: list[str]) -> list[str]:
    """What the log itself says about the experiment's hygiene."""
    out = []
    versions: dict[str, set[str]] = {}
    for row in overview["by_version"]:
        versions.setdefault(row["variant"], set()).add(row["model_version"])
    for arm in arms:
        if len(versions.get(arm, ())) > 1:
            out.append(
                f"arm {arm} was served by several model versions "
                f"({', '.join(sorted(versions[arm]))}): its rates mix them"
            )
    if overview["users_in_several_arms"]:
        out.append(
            f"{overview['users_in_several_arms']:,} users appear in more than one arm "
            "(assignment changed during the test?)"
        )
    for arm in arms:
        dropped = overview["dropped_all_time"].get(arm, 0)
        if dropped:
            out.append(
                f"arm {arm}: {dropped:,} impressions were dropped under overload (all "
                "time) and are not in the log"
            )
    return out
