"""SQLiteSink: what is stored, what is refused with which status, idempotency, ordering."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from rec_models.events import (
    Feedback,
    FeedbackError,
    FeedbackReceipt,
    SinkUnavailable,
    SQLiteSink,
)
from rec_models.events.schema import EventLogFileError

from .support import CLICK, CONVERSION, NOW, impressions, rows, wait_until, write_lock

Make = Callable[..., SQLiteSink]


def _error(sink: SQLiteSink, events: Feedback | list[Feedback]) -> FeedbackError:
    with pytest.raises(FeedbackError) as info:
        sink.submit_feedback(events).result(timeout=20)
    return info.value


def test_file_is_sqlite_in_wal_mode_with_the_chosen_sync(make_sink: Make, log_path: Path) -> None:
    make_sink(synchronous="FULL")
    assert rows(log_path, "PRAGMA journal_mode") == [("wal",)]
    assert log_path.parent.name == "events"


def test_impressions_and_feedback_are_stored(make_sink: Make, log_path: Path) -> None:
    sink = make_sink(clock=lambda: NOW + 120)
    assert sink.log_impressions(impressions("r1", items=(10, 20, 30), ts=NOW))
    receipt = sink.submit_feedback(
        [Feedback("r1", 20, CLICK, NOW + 5), Feedback("r1", 20, CONVERSION, NOW + 60)]
    ).result(20)
    assert receipt == FeedbackReceipt(stored=2)
    assert rows(
        log_path,
        "SELECT request_id, ts, user_id, model_version, variant, encoder_variant FROM requests",
    ) == [("r1", NOW, 7, "1", "A", "int8")]
    assert rows(log_path, "SELECT item_id, rank FROM impressions ORDER BY rank") == [
        (10, 1),
        (20, 2),
        (30, 3),
    ]
    assert rows(log_path, "SELECT item_id, event, ts FROM feedback ORDER BY ts") == [
        (20, "click", NOW + 5),
        (20, "conversion", NOW + 60),
    ]
    c = sink.counters()
    assert (c.impressions_queued, c.impressions_written, c.feedback_written) == (3, 3, 2)
    assert c.queue_rows == 0 and c.impressions_dropped == 0


def test_the_same_event_twice_is_stored_once_and_answered_409(
    make_sink: Make, log_path: Path
) -> None:
    sink = make_sink()
    sink.log_impressions(impressions("r1"))
    click = Feedback("r1", 10, CLICK)
    assert sink.submit_feedback(click).result(20).stored == 1
    again = _error(sink, click)
    assert again.status == 409 and again.kind == "duplicate"
    assert again.to_dict()["detail"][0]["loc"] == ["event"]
    assert "the click on item 10 of request 'r1' is already stored" in str(again)
    inside = _error(sink, [Feedback("r1", 20, CLICK), Feedback("r1", 20, CLICK)])
    assert inside.status == 409 and inside.errors[0][:2] == (
        (1, "event"),
        "duplicate of event [0] in this call",
    )
    assert rows(log_path, "SELECT count(*) FROM feedback") == [(1,)]


@pytest.mark.parametrize(
    ("event", "status", "loc", "message"),
    [
        (Feedback("nope", 10, CLICK), 404, ("request_id",), "unknown request_id 'nope'"),
        (Feedback("r1", 99, CLICK), 400, ("item_id",), "item 99 was not shown in request 'r1'"),
        (Feedback("r1", 10, CONVERSION), 400, ("event",), "a conversion needs a click"),
        (
            Feedback("r1", 10, CLICK, NOW - 3600),
            400,
            ("timestamp",),
            "before request 'r1' was served",
        ),
        (
            Feedback("r1", 10, CLICK, NOW - 40 * 86400),
            400,
            ("timestamp",),
            "older than the retention window (30 days)",
        ),
        (Feedback("r1", 10, CLICK, NOW + 3600), 400, ("timestamp",), "3600 s in the future"),
    ],
)
def test_bad_feedback_is_refused_naming_the_field(
    make_sink: Make, event: Feedback, status: int, loc: tuple, message: str
) -> None:
    sink = make_sink(clock=lambda: NOW)
    sink.log_impressions(impressions("r1", ts=NOW - 60))
    err = _error(sink, event)
    assert (err.status, err.errors[0][0]) == (status, loc)
    assert message in str(err)


def test_feedback_on_a_request_older_than_the_retention_window_is_closed(make_sink: Make) -> None:
    clock = [NOW - 31 * 86400]
    sink = make_sink(clock=lambda: clock[0])
    sink.log_impressions(impressions("old", ts=clock[0]))
    sink.submit_feedback(Feedback("old", 10, CLICK)).result(20)
    clock[0] = NOW  # a month later, a click "now" on that request
    err = _error(sink, Feedback("old", 20, CLICK, NOW))
    assert err.status == 400 and err.field == "request_id" and "retention window" in str(err)


def test_a_call_is_all_or_nothing(make_sink: Make, log_path: Path) -> None:
    sink = make_sink()
    sink.log_impressions(impressions("r1"))
    err = _error(sink, [Feedback("r1", 10, CLICK), Feedback("r2", 10, CLICK)])
    assert err.status == 404 and err.errors[0][0] == (1, "request_id")
    assert rows(log_path, "SELECT count(*) FROM feedback") == [(0,)]
    both = [Feedback("r1", 10, CONVERSION), Feedback("r1", 10, CLICK)]
    assert sink.submit_feedback(both).result(20).stored == 2  # the click may come later in the list


def test_too_many_events_in_one_call_is_413(make_sink: Make) -> None:
    sink = make_sink(max_feedback_events=3)
    with pytest.raises(FeedbackError) as info:
        sink.submit_feedback([Feedback("r1", i, CLICK) for i in range(4)])
    assert info.value.status == 413
    assert sink.counters().feedback_rejected == 1


def test_feedback_for_impressions_still_queued_is_accepted(make_sink: Make, log_path: Path) -> None:
    sink = make_sink()
    with write_lock(log_path):  # nothing can be committed meanwhile
        sink.log_impressions(impressions("r1"))
        future = sink.submit_feedback(Feedback("r1", 30, CLICK))
        assert not future.done()  # returned at once, without waiting for the writer
        wait_until(lambda: sink.counters().lag_s > 0.05)
        assert not future.done()
    assert future.result(20).stored == 1
    assert rows(log_path, "SELECT item_id FROM feedback") == [(30,)]


def test_a_cancelled_call_that_was_still_queued_is_not_stored(
    make_sink: Make, log_path: Path
) -> None:
    sink = make_sink()
    sink.log_impressions(impressions("r1"))
    sink.submit_feedback(Feedback("r1", 10, CLICK)).result(20)
    with write_lock(log_path):
        sink.log_impressions(impressions("r2"))
        wait_until(lambda: sink.counters().lag_s > 0.1)  # the writer holds r2, waiting to write
        future = sink.submit_feedback(Feedback("r1", 20, CLICK))
        assert future.cancel()
    wait_until(lambda: rows(log_path, "SELECT count(*) FROM requests") == [(2,)])
    sink.submit_feedback(Feedback("r2", 10, CLICK)).result(20)
    assert rows(log_path, "SELECT request_id, item_id FROM feedback ORDER BY request_id") == [
        ("r1", 10),
        ("r2", 10),
    ]


def test_a_reused_request_id_keeps_the_first_and_counts_the_second(
    make_sink: Make, log_path: Path
) -> None:
    sink = make_sink()
    sink.log_impressions(impressions("r1", items=(1, 2)))
    sink.log_impressions(impressions("r1", items=(3, 4, 5)))
    wait_until(lambda: sink.counters().impressions_lost == 3)
    assert rows(log_path, "SELECT item_id FROM impressions ORDER BY item_id") == [(1,), (2,)]


def test_record_feedback_awaits_without_blocking_the_loop(make_sink: Make, log_path: Path) -> None:
    sink = make_sink()
    sink.log_impressions(impressions("r1"))

    async def main() -> list[str]:
        order: list[str] = []

        async def ticker() -> None:
            order.append("tick")

        with write_lock(log_path):
            pending = asyncio.ensure_future(sink.record_feedback(Feedback("r1", 10, CLICK)))
            await ticker()  # runs while the commit cannot happen: the loop is free
            await asyncio.sleep(0.1)
            assert not pending.done()
        assert (await pending).stored == 1
        order.append("stored")
        return order

    assert asyncio.run(main()) == ["tick", "stored"]


def test_close_writes_everything_accepted_then_refuses(make_sink: Make, log_path: Path) -> None:
    sink = make_sink(impression_linger_s=60.0)  # would wait a minute for company
    for i in range(5):
        assert sink.log_impressions(impressions(f"r{i}"))
    sink.close(timeout=20)
    assert rows(log_path, "SELECT count(*) FROM impressions") == [(15,)]
    assert not sink.log_impressions(impressions("late"))
    assert sink.counters().impressions_dropped == 3
    with pytest.raises(SinkUnavailable) as info:
        sink.submit_feedback(Feedback("r1", 10, CLICK))
    assert info.value.status == 503


def test_flush_writes_what_was_accepted_without_lingering(make_sink: Make, log_path: Path) -> None:
    sink = make_sink(impression_linger_s=60.0)
    sink.log_impressions(impressions("r1"))
    assert rows(log_path, "SELECT count(*) FROM impressions") == [(0,)]  # still lingering
    assert sink.flush(timeout=20)
    assert rows(log_path, "SELECT count(*) FROM impressions") == [(3,)]
    with write_lock(log_path):
        sink.log_impressions(impressions("r2"))
        assert not sink.flush(timeout=0.2)  # cannot finish while the lock is held elsewhere
    assert sink.flush(timeout=20)


def test_flush_returns_only_once_every_accepted_row_is_written(make_sink: Make) -> None:
    # A regression test of a race (flush saw the queue empty between the writer taking its
    # next batch and starting it); before the fix it failed 2 of 4 runs here.
    sink = make_sink(max_queue_rows=10**6)
    logged = 0
    for _ in range(3):
        for _ in range(3000):
            assert sink.log_impressions(impressions(f"r{logged}"))
            logged += 1
        assert sink.flush(timeout=60)
        assert sink.counters().impressions_written == 3 * logged


def test_a_foreign_file_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite"
    path.write_text("just text, not a database " * 100)
    with pytest.raises(EventLogFileError, match=r"notes\.sqlite"):
        SQLiteSink(path)


def test_an_unusable_folder_is_refused_clearly(tmp_path: Path) -> None:
    blocker = tmp_path / "artifacts"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(EventLogFileError, match="cannot create its folder"):
        SQLiteSink(blocker / "events" / "events.sqlite")
