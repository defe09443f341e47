"""The report on a simulated population with a known click model.

- B truly better by the minimum detectable effect, served and clicked through the real
  SQLiteSink, read back from the log by the CLI: at the planned size the report finds B better,
  and the log holds exactly what the simulation did.
- A/A over 200 seeds: the false-positive rate of the verdict is alpha, within a binomial
  tolerance, while the textbook impression-level test (which ignores that users differ) errs
  far more often on the same data.
- Power over 100 seeds: with the effect equal to the MDE, B is found better about `power` of
  the time (at least its lower binomial bound).

Each experiment enrols users in groups until every arm reaches the planned size, then stops.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rec_models.abtest.__main__ import main
from rec_models.abtest.config import Arm, Experiment, Plan
from rec_models.abtest.report import Report, build_report
from rec_models.abtest.simulate import Population, arm_sums, counts, draw, log_users, users_of
from rec_models.events import EventLogSettings, SQLiteSink
from rec_models.events.reader import ArmSums, EventLogReader

ALPHA = 0.05
GROUP = 100  # users enrolled between two looks at the sample size (never at the outcome)


def binomial_bounds(n: int, p: float, tail: float = 0.001) -> tuple[int, int]:
    """[lo, hi] with P(X < lo) <= tail and P(X > hi) <= tail for X ~ Binomial(n, p)."""
    pmf = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
    lo = next(k for k in range(n + 1) if sum(pmf[: k + 1]) > tail)
    hi = next(k for k in range(n, -1, -1) if sum(pmf[k:]) > tail)
    return lo, hi


def experiment(name: str) -> Experiment:
    return Experiment(name, (Arm("A", 0.5), Arm("B", 0.5)), "A")


def run_to_planned_size(
    enrol: Callable[[int, int], list[ArmSums]], plan: Plan, max_users: int = 200_000
) -> Report:
    """Enrol GROUP users at a time until every arm has the planned size; the report then."""
    total: dict[str, ArmSums] = {}
    for first in range(1, max_users, GROUP):
        for s in enrol(first, GROUP):
            total[s.arm] = total[s.arm] + s if s.arm in total else s
        report = build_report(list(total.values()), plan)
        if all(report.reached.values()) and len(total) == 2:
            return report
    raise AssertionError("the planned size was never reached")


def test_b_better_through_the_real_log_is_found_at_the_planned_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    population = Population(baseline_ctr=0.10, concentration=20.0, requests=1.5)
    plan = Plan(baseline=0.10, mde=0.30, relative=True, alpha=ALPHA, power=0.99)
    lift = {"B": 0.30}  # B's true CTR is 0.13: the minimum detectable effect
    rng = np.random.default_rng(2024)
    exp = experiment("e2e")
    path = tmp_path / "events.sqlite"
    settings = EventLogSettings(max_queue_rows=10**6, max_lag_s=60.0, unknown_request_grace_s=0.0)
    users: list = []
    start = time.time() - 10 * 86400 + 3600  # ten days of traffic up to now, at most

    with SQLiteSink(path, settings) as sink, EventLogReader(path) as reader:

        def enrol(first: int, n: int) -> list[ArmSums]:
            group = list(users_of(draw(population, exp, n, rng, lift, first_user=first),
                                  population.k_items, rng))  # fmt: skip
            asyncio.run(log_users(sink, group, rng, start=start + 10 * first))
            users.extend(group)
            assert sink.flush(timeout=60)
            return arm_sums(group)

        run_to_planned_size(enrol, plan)
        assert sink.counters().impressions_dropped == 0
        assert reader.arm_sums() == arm_sums(users)  # the log holds exactly what happened
    args = ["--events", str(path), "--baseline", "0.1", "--mde", "0.3", "--relative",
            "--power", "0.99"]  # fmt: skip
    assert main([*args, "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert all(body["reached"].values())
    (comparison,) = body["comparisons"]
    assert comparison["status"] == "better", comparison
    assert comparison["ci"][0] > 0
    assert main(args) == 0
    assert "B is better than A" in capsys.readouterr().out


def test_a_a_false_positive_rate_is_alpha() -> None:
    # users differ a lot (concentration 8, ~20 impressions each): a design effect around 3
    population = Population(baseline_ctr=0.10, concentration=8.0, requests=2.0)
    plan = Plan(baseline=0.10, mde=0.30, relative=True, alpha=ALPHA, power=0.8)
    seeds = 200
    verdicts, textbook = 0, 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        exp = experiment(f"aa-{seed}")  # a fresh random assignment per experiment
        report = run_to_planned_size(
            lambda first, n, exp=exp, rng=rng: counts(
                draw(population, exp, n, rng, first_user=first), population.k_items, rng
            ),
            plan,
        )
        (c,) = report.comparisons
        verdicts += c.status != "no_difference"
        textbook += c.p_value_binomial is not None and c.p_value_binomial < ALPHA
        assert report.design_effect is not None and report.design_effect > 1.5
    lo, hi = binomial_bounds(seeds, ALPHA)
    assert lo <= verdicts <= hi, f"{verdicts} false positives in {seeds} A/A tests"
    assert textbook > hi, f"the impression-level test erred only {textbook} times"


def test_power_at_the_minimum_detectable_effect() -> None:
    population = Population(baseline_ctr=0.10, concentration=8.0, requests=2.0)
    plan = Plan(baseline=0.10, mde=0.30, relative=True, alpha=ALPHA, power=0.8)
    seeds = 100
    found = 0
    for seed in range(seeds):
        rng = np.random.default_rng(10_000 + seed)
        exp = experiment(f"power-{seed}")
        report = run_to_planned_size(
            lambda first, n, exp=exp, rng=rng: counts(
                draw(population, exp, n, rng, {"B": 0.30}, first_user=first),
                population.k_items, rng,
            ),
            plan,
        )  # fmt: skip
        found += report.comparisons[0].status == "better"
    lo, _ = binomial_bounds(seeds, plan.power)
    assert found >= lo, f"B found better in {found} of {seeds} experiments"
