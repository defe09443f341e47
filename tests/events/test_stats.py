"""Online counts: per variant and model version, last hour and all time, as committed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rec_models.events import Counts, Feedback, SQLiteSink
from rec_models.events.reader import EventLogReader
from rec_models.events.stats import minute_of

from .support import CLICK, CONVERSION, NOW, impressions, rows

Make = Callable[..., SQLiteSink]


def _fill(sink: SQLiteSink) -> None:
    """A/1: 2 requests now (6 impressions), 1 click + 1 conversion; one request 2 h ago, clicked
    5 s ago. B/2: 1 request now, 2 clicks. A/2: one request 3 h ago, never clicked."""
    sink.log_impressions(impressions("a1", ts=NOW - 600))
    sink.log_impressions(impressions("a2", ts=NOW - 60))
    sink.log_impressions(impressions("a-old", ts=NOW - 7200))
    sink.log_impressions(impressions("b1", variant="B", model_version="2", ts=NOW - 30))
    sink.log_impressions(impressions("a-older", model_version="2", ts=NOW - 3 * 3600))
    sink.submit_feedback(
        [
            Feedback("a1", 10, CLICK, NOW - 500),
            Feedback("a1", 10, CONVERSION, NOW - 400),
            Feedback("a-old", 30, CLICK, NOW - 5),
            Feedback("b1", 10, CLICK, NOW - 20),
            Feedback("b1", 20, CLICK, NOW - 10),
        ]
    ).result(20)


def test_counts_per_variant_and_version_over_the_hour_and_all_time(make_sink: Make) -> None:
    sink = make_sink(clock=lambda: NOW)
    _fill(sink)
    stats = sink.stats()
    by = {(a.variant, a.model_version): a for a in stats.arms}
    assert sorted(by) == [("A", "1"), ("A", "2"), ("B", "2")]
    assert by["A", "1"].all_time == Counts(impressions=9, clicks=2, conversions=1)
    # the old request's impressions are outside the hour, its recent click inside
    assert by["A", "1"].last_hour == Counts(impressions=6, clicks=2, conversions=1)
    assert by["B", "2"].all_time == by["B", "2"].last_hour == Counts(3, 2, 0)
    assert by["A", "2"].all_time == Counts(3, 0, 0) and by["A", "2"].last_hour == Counts()
    assert by["B", "2"].all_time.ctr == pytest.approx(2 / 3)
    assert by["A", "1"].all_time.cvr == pytest.approx(1 / 2)
    assert Counts().ctr is None and Counts().cvr is None
    all_time, last_hour = stats.total
    assert all_time == Counts(15, 4, 1) and last_hour == Counts(9, 4, 1)
    assert stats.window_start == (minute_of(NOW) - 59) * 60


def test_stats_json_is_what_get_stats_answers(make_sink: Make) -> None:
    sink = make_sink(clock=lambda: NOW)
    _fill(sink)
    body = sink.stats().to_dict()
    assert set(body) == {"generated_at", "last_hour_since", "total", "by_variant"}
    assert body["total"]["all_time"] == {
        "impressions": 15, "clicks": 4, "conversions": 1, "dropped": 0,
        "ctr": pytest.approx(4 / 15), "cvr": 0.25,
    }  # fmt: skip
    b = next(v for v in body["by_variant"] if v["variant"] == "B")
    assert b["model_version"] == "2" and b["last_hour"]["clicks"] == 2


def test_every_worker_sees_the_same_counts_and_they_match_the_rows(
    make_sink: Make, log_path: Path
) -> None:
    sink = make_sink(clock=lambda: NOW)
    _fill(sink)
    other = make_sink(clock=lambda: NOW)  # another worker process's sink on the same file
    assert other.stats() == sink.stats()
    with EventLogReader(log_path) as reader:
        sums = {s.arm: s for s in reader.arm_sums()}
    for variant in ("A", "B"):
        arms = [a.all_time for a in sink.stats().arms if a.variant == variant]
        total = sum(arms, Counts())
        assert (total.impressions, total.clicks, total.conversions) == (
            sums[variant].impressions,
            sums[variant].clicks,
            sums[variant].conversions,
        )


def test_minute_counts_older_than_kept_are_not_stored(make_sink: Make, log_path: Path) -> None:
    sink = make_sink(clock=lambda: NOW)
    _fill(sink)
    oldest = rows(log_path, "SELECT min(minute) FROM counts_minute")[0][0]
    assert oldest >= minute_of(NOW - 2 * 3600)
    assert rows(log_path, "SELECT sum(impressions) FROM counts_total") == [(15,)]


def test_minute_counts_age_out_as_time_moves_on(make_sink: Make, log_path: Path) -> None:
    clock = [NOW]
    sink = make_sink(clock=lambda: clock[0])
    sink.log_impressions(impressions("then", ts=NOW))
    sink.submit_feedback(Feedback("then", 10, CLICK, NOW)).result(20)
    assert rows(log_path, "SELECT minute FROM counts_minute") == [(minute_of(NOW),)]
    clock[0] = NOW + 3 * 3600
    sink.log_impressions(impressions("now", ts=clock[0]))
    sink.submit_feedback(Feedback("now", 10, CLICK, clock[0])).result(20)
    assert rows(log_path, "SELECT minute FROM counts_minute") == [(minute_of(clock[0]),)]
    assert sink.stats().total == (Counts(6, 2, 0), Counts(3, 1, 0))
