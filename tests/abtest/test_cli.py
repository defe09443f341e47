"""python -m rec_models.abtest as a user runs it: table, JSON, and one clear line on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rec_models.abtest.__main__ import main
from rec_models.events import EventKind, EventLogSettings, Feedback, Impressions, SQLiteSink

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "rec_models.abtest", *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def _log(path: Path, arms: tuple[str, ...]) -> None:
    now = time.time() - 3600
    with SQLiteSink(path, EventLogSettings(max_lag_s=60.0)) as sink:
        for u in range(40):
            for arm in arms:
                rid = f"{arm}-{u}"
                ranked = [(item, 1.0, 0.1) for item in range(1, 6)]
                sink.log_impressions(
                    Impressions.ranked(rid, ranked, model_version="1", variant=arm,
                                       encoder_variant="int8", timestamp=now, user_id=u)
                )  # fmt: skip
                clicks = u % 3 + (arm == "B")
                events = [Feedback(rid, i, EventKind.CLICK, now + 1) for i in range(1, clicks + 1)]
                if events:
                    sink.submit_feedback(events).result(20)


@pytest.fixture(scope="module")
def two_arms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "events.sqlite"
    _log(path, ("A", "B"))
    return path


def test_table_and_json(two_arms: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--events", str(two_arms), "--baseline", "0.2", "--mde", "0.5", "--relative"]) == 0
    text = capsys.readouterr().out
    for expected in ("A/B report", "impressions", "95% CI", "plan", "B vs A", "underpowered"):
        assert expected in text
    assert main(["--events", str(two_arms), "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert [a["arm"] for a in body["arms"]] == ["A", "B"]
    assert body["arms"][0]["ctr"]["trials"] == 200 and body["arms"][0]["ctr"]["successes"] == 39
    assert body["comparisons"][0]["status"] == "no_plan" and body["plan"] is None


def test_the_plan_from_a_config_file_and_flags_over_it(
    two_arms: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "ab.toml"
    config.write_text(
        '[ab]\ncontrol = "A"\n[[ab.variants]]\nname = "A"\nshare = 0.5\n'
        '[[ab.variants]]\nname = "B"\nshare = 0.5\n'
        "[ab.plan]\nbaseline = 0.2\nmde = 0.1\npower = 0.9\n"
    )
    assert main(["--events", str(two_arms), "--config", str(config), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)["plan"]
    assert (plan["baseline"], plan["mde"], plan["power"]) == (0.2, 0.1, 0.9)
    assert main(["--events", str(two_arms), "--config", str(config), "--mde", "0.3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["plan"]["mde"] == 0.3
    assert main(["--events", str(two_arms), "--shares", "A=0.4,B=0.4,C=0.2"]) == 0
    assert "no impressions for configured arm(s) C" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--events", "/nonexistent/events.sqlite"], "no such event log"),
        (["--baseline", "0.1"], "plan: --mde missing"),
        (["--baseline", "2", "--mde", "0.1"], "plan.baseline: must lie in (0, 1)"),
        (["--arms", "A,Z"], "--arms: no impressions for Z"),
        (["--since", "yesterday"], "--since: expected unix seconds or an ISO-8601 time"),
        (["--since", "2999-01-01T00:00:00Z"], "no impressions in that time window"),
        (["--config", "/nonexistent/ab.toml"], "No such file"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(two_arms: Path, args: list[str], message: str) -> None:
    if "--events" not in args:
        args = ["--events", str(two_arms), *args]
    done = _cli(*args)
    assert done.returncode == 1, done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr


def test_an_empty_log_and_a_single_arm_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.sqlite"
    SQLiteSink(empty).close()
    done = _cli("--events", str(empty))
    assert done.returncode == 1 and "no impressions" in done.stderr
    one = tmp_path / "one.sqlite"
    _log(one, ("A",))
    done = _cli("--events", str(one))
    assert done.returncode == 1 and "only one arm (A)" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_arguments_exit_2_with_usage() -> None:
    done = _cli("--alpha", "often")
    assert done.returncode == 2 and "invalid float value" in done.stderr
    assert "Traceback" not in done.stderr
