"""EventLogReader: labelled impressions for retraining, per-arm sums for the A/B report."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from rec_models.events import Feedback, SQLiteSink
from rec_models.events.reader import ArmSums, EventLogReader
from rec_models.events.schema import EventLogFileError

from .support import CLICK, CONVERSION, NOW, impressions

Make = Callable[..., SQLiteSink]


def _log(sink: SQLiteSink) -> None:
    sink.log_impressions(impressions("r1", items=(1, 2, 3), ts=NOW - 300, user_id=1))
    sink.log_impressions(impressions("r2", items=(4, 5), ts=NOW - 200, user_id=1))
    sink.log_impressions(impressions("r3", items=(1, 9), variant="B", ts=NOW - 100, user_id=None))
    sink.submit_feedback(
        [
            Feedback("r1", 2, CLICK, NOW - 290),
            Feedback("r1", 2, CONVERSION, NOW - 280),
            Feedback("r2", 4, CLICK, NOW - 190),
            Feedback("r3", 9, CLICK, NOW - 90),
        ]
    ).result(20)


def test_labelled_impressions_oldest_first_with_their_outcomes(
    make_sink: Make, log_path: Path
) -> None:
    _log(make_sink(clock=lambda: NOW))
    with EventLogReader(log_path) as reader:
        got = list(reader.labelled_impressions())
        window = list(reader.labelled_impressions(since=NOW - 250, until=NOW - 150))
    assert [(r.request_id, r.item_id, r.rank, r.clicked, r.converted) for r in got] == [
        ("r1", 1, 1, False, False), ("r1", 2, 2, True, True), ("r1", 3, 3, False, False),
        ("r2", 4, 1, True, False), ("r2", 5, 2, False, False),
        ("r3", 1, 1, False, False), ("r3", 9, 2, True, False),
    ]  # fmt: skip
    assert got[0].user_id == 1 and got[-1].user_id is None and got[-1].profile_fingerprint
    assert (got[0].model_version, got[0].variant, got[0].encoder_variant) == ("1", "A", "int8")
    assert [r.request_id for r in window] == ["r2", "r2"]


def test_arm_sums_group_by_user_as_the_statistics_need(make_sink: Make, log_path: Path) -> None:
    _log(make_sink(clock=lambda: NOW))
    with EventLogReader(log_path) as reader:
        sums = reader.arm_sums()
        overview = reader.overview()
    # A: one user with 5 impressions, 2 clicks, 1 conversion; B: one cold user, 2 / 1 / 0
    assert sums == [ArmSums.from_users("A", [(5, 2, 1)]), ArmSums.from_users("B", [(2, 1, 0)])]
    assert sums[0] == ArmSums("A", 1, 5, 2, 1, 25, 10, 4, 2, 1, 1)
    assert overview["users_in_several_arms"] == 0
    assert [(v["variant"], v["requests"], v["impressions"]) for v in overview["by_version"]] == [
        ("A", 2, 5), ("B", 1, 2)]  # fmt: skip


def test_reading_never_creates_or_accepts_a_foreign_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such event log"):
        EventLogReader(tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()
    (tmp_path / "empty.sqlite").touch()
    with pytest.raises(EventLogFileError, match="empty SQLite file"):
        EventLogReader(tmp_path / "empty.sqlite")
    other = sqlite3.connect(tmp_path / "other.sqlite")
    other.execute("CREATE TABLE t (x)")
    other.close()
    with pytest.raises(EventLogFileError, match="other tables"):
        EventLogReader(tmp_path / "other.sqlite")


def test_a_reader_runs_beside_the_live_writer(make_sink: Make, log_path: Path) -> None:
    sink = make_sink(clock=lambda: NOW)
    _log(sink)
    with EventLogReader(log_path) as reader:
        before = reader.arm_sums()
        sink.log_impressions(impressions("r4", items=(7,), ts=NOW - 50, user_id=2))
        sink.submit_feedback(Feedback("r4", 7, CLICK, NOW - 40)).result(20)
        after = reader.arm_sums()
    assert before[0].users == 1 and after[0].users == 2 and after[0].clicks == 3
