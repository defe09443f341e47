"""The report: verdict only at the planned size, clustered tests, alpha split, SRM, errors."""

from __future__ import annotations

import json
import math

import pytest

from rec_models.abtest.config import Plan
from rec_models.abtest.render import render_json, render_text
from rec_models.abtest.report import ReportError, build_report
from rec_models.abtest.stats import sample_size_per_arm
from rec_models.events.reader import ArmSums

OVERVIEW = {"by_version": [], "dropped_all_time": {}, "users_in_several_arms": 0}


def arm(name: str, users: int, clicks: tuple[int, ...], per_user: int = 10) -> ArmSums:
    """`users` users of `per_user` impressions each, with clicks cycling through `clicks`."""
    rows = [(per_user, clicks[u % len(clicks)], 0) for u in range(users)]
    return ArmSums.from_users(name, rows)


PLAN = Plan(baseline=0.10, mde=0.05)  # 0.10 -> 0.15: 683 impressions per arm by the formula


def test_without_a_plan_there_is_no_test_and_no_verdict() -> None:
    report = build_report([arm("A", 100, (0, 2)), arm("B", 100, (0, 3))], None)
    assert [c.status for c in report.comparisons] == ["no_plan"]
    assert report.comparisons[0].p_value is None and report.required_per_arm is None
    text = render_text(report, "log.sqlite", OVERVIEW)
    assert "no plan" in text and "p =" not in text
    a = report.arms[0]
    assert (a.users, a.ctr.trials, a.ctr.successes, a.ctr.rate) == (100, 1000, 100, 0.1)
    assert a.ctr.ci95 is not None and a.ctr.ci95[0] < 0.1 < a.ctr.ci95[1]


def test_below_the_planned_size_it_says_underpowered_and_shows_no_p_value() -> None:
    report = build_report([arm("A", 50, (0, 2)), arm("B", 50, (0, 3))], PLAN)
    assert report.formula_per_arm == sample_size_per_arm(0.10, 0.15, 0.05, 0.8)
    assert report.required_per_arm == math.ceil(report.formula_per_arm * report.design_effect)
    assert report.reached == {"A": False, "B": False}
    (c,) = report.comparisons
    assert c.status == "underpowered" and c.p_value is None and c.difference is None
    text = render_text(report, "log.sqlite", OVERVIEW)
    assert "underpowered" in text and "no verdict" in text and "p =" not in text
    body = json.loads(render_json(report, "log.sqlite", OVERVIEW))
    assert body["comparisons"][0]["p_value"] is None and body["reached"] == {"A": False, "B": False}


def test_at_the_planned_size_a_better_arm_is_found() -> None:
    report = build_report([arm("A", 1000, (0, 2)), arm("B", 1000, (0, 3))], PLAN)
    (c,) = report.comparisons
    assert all(report.reached.values()) and c.status == "better"
    assert c.difference == pytest.approx(0.05) and c.relative == pytest.approx(0.5)
    assert c.ci is not None and 0 < c.ci[0] < 0.05 < c.ci[1]
    assert c.p_value is not None and c.p_value < 1e-6
    # users vary more than independent impressions would: the clustered test is the cautious one
    assert c.p_value_binomial is not None and c.p_value > c.p_value_binomial
    assert report.arms[0].ctr.design_effect > 1
    text = render_text(report, "log.sqlite", OVERVIEW)
    assert "B is better than A" in text and "reached" in text


def test_a_worse_arm_and_no_difference() -> None:
    worse = build_report([arm("A", 1000, (0, 3)), arm("B", 1000, (0, 2))], PLAN)
    assert worse.comparisons[0].status == "worse"
    same = build_report([arm("A", 1000, (0, 2)), arm("B", 1000, (0, 2))], PLAN)
    assert same.comparisons[0].status == "no_difference"
    assert same.comparisons[0].p_value == pytest.approx(1.0)


def test_alpha_is_split_over_the_comparisons() -> None:
    arms = [arm("A", 1000, (0, 2)), arm("B", 1000, (0, 3)), arm("C", 1000, (0, 2))]
    report = build_report(arms, PLAN)
    assert report.alpha == pytest.approx(0.025)
    assert report.formula_per_arm == sample_size_per_arm(0.10, 0.15, 0.025, 0.8)
    assert [(c.arm, c.control, c.status) for c in report.comparisons] == [
        ("B", "A", "better"), ("C", "A", "no_difference")]  # fmt: skip


def test_a_given_design_effect_replaces_the_estimate() -> None:
    plan = Plan(baseline=0.10, mde=0.05, design_effect=3.0)
    report = build_report([arm("A", 100, (0, 2)), arm("B", 100, (0, 3))], plan)
    assert (report.design_effect, report.design_effect_source) == (3.0, "plan")
    assert report.required_per_arm == math.ceil(report.formula_per_arm * 3.0)


def test_a_sample_ratio_mismatch_is_flagged() -> None:
    arms = [arm("A", 600, (0, 2)), arm("B", 400, (0, 2))]
    assert any("sample ratio mismatch" in w for w in build_report(arms, None).warnings)
    fair = build_report(arms, None, shares={"A": 0.6, "B": 0.4})
    assert not any("sample ratio mismatch" in w for w in fair.warnings)


def test_the_control_defaults_to_A_and_can_be_chosen() -> None:
    arms = [arm("A", 10, (1,)), arm("B", 10, (1,)), arm("control", 10, (1,))]
    assert build_report(arms, None).control == "A"
    assert build_report(arms, None, control="control").comparisons[0].control == "control"
    assert build_report(arms[1:], None).control == "control"


@pytest.mark.parametrize(
    ("sums", "control", "message"),
    [
        ([], None, "no impressions"),
        ([arm("A", 10, (1,))], None, r"only one arm \(A\)"),
        ([arm("A", 10, (1,)), arm("B", 10, (1,))], "Z", "control arm 'Z' has no impressions"),
    ],
)
def test_reports_the_log_cannot_support_are_refused(
    sums: list[ArmSums], control: str | None, message: str
) -> None:
    with pytest.raises(ReportError, match=message):
        build_report(sums, None, control)
