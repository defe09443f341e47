"""`SQLiteSink`: the embedded event log. One writer thread, a bounded queue, group commits.

Callers append to an `EventQueue` (queue.py: bounds, shedding, lingering); the writer thread
takes everything queued, writes it in one transaction and commits (writer.py), so under load
one fsync covers many calls (group commit). Feedback futures resolve after the commit: an
acknowledged event survives kill -9 (and a power loss with synchronous=FULL). A failed write
answers its feedback 503 (nothing stored) and retries its impressions `MAX_ATTEMPTS` times
before counting them lost; it never leaves a caller waiting.

Several processes (BentoML workers) may each run a SQLiteSink on the same file: SQLite's write
lock serialises their transactions, and an unknown request_id is rechecked for
`unknown_request_grace_s`, in case another worker's writer has not committed it yet.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path

from rec_models.events.errors import FeedbackError, SinkUnavailable
from rec_models.events.model import Feedback, Impressions
from rec_models.events.queue import Drops, EventQueue
from rec_models.events.schema import open_reader, open_writer
from rec_models.events.settings import EventLogSettings
from rec_models.events.sink import EventSink, FeedbackReceipt, SinkCounters, precheck_feedback
from rec_models.events.stats import EventStats, read_stats
from rec_models.events.writer import BatchWriter, Entry, QueuedFeedback, QueuedImpressions

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3  # writes of an impression batch before its rows count as lost
RETRY_PAUSE_S = 0.2  # after a failed write
DEFER_STEP_S = 0.02  # recheck interval of an unknown request_id within the grace
MAX_DEFERRED = 1000  # feedback calls held for a recheck at once; beyond: answered 404 at once


class SQLiteSink(EventSink):
    def __init__(
        self,
        path: str | Path | None = None,
        settings: EventLogSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings or EventLogSettings()
        self.path = Path(path) if path else self.settings.file
        self.clock = clock  # wall time of events; tests move it
        s = self.settings
        self._conn = open_writer(self.path, s.synchronous, s.busy_timeout_s)
        self._reader = open_reader(self.path)
        self._reader_lock = threading.Lock()
        self._queue = EventQueue(s)
        self._writer = BatchWriter(self._conn, s, self._queue.was_dropped)
        self._in_flight: list[Entry] = []  # the batch being written (writer thread)
        self._thread = threading.Thread(target=self._run, name="event-log-writer", daemon=True)
        self._thread.start()

    def log_impressions(self, impressions: Impressions) -> bool:
        if not impressions.items:
            return True  # nothing was shown: nothing to log
        return self._queue.put_impressions(impressions)

    def submit_feedback(self, events: Feedback | Sequence[Feedback]) -> Future[FeedbackReceipt]:
        indexed = not isinstance(events, Feedback)
        batch = list(events) if indexed else [events]  # type: ignore[list-item]
        try:
            resolved = precheck_feedback(batch, self.clock(), self.settings, indexed)
        except FeedbackError:
            self._queue.count(feedback_rejected=1)
            raise
        future: Future[FeedbackReceipt] = Future()
        self._queue.put_feedback(QueuedFeedback(resolved, indexed, future, time.monotonic()))
        return future

    def stats(self, now: float | None = None) -> EventStats:
        """The committed counts (a few indexed rows; call it in a thread from async code)."""
        with self._reader_lock:
            return read_stats(self._reader, self.clock() if now is None else now)

    def counters(self) -> SinkCounters:
        return self._queue.counters()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything accepted so far is written (no lingering); False on timeout."""
        return self._queue.wait_idle(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Stop taking events, write everything accepted, close the file."""
        self._queue.close()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("event log writer still busy after %s s; closing without it", timeout)
            return
        with self._reader_lock:
            self._reader.close()
        self._conn.close()

    # -- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while (work := self._queue.take()) is not None:
                self._write(*work)
        except BaseException as exc:  # a bug: fail every waiting caller instead of hanging them
            log.exception("event log writer crashed")
            for entry in [*self._in_flight, *self._queue.crashed(exc)]:
                if isinstance(entry, QueuedFeedback):
                    _fail(entry.future, SinkUnavailable(f"the event log's writer failed: {exc}"))

    def _write(self, batch: list[Entry], drops: Drops) -> None:
        live: list[Entry] = []
        for entry in batch:
            if isinstance(entry, QueuedFeedback) and entry.first_try is None:
                if not entry.future.set_running_or_notify_cancel():
                    continue  # the caller gave up before the write began: nothing stored
                entry.first_try = time.monotonic()
            live.append(entry)
        self._in_flight = live
        try:
            outcomes = self._writer.write(live, drops, self.clock())
        except Exception as exc:  # sqlite3.Error mostly (disk full, lock timeout): retryable
            log.warning("event log write failed (%s); retrying impressions, failing feedback", exc)
            self._after_failure(live, drops, exc)
            time.sleep(RETRY_PAUSE_S)
            self._in_flight = []
            return
        tally = dict.fromkeys(
            ("impressions_written", "impressions_lost", "feedback_written", "feedback_rejected"), 0
        )
        answers: list[tuple[Future[FeedbackReceipt], FeedbackReceipt | FeedbackError]] = []
        held: list[QueuedFeedback] = []
        for entry, outcome in zip(live, outcomes, strict=True):
            if isinstance(entry, QueuedImpressions):
                tally["impressions_written" if outcome else "impressions_lost"] += entry.rows
                if not outcome:
                    log.warning("request_id %r logged twice; kept the first",
                                entry.impressions.request_id)  # fmt: skip
            elif isinstance(outcome, FeedbackReceipt):
                tally["feedback_written"] += outcome.stored
                answers.append((entry.future, outcome))
            elif isinstance(outcome, FeedbackError) and self._may_come(entry, outcome, held):
                entry.recheck_at = time.monotonic() + DEFER_STEP_S
                held.append(entry)
            else:
                tally["feedback_rejected"] += 1
                answers.append((entry.future, outcome))  # type: ignore[arg-type]
        self._queue.written(held, commits=1, **tally)  # counted before the callers hear back
        for future, answer in answers:
            if isinstance(answer, FeedbackReceipt):
                future.set_result(answer)
            else:
                _fail(future, answer)
        self._in_flight = []

    def _may_come(
        self, entry: QueuedFeedback, error: FeedbackError, held: list[QueuedFeedback]
    ) -> bool:
        """Only unknown request ids, none shed here, within the grace: another worker's
        impressions may still be on their way; check again shortly."""
        if self._queue.closing or entry.first_try is None or error.kinds != {"unknown_request"}:
            return False
        if time.monotonic() - entry.first_try >= self.settings.unknown_request_grace_s:
            return False
        if self._queue.deferred + len(held) >= MAX_DEFERRED:  # a flood: answer, don't hold
            return False
        return not any(self._queue.was_dropped(e.request_id) for e in entry.events)

    def _after_failure(self, live: list[Entry], drops: Drops, exc: Exception) -> None:
        retry: list[QueuedImpressions] = []
        lost = failed = 0
        for entry in live:
            if isinstance(entry, QueuedFeedback):
                failed += 1
                why = f"writing the event log failed ({exc}); nothing was stored, retry"
                _fail(entry.future, SinkUnavailable(why))
            else:
                entry.attempts += 1
                if entry.attempts < MAX_ATTEMPTS:
                    retry.append(entry)
                else:
                    lost += entry.rows
        self._queue.failed(retry, drops, feedback_failed=failed, impressions_lost=lost)


def _fail(future: Future[FeedbackReceipt], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
