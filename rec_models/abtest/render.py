"""The A/B report as a readable table (stdout) and as JSON."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from rec_models.abtest.report import Comparison, Rate, Report

VERDICTS = {
    "better": "{arm} is better than {control}",
    "worse": "{arm} is worse than {control}",
    "no_difference": "no significant difference between {arm} and {control}",
    "underpowered": "underpowered: the planned sample size is not reached in every arm; "
    "no verdict (acting on an early look inflates false positives)",
    "no_plan": "no plan (baseline, minimum detectable effect): no test, no verdict",
    "untestable": "not testable: an arm has fewer than two users with trials",
}
METRIC_NAMES = {"ctr": "CTR", "cvr": "CVR"}


def when(ts: float | None) -> str:
    if ts is None or not math.isfinite(ts):
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _rate(r: Rate) -> list[str]:
    if r.rate is None or r.ci95 is None:
        return ["-", "-"]
    return [f"{r.rate:.4f}", f"[{r.ci95[0]:.4f}, {r.ci95[1]:.4f}]"]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    left = {0, len(header) - 1}  # the arm name and the versions read left-aligned

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(header)] + [line(r) for r in rows]


def _p(p: float | None) -> str:
    return "-" if p is None else f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _comparison(c: Comparison, alpha: float | None) -> list[str]:
    name = METRIC_NAMES[c.metric]
    head = f"{c.arm} vs {c.control}"
    verdict = VERDICTS[c.status].format(arm=c.arm, control=c.control)
    if c.difference is None or c.ci is None or c.p_value is None:
        return [f"{head}  {name}: {verdict}"]
    rel = f" ({c.relative:+.1%})" if c.relative is not None else ""
    level = f"{1 - (alpha or 0.05):.1%}".replace(".0%", "%")
    return [
        f"{head}  {name} {c.difference:+.4f}{rel}, {level} CI [{c.ci[0]:+.4f}, {c.ci[1]:+.4f}], "
        f"p = {_p(c.p_value)} (user-clustered z-test; "
        f"pooled binomial p = {_p(c.p_value_binomial)})",
        f"{' ' * len(head)}  -> {verdict}",
    ]


def render_text(report: Report, path: str, overview: dict[str, Any]) -> str:
    versions: dict[str, list[str]] = {}
    for row in overview["by_version"]:
        versions.setdefault(row["variant"], []).append(row["model_version"])
    first = min((r["first"] for r in overview["by_version"]), default=None)
    last = max((r["last"] for r in overview["by_version"]), default=None)
    impressions = sum(a.ctr.trials for a in report.arms)
    users = sum(a.users for a in report.arms)
    out = [
        f"A/B report  {path}",
        f"served      {when(first)} .. {when(last)}  "
        f"({impressions:,} impressions, {users:,} users)",
        "",
    ]
    header = [
        "arm",
        "users",
        "impressions",
        "clicks",
        "CTR",
        "95% CI",
        "conversions",
        "CVR",
        "95% CI",
        "model versions",
    ]
    rows = [
        [
            a.arm,
            f"{a.users:,}",
            f"{a.ctr.trials:,}",
            f"{a.ctr.successes:,}",
            *_rate(a.ctr),
            f"{a.cvr.successes:,}",
            *_rate(a.cvr),
            ", ".join(sorted(versions.get(a.arm, []))),
        ]
        for a in report.arms
    ]
    out += [*_table(header, rows), ""]
    plan = report.plan
    if plan is not None and report.required_per_arm is not None:
        name, unit = (
            METRIC_NAMES[plan.metric],
            ("impressions" if plan.metric == "ctr" else "clicks"),
        )
        mde = f"{plan.mde:+.1%} relative" if plan.relative else f"{plan.mde:+.4f} absolute"
        source = (
            "from the plan" if report.design_effect_source == "plan" else "estimated from the log"
        )
        trials = {a.arm: getattr(a, plan.metric).trials for a in report.arms}
        progress = "; ".join(
            f"{arm} {n:,} ({math.floor(1000 * n / report.required_per_arm) / 10:g}%)"
            for arm, n in trials.items()
        )  # floored: 99.96% is not 100%
        out += [
            f"plan        {name}: baseline {plan.baseline:.4f}, minimum detectable effect {mde} "
            f"(= {plan.effect:+.4f}), alpha {report.alpha:.3g} two-sided per comparison, "
            f"power {plan.power:.2f}",
            f"            {report.formula_per_arm:,} {unit} per arm (two-proportion formula) "
            f"x design effect {report.design_effect:.2f} ({source}) = "
            f"{report.required_per_arm:,}",
            f"            {'reached' if all(report.reached.values()) else 'not reached'}: "
            f"{progress}",
            "",
        ]
    for c in report.comparisons:
        out += _comparison(c, report.alpha)
    if report.warnings:
        out += ["", "warnings:"] + [f"  - {w}" for w in report.warnings]
    return "\n".join(out) + "\n"


def render_json(report: Report, path: str, overview: dict[str, Any]) -> str:
    body = {"events": path, "overview": overview} | report.to_dict()
    return json.dumps(_finite(body), indent=1, allow_nan=False) + "\n"


def _finite(value: Any) -> Any:
    """JSON has no infinity: an undefined variance (one user) becomes null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
