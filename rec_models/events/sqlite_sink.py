"""`SQLiteSink`: the embedded event log. One writer thread, a bounded queue, group commits.

Callers (the service's event loop, any thread) only append to an in-memory queue under a lock;
the writer thread takes everything queued (up to `max_batch_rows`), writes it in one
transaction and commits, so under load one fsync covers many calls (group commit). A batch with
feedback in it commits at once; a batch of impressions alone lingers `impression_linger_s` for
company. Feedback futures resolve after the commit: an acknowledged event survives kill -9 (and
a power loss with synchronous=FULL).

Overload: impressions that do not fit `max_queue_rows` are dropped and counted (this process's
counters at once, the log's `dropped` counts with the next commit). Feedback has
`feedback_reserve_rows` more room, and is refused at once (SinkOverloaded, 503) when that is
full too or when the oldest queued entry has waited longer than `max_lag_s`.

Several processes (BentoML workers) may each run a SQLiteSink on the same file: SQLite's write
lock serialises their transactions, and an unknown request_id is rechecked for
`unknown_request_grace_s`, in case another worker's writer has not committed it yet.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path

from rec_models.events.errors import FeedbackError, SinkOverloaded, SinkUnavailable
from rec_models.events.model import Feedback, Impressions
from rec_models.events.schema import open_reader, open_writer
from rec_models.events.settings import EventLogSettings
from rec_models.events.sink import EventSink, FeedbackReceipt, SinkCounters, precheck_feedback
from rec_models.events.stats import EventStats, minute_of, read_stats
from rec_models.events.writer import ArmKey, BatchWriter, Entry, QueuedFeedback, QueuedImpressions

log = logging.getLogger(__name__)
DROPPED_IDS_KEPT = 10_000  # recently shed request ids, to explain a later 404
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
        self._writer = BatchWriter(self._conn, s, self._was_dropped)
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # wakes the writer
        self._idle = threading.Condition(lock)  # wakes flush() once a write is done
        self._queue: deque[Entry] = deque()
        self._queued_rows = 0
        self._queued_feedback = 0
        self._drops: dict[tuple[ArmKey, int], int] = {}  # not yet in the log's counts
        self._dropped_ids: OrderedDict[str, None] = OrderedDict()
        self._deferred: list[QueuedFeedback] = []  # writer thread only
        self._counters = SinkCounters()
        self._writing_since: float | None = None  # monotonic start of the write in progress
        self._flushing = 0  # flush() calls waiting
        self._closing = False
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="event-log-writer", daemon=True)
        self._thread.start()

    # -- callers' side: never blocks beyond a short lock ------------------------------------

    def log_impressions(self, impressions: Impressions) -> bool:
        rows = len(impressions.items)
        if rows == 0:
            return True  # nothing was shown: nothing to log
        now = time.monotonic()
        with self._cond:
            if self._closing or self._queued_rows + rows > self.settings.max_queue_rows:
                self._count_drop(impressions)
                return False
            self._queue.append(QueuedImpressions(impressions, now))
            self._queued_rows += rows
            self._bump(impressions_queued=rows)
            self._cond.notify()
        return True

    def submit_feedback(self, events: Feedback | Sequence[Feedback]) -> Future[FeedbackReceipt]:
        indexed = not isinstance(events, Feedback)
        batch = list(events) if indexed else [events]  # type: ignore[list-item]
        try:
            resolved = precheck_feedback(batch, self.clock(), self.settings, indexed)
        except FeedbackError:
            with self._cond:
                self._bump(feedback_rejected=1)
            raise
        now = time.monotonic()
        future: Future[FeedbackReceipt] = Future()
        with self._cond:
            if self._closing or self._failure is not None:
                raise SinkUnavailable(
                    "the event log is closed"
                    if self._closing
                    else f"the event log's writer failed: {self._failure}"
                )
            limit = self.settings.max_queue_rows + self.settings.feedback_reserve_rows
            lag = self._lag(now)
            if self._queued_rows + len(resolved) > limit or lag > self.settings.max_lag_s:
                self._bump(feedback_shed=1)
                why = (
                    f"the writer is {lag:.1f} s behind"
                    if lag > self.settings.max_lag_s
                    else f"{self._queued_rows} events are waiting"
                )
                raise SinkOverloaded(f"the event log is overloaded ({why}); retry shortly")
            self._queue.append(QueuedFeedback(resolved, indexed, future, now))
            self._queued_rows += len(resolved)
            self._queued_feedback += 1
            self._cond.notify()
        return future

    def _count_drop(self, imp: Impressions) -> None:  # under the lock
        key = ((imp.variant, imp.model_version), minute_of(imp.timestamp))
        self._drops[key] = self._drops.get(key, 0) + len(imp.items)
        self._dropped_ids[imp.request_id] = None
        if len(self._dropped_ids) > DROPPED_IDS_KEPT:
            self._dropped_ids.popitem(last=False)
        self._bump(impressions_dropped=len(imp.items))

    def _lag(self, now: float) -> float:  # under the lock
        """How far behind the writer is: the oldest waiting entry, or the write in progress."""
        waiting = now - self._queue[0].enqueued if self._queue else 0.0
        writing = now - self._writing_since if self._writing_since is not None else 0.0
        return max(waiting, writing)

    def _was_dropped(self, request_id: str) -> bool:
        with self._cond:
            return request_id in self._dropped_ids

    def _bump(self, **deltas: int) -> None:  # under the lock
        c = self._counters
        self._counters = replace(c, **{k: getattr(c, k) + v for k, v in deltas.items()})

    def stats(self, now: float | None = None) -> EventStats:
        """The committed counts (a few indexed rows; call it in a thread from async code)."""
        with self._reader_lock:
            return read_stats(self._reader, self.clock() if now is None else now)

    def counters(self) -> SinkCounters:
        with self._cond:
            lag = self._lag(time.monotonic())
            return replace(self._counters, queue_rows=self._queued_rows, lag_s=round(lag, 3))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is written; False on timeout."""

        def done() -> bool:
            busy = self._queue or self._deferred or self._writing_since is not None
            return self._failure is not None or not busy

        with self._idle:
            self._flushing += 1  # no lingering meanwhile
            self._cond.notify()
            try:
                return self._idle.wait_for(done, timeout)
            finally:
                self._flushing -= 1

    def close(self, timeout: float | None = None) -> None:
        """Stop taking events, write everything accepted, close the file."""
        with self._cond:
            self._closing = True
            self._cond.notify()
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
            while True:
                batch = self._take()
                if batch is None:
                    return
                self._write(batch)
        except BaseException as exc:  # a bug: fail every waiting caller instead of hanging them
            log.exception("event log writer crashed")
            with self._cond:
                self._failure = exc
                self._idle.notify_all()
                waiting = [e for e in self._queue if isinstance(e, QueuedFeedback)]
                self._queue.clear()
            for entry in waiting + self._deferred:
                _fail(entry.future, SinkUnavailable(f"the event log's writer failed: {exc}"))

    def _take(self) -> list[Entry] | None:
        """Wait for work; return the next batch (due rechecks first), None when done."""
        s = self.settings
        with self._cond:
            while True:
                now = time.monotonic()
                due = [d for d in self._deferred if self._closing or d.recheck_at <= now]
                wait: float | None = None
                if self._queue:
                    age = now - self._queue[0].enqueued
                    if (
                        self._queued_feedback
                        or self._closing
                        or self._flushing
                        or due
                        or self._queued_rows >= s.max_batch_rows
                        or age >= s.impression_linger_s
                    ):
                        break
                    wait = s.impression_linger_s - age
                elif due or (self._closing and self._drops):
                    break
                elif self._closing and not self._deferred:
                    return None
                if self._deferred:
                    step = max(0.0, min(d.recheck_at for d in self._deferred) - now)
                    wait = step if wait is None else min(wait, step)
                self._cond.wait(wait)
            batch: list[Entry] = list(due)
            self._deferred = [d for d in self._deferred if d not in due]
            rows = 0
            while self._queue and (rows == 0 or rows + self._queue[0].rows <= s.max_batch_rows):
                entry = self._queue.popleft()
                rows += entry.rows
                self._queued_rows -= entry.rows
                if isinstance(entry, QueuedFeedback):
                    self._queued_feedback -= 1
                batch.append(entry)
            self._writing_since = now  # busy from here: flush() must not see an idle gap
        return batch

    def _write(self, batch: list[Entry]) -> None:
        live: list[Entry] = []
        for entry in batch:
            if isinstance(entry, QueuedFeedback) and entry.first_try is None:
                if not entry.future.set_running_or_notify_cancel():
                    continue  # the caller gave up before the write began: nothing stored
                entry.first_try = time.monotonic()
            live.append(entry)
        with self._cond:
            drops, self._drops = self._drops, {}
        try:
            outcomes = self._writer.write(live, drops, self.clock())
        except Exception as exc:  # sqlite3.Error mostly (disk full, lock timeout): retryable
            log.warning("event log write failed (%s); retrying impressions, failing feedback", exc)
            self._after_failure(live, drops, exc)
            time.sleep(RETRY_PAUSE_S)
            with self._cond:
                self._writing_since = None
                self._idle.notify_all()
            return
        tally = dict.fromkeys(
            ("impressions_written", "impressions_lost", "feedback_written", "feedback_rejected"), 0
        )
        answers: list[tuple[Future[FeedbackReceipt], FeedbackReceipt | FeedbackError]] = []
        for entry, outcome in zip(live, outcomes, strict=True):
            if isinstance(entry, QueuedImpressions):
                tally["impressions_written" if outcome else "impressions_lost"] += entry.rows
                if not outcome:
                    log.warning(
                        "request_id %r logged twice; kept the first", entry.impressions.request_id
                    )
            elif isinstance(outcome, FeedbackReceipt):
                tally["feedback_written"] += outcome.stored
                answers.append((entry.future, outcome))
            elif isinstance(outcome, FeedbackError) and self._may_come(entry, outcome):
                entry.recheck_at = time.monotonic() + DEFER_STEP_S
                self._deferred.append(entry)
            else:
                tally["feedback_rejected"] += 1
                answers.append((entry.future, outcome))  # type: ignore[arg-type]
        with self._cond:  # counters first, so a caller that got its answer sees them
            self._writing_since = None
            self._bump(commits=1, **tally)
            self._idle.notify_all()
        for future, answer in answers:
            if isinstance(answer, FeedbackReceipt):
                future.set_result(answer)
            else:
                _fail(future, answer)

    def _may_come(self, entry: QueuedFeedback, error: FeedbackError) -> bool:
        """Only unknown request ids, none shed here, within the grace: another worker's
        impressions may still be on their way; check again shortly."""
        if self._closing or entry.first_try is None or error.kinds != {"unknown_request"}:
            return False
        if time.monotonic() - entry.first_try >= self.settings.unknown_request_grace_s:
            return False
        if len(self._deferred) >= MAX_DEFERRED:  # a flood of unknown ids: answer, don't hold
            return False
        return not any(self._was_dropped(e.request_id) for e in entry.events)

    def _after_failure(
        self, live: list[Entry], drops: dict[tuple[ArmKey, int], int], exc: Exception
    ) -> None:
        retry: list[QueuedImpressions] = []
        lost = failed = 0
        for entry in live:
            if isinstance(entry, QueuedFeedback):
                failed += 1
                _fail(
                    entry.future,
                    SinkUnavailable(
                        f"writing the event log failed ({exc}); nothing was stored, retry"
                    ),
                )
            else:
                entry.attempts += 1
                if entry.attempts < MAX_ATTEMPTS:
                    retry.append(entry)
                else:
                    lost += entry.rows
        with self._cond:
            for key, n in drops.items():
                self._drops[key] = self._drops.get(key, 0) + n
            for entry in reversed(retry):
                self._queue.appendleft(entry)
                self._queued_rows += entry.rows
            self._bump(feedback_failed=failed, impressions_lost=lost)


def _fail(future: Future[FeedbackReceipt], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
