"""When the writer falls behind: impressions dropped and counted, feedback shed at once (503),
storage failures answered 503 without a hang, and everything recovers afterwards.

The writer is stalled for real: another connection holds SQLite's write lock, as another
process (or a slow disk) would.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from rec_models.events import Feedback, FeedbackError, SinkOverloaded, SinkUnavailable, SQLiteSink

from .support import CLICK, impressions, rows, wait_until, write_lock

Make = Callable[..., SQLiteSink]


def test_a_full_queue_drops_impressions_counts_them_and_sheds_feedback(
    make_sink: Make, log_path: Path
) -> None:
    # impressions alone linger a minute: they stay queued until feedback (or a flush) comes
    sink = make_sink(max_queue_rows=9, feedback_reserve_rows=2, max_lag_s=60.0,
                     impression_linger_s=60.0)  # fmt: skip
    sink.log_impressions(impressions("r0"))
    sink.submit_feedback(Feedback("r0", 10, CLICK)).result(20)
    with write_lock(log_path):
        accepted = [sink.log_impressions(impressions(f"r{i}")) for i in range(1, 6)]
        assert accepted == [True, True, True, False, False]  # 3 rows each, 9 fit
        c = sink.counters()
        assert (c.impressions_dropped, c.queue_rows) == (6, 9)
        three = [Feedback("r1", 10, CLICK), Feedback("r2", 10, CLICK), Feedback("r3", 10, CLICK)]
        with pytest.raises(SinkOverloaded) as info:  # raised by submit itself: no waiting
            sink.submit_feedback(three)  # 9 + 3 > 9 + 2 reserved for feedback
        assert info.value.status == 503 and "9 events are waiting" in str(info.value)
        assert sink.counters().feedback_shed == 1
        fits = sink.submit_feedback(three[:2])
    assert fits.result(20).stored == 2
    wait_until(lambda: sink.counters().queue_rows == 0)
    # the log counts what it never stored, per variant, with its next commit
    assert rows(log_path, "SELECT impressions, dropped FROM counts_total") == [(12, 6)]
    with pytest.raises(FeedbackError) as err:
        sink.submit_feedback(Feedback("r5", 10, CLICK)).result(20)
    assert err.value.status == 404 and "its impressions were dropped" in str(err.value)
    assert sink.log_impressions(impressions("r6"))  # and it flows again


def test_a_writer_behind_by_max_lag_sheds_feedback_while_impressions_flow(
    make_sink: Make, log_path: Path
) -> None:
    sink = make_sink(max_lag_s=0.2)
    with write_lock(log_path):
        assert sink.log_impressions(impressions("r1"))
        wait_until(lambda: sink.counters().lag_s > 0.25)
        with pytest.raises(SinkOverloaded, match=r"the writer is \d+\.\d s behind"):
            sink.submit_feedback(Feedback("r1", 10, CLICK))
        assert sink.log_impressions(impressions("r2"))  # /recommend is not held up
    wait_until(lambda: sink.counters().queue_rows == 0)
    assert sink.submit_feedback(Feedback("r1", 10, CLICK)).result(20).stored == 1
    assert rows(log_path, "SELECT count(*) FROM requests") == [(2,)]


def test_a_failing_store_answers_503_never_hangs_and_counts_lost_impressions(
    make_sink: Make, log_path: Path
) -> None:
    sink = make_sink(busy_timeout_s=0.05, max_lag_s=60.0)
    sink.log_impressions(impressions("r0"))
    sink.submit_feedback(Feedback("r0", 10, CLICK)).result(20)
    with write_lock(log_path):  # every write attempt times out on the lock
        sink.log_impressions(impressions("r1"))
        future = sink.submit_feedback(Feedback("r0", 20, CLICK))
        with pytest.raises(SinkUnavailable) as info:
            future.result(timeout=20)
        assert info.value.status == 503 and "nothing was stored, retry" in str(info.value)
        wait_until(lambda: sink.counters().impressions_lost == 3)  # r1, after 3 attempts
    c = sink.counters()
    assert c.feedback_failed == 1 and c.queue_rows == 0
    retry = sink.submit_feedback(Feedback("r0", 20, CLICK)).result(20)
    assert retry.stored == 1
    assert rows(log_path, "SELECT request_id FROM requests") == [("r0",)]
    assert rows(log_path, "PRAGMA integrity_check") == [("ok",)]


def test_two_writers_on_one_file_store_a_click_once(tmp_path: Path) -> None:
    """Two worker processes' sinks (here two sinks in one process, same thing to SQLite)."""
    from rec_models.events import EventLogSettings

    path = tmp_path / "events.sqlite"
    settings = EventLogSettings(unknown_request_grace_s=0.0)
    with SQLiteSink(path, settings) as one, SQLiteSink(path, settings) as two:
        one.log_impressions(impressions("r1"))
        wait_until(lambda: one.counters().impressions_written == 3)
        click = Feedback("r1", 10, CLICK)
        futures = [one.submit_feedback(click), two.submit_feedback(click)]
        outcomes = []
        for f in futures:
            try:
                outcomes.append(f.result(20).stored)
            except FeedbackError as exc:
                outcomes.append(exc.status)
        assert sorted(outcomes) == [1, 409]
    assert rows(path, "SELECT count(*) FROM feedback") == [(1,)]


