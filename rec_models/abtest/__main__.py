"""python -m rec_models.abtest: the A/B report of the event log (stdout; --json for JSON).

    python -m rec_models.abtest --baseline 0.05 --mde 0.1 --relative
    python -m rec_models.abtest --config ab.toml --json        # plan and shares from [ab]

Exit status 0 with a report (whatever it concludes), 1 when the log cannot support one (no such
file, no impressions, a single arm), 2 for bad arguments; always one line on stderr, never a
traceback.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from dataclasses import asdict
from typing import Any

from rec_models.abtest.config import METRICS, Plan, load_ab
from rec_models.abtest.render import render_json, render_text
from rec_models.abtest.report import build_report, log_warnings
from rec_models.events.model import parse_timestamp
from rec_models.events.reader import ArmSums, EventLogReader
from rec_models.events.settings import default_events_path

PLAN_FLAGS = ("metric", "baseline", "mde", "relative", "alpha", "power", "design_effect")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rec_models.abtest", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--events", default=None, help=f"the log (default {default_events_path()})")
    p.add_argument("--config", help="TOML file whose [ab] table gives plan, control, shares")
    p.add_argument("--metric", choices=METRICS, help="what the plan is about (default ctr)")
    p.add_argument("--baseline", type=float, help="the control's expected rate, e.g. 0.05")
    p.add_argument("--mde", type=float, help="minimum detectable effect (absolute, or --relative)")
    p.add_argument("--relative", action="store_true", default=None, help="mde relative to baseline")
    p.add_argument("--alpha", type=float, help="significance level, two-sided (default 0.05)")
    p.add_argument("--power", type=float, help="power at the mde (default 0.8)")
    p.add_argument(
        "--design-effect",
        type=float,
        help="variance inflation of clustering by user (default: estimated from the log)",
    )
    p.add_argument("--control", help="the control arm (default: A, control, or the first)")
    p.add_argument("--arms", help="comma-separated arms to compare (default: all in the log)")
    p.add_argument("--shares", help="traffic shares for the sample-ratio check, e.g. A=0.9,B=0.1")
    p.add_argument("--since", help="only impressions served at or after (unix s or ISO-8601)")
    p.add_argument("--until", help="only impressions served before (unix s or ISO-8601)")
    p.add_argument("--json", action="store_true", help="JSON on stdout instead of the table")
    return p


def _time(value: str | None, flag: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_timestamp(float(value) if value.replace(".", "", 1).isdigit() else value)
    except ValueError as exc:
        raise ValueError(f"{flag}: {exc}") from None


def _shares(text: str) -> dict[str, float]:
    out = {}
    for part in text.split(","):
        name, _, share = part.partition("=")
        try:
            out[name.strip()] = float(share)
        except ValueError:
            raise ValueError(f"--shares: expected NAME=SHARE pairs, got {part!r}") from None
        if not out[name.strip()] > 0:
            raise ValueError(f"--shares: the share of {name.strip()!r} must be positive")
    return out


def _plan(args: argparse.Namespace, from_file: Plan | None) -> Plan | None:
    values: dict[str, Any] = asdict(from_file) if from_file else {}
    values |= {k: getattr(args, k) for k in PLAN_FLAGS if getattr(args, k) is not None}
    if not values:
        return None
    missing = [k for k in ("baseline", "mde") if k not in values]
    if missing:
        raise ValueError(f"plan: --{' and --'.join(missing)} missing (a plan needs both)")
    return Plan(**values)


def _select(sums: list[ArmSums], text: str) -> list[ArmSums]:
    wanted = [a.strip() for a in text.split(",") if a.strip()]
    unknown = [a for a in wanted if a not in {s.arm for s in sums}]
    if unknown:
        known = ", ".join(s.arm for s in sums)
        raise ValueError(f"--arms: no impressions for {', '.join(unknown)} (arms: {known})")
    return [s for s in sums if s.arm in wanted]


def run(args: argparse.Namespace) -> str:
    experiment, file_plan = load_ab(args.config) if args.config else (None, None)
    plan = _plan(args, file_plan)
    shares = _shares(args.shares) if args.shares else (experiment.shares if experiment else None)
    control = args.control or (experiment.control if experiment else None)
    since, until = _time(args.since, "--since"), _time(args.until, "--until")
    path = args.events or str(default_events_path())
    with EventLogReader(path) as reader:
        sums = reader.arm_sums(since, until)
        overview = reader.overview(since, until)
    if not sums:
        window = " in that time window" if since is not None or until is not None else ""
        raise ValueError(f"{path}: no impressions{window}")
    logged = {s.arm for s in sums}
    if args.arms:
        sums = _select(sums, args.arms)
    report = build_report(sums, plan, control, shares)
    report.warnings += log_warnings(overview, [a.arm for a in report.arms])
    absent = sorted(set(shares or ()) - logged)
    if absent:
        report.warnings.append(f"no impressions for configured arm(s) {', '.join(absent)}")
    return (render_json if args.json else render_text)(report, path, overview)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        sys.stdout.write(run(args))
    except (OSError, ValueError, sqlite3.Error) as exc:
        print(f"abtest: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