def test_feedback_waits_for_another_workers_commit_within_the_grace(tmp_path: Path) -> None:
    from rec_models.events import EventLogSettings

    path = tmp_path / "events.sqlite"
    slow = EventLogSettings(impression_linger_s=1.5)  # commits its impressions 1.5 s late
    for grace, expect in ((30.0, "stored"), (0.0, 404)):
        with (
            SQLiteSink(path, slow) as serving,
            SQLiteSink(path, EventLogSettings(unknown_request_grace_s=grace)) as other,
        ):
            rid = f"r-{grace}"
            serving.log_impressions(impressions(rid))
            future = other.submit_feedback(Feedback(rid, 10, CLICK))
            try:
                outcome: object = "stored" if future.result(20).stored == 1 else "?"
            except FeedbackError as exc:
                outcome = exc.status
            assert outcome == expect, grace


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    from rec_models.events.schema import EventLogFileError

    path = tmp_path / "events.sqlite"
    SQLiteSink(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(EventLogFileError, match="schema version 99 is newer"):
        SQLiteSink(path)


def test_unknown_ids_are_held_for_a_recheck_only_up_to_a_bound(
    make_sink: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rec_models.events import sqlite_sink

    monkeypatch.setattr(sqlite_sink, "MAX_DEFERRED", 3)
    sink = make_sink(unknown_request_grace_s=60.0)
    futures = [sink.submit_feedback(Feedback(f"nope{i}", 1, CLICK)) for i in range(5)]
    wait_until(lambda: sum(f.done() for f in futures) == 2)  # beyond the bound: answered now
    assert all(f.exception().status == 404 for f in futures if f.done())  # type: ignore[union-attr]
    # a call that fails for another reason too is never held
    sink.log_impressions(impressions("r1"))
    sink.submit_feedback(Feedback("r1", 10, CLICK)).result(20)
    mixed = sink.submit_feedback([Feedback("r1", 10, CLICK), Feedback("nope", 1, CLICK)])
    with pytest.raises(FeedbackError) as info:
        mixed.result(20)
    assert info.value.kinds == {"duplicate", "unknown_request"} and info.value.status == 404
    sink.close(timeout=20)  # the held ones are answered when the sink stops
    assert all(f.done() and f.exception().status == 404 for f in futures)  # type: ignore[union-attr]


def test_a_crashed_writer_fails_its_callers_instead_of_hanging_them(make_sink: Make) -> None:
    sink = make_sink()
    sink.log_impressions(impressions("r1"))
    sink.submit_feedback(Feedback("r1", 10, CLICK)).result(20)

    def bug(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in the writer")

    sink._queue.written = bug  # type: ignore[method-assign]  # the next batch crashes the thread
    future = sink.submit_feedback(Feedback("r1", 20, CLICK))
    with pytest.raises(SinkUnavailable, match="writer failed: a bug in the writer"):
        future.result(timeout=20)
    with pytest.raises(SinkUnavailable, match="writer failed"):
        sink.submit_feedback(Feedback("r1", 30, CLICK))
    assert sink.flush(timeout=20)  # nothing left to wait for
