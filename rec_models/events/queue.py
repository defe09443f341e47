"""The bounded in-memory queue between the callers and the one writer thread, with its counts.

Callers (the service's event loop, any thread) only take a lock and append here: impressions
that do not fit `max_queue_rows` are dropped and counted; feedback has `feedback_reserve_rows`
more room and is refused at once (SinkOverloaded, 503) when that is full too or when the writer
is more than `max_lag_s` behind (its oldest waiting entry, or the write in progress, is older).
The writer takes everything queued (up to `max_batch_rows`) at once; a batch of impressions alone
lingers `impression_linger_s` for company, a batch with feedback (or a flush) goes at once.
Feedback held for a recheck (an unknown request id within the grace) waits here too.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import fields

from rec_models.events.errors import SinkOverloaded, SinkUnavailable
from rec_models.events.model import Impressions
from rec_models.events.settings import EventLogSettings
from rec_models.events.sink import SinkCounters
from rec_models.events.stats import minute_of
from rec_models.events.writer import ArmKey, Entry, QueuedFeedback, QueuedImpressions

DROPPED_IDS_KEPT = 10_000  # recently shed request ids, to explain a later 404
COUNTED = tuple(f.name for f in fields(SinkCounters) if f.type == "int" and f.name != "queue_rows")
Drops = dict[tuple[ArmKey, int], int]  # ((variant, model_version), minute) -> rows


class EventQueue:
    def __init__(self, settings: EventLogSettings) -> None:
        self.settings = settings
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # wakes the writer
        self._idle = threading.Condition(lock)  # wakes flushers once a write is done
        self._entries: deque[Entry] = deque()
        self._rows = 0
        self._feedback = 0  # feedback entries among them
        self._deferred: list[QueuedFeedback] = []  # held for a recheck
        self._drops: Drops = {}  # not yet in the log's counts
        self._dropped_ids: OrderedDict[str, None] = OrderedDict()
        self._tally = dict.fromkeys(COUNTED, 0)
        self._writing_since: float | None = None  # monotonic start of the write in progress
        self._flushing = 0
        self.closing = False
        self.failure: BaseException | None = None

    # -- callers ----------------------------------------------------------------------------

    def put_impressions(self, imp: Impressions) -> bool:
        rows, now = len(imp.items), time.monotonic()
        with self._cond:
            if self.closing or self._rows + rows > self.settings.max_queue_rows:
                key = ((imp.variant, imp.model_version), minute_of(imp.timestamp))
                self._drops[key] = self._drops.get(key, 0) + rows
                self._dropped_ids[imp.request_id] = None
                if len(self._dropped_ids) > DROPPED_IDS_KEPT:
                    self._dropped_ids.popitem(last=False)
                self._tally["impressions_dropped"] += rows
                return False
            self._entries.append(QueuedImpressions(imp, now))
            self._rows += rows
            self._tally["impressions_queued"] += rows
            self._cond.notify()
        return True

    def put_feedback(self, entry: QueuedFeedback) -> None:
        s = self.settings
        with self._cond:
            if self.closing or self.failure is not None:
                raise SinkUnavailable(
                    "the event log is closed"
                    if self.closing
                    else f"the event log's writer failed: {self.failure}"
                )
            lag = self._lag(entry.enqueued)
            if self._rows + entry.rows > s.max_queue_rows + s.feedback_reserve_rows or (
                lag > s.max_lag_s
            ):
                self._tally["feedback_shed"] += 1
                why = (f"the writer is {lag:.1f} s behind" if lag > s.max_lag_s
                       else f"{self._rows} events are waiting")  # fmt: skip
                raise SinkOverloaded(f"the event log is overloaded ({why}); retry shortly")
            self._entries.append(entry)
            self._rows += entry.rows
            self._feedback += 1
            self._cond.notify()

    def count(self, **deltas: int) -> None:
        with self._cond:
            for name, n in deltas.items():
                self._tally[name] += n

    def was_dropped(self, request_id: str) -> bool:
        with self._cond:
            return request_id in self._dropped_ids

    def counters(self) -> SinkCounters:
        with self._cond:
            lag = round(self._lag(time.monotonic()), 3)
            return SinkCounters(**self._tally, queue_rows=self._rows, lag_s=lag)

    def wait_idle(self, timeout: float | None) -> bool:
        """Until everything queued (and held) so far is written; False on timeout."""

        def idle() -> bool:
            busy = self._entries or self._deferred or self._writing_since is not None
            return self.failure is not None or not busy

        with self._idle:
            self._flushing += 1  # no lingering meanwhile
            self._cond.notify()
            try:
                return self._idle.wait_for(idle, timeout)
            finally:
                self._flushing -= 1

    def close(self) -> None:
        with self._cond:
            self.closing = True
            self._cond.notify()

    def _lag(self, now: float) -> float:  # under the lock
        waiting = now - self._entries[0].enqueued if self._entries else 0.0
        writing = now - self._writing_since if self._writing_since is not None else 0.0
        return max(waiting, writing)

    # -- the writer thread ------------------------------------------------------------------

    def take(self) -> tuple[list[Entry], Drops] | None:
        """Wait for work: the next batch (due rechecks first) and the drops to count; None
        once closing with nothing left."""
        s = self.settings
        with self._cond:
            while True:
                now = time.monotonic()
                due = [d for d in self._deferred if self.closing or d.recheck_at <= now]
                wait: float | None = None
                if self._entries:
                    age = now - self._entries[0].enqueued
                    urgent = self._feedback or self.closing or self._flushing or due
                    if urgent or self._rows >= s.max_batch_rows or age >= s.impression_linger_s:
                        break
                    wait = s.impression_linger_s - age
                elif due or (self.closing and self._drops):
                    break
                elif self.closing and not self._deferred:
                    return None
                if self._deferred:
                    step = max(0.0, min(d.recheck_at for d in self._deferred) - now)
                    wait = step if wait is None else min(wait, step)
                self._cond.wait(wait)
            batch: list[Entry] = list(due)
            self._deferred = [d for d in self._deferred if d not in due]
            rows = 0
            while self._entries and (rows == 0 or rows + self._entries[0].rows <= s.max_batch_rows):
                entry = self._entries.popleft()
                rows += entry.rows
                self._rows -= entry.rows
                self._feedback -= isinstance(entry, QueuedFeedback)
                batch.append(entry)
            drops, self._drops = self._drops, {}
            self._writing_since = now  # busy from here: a flush must not see an idle gap
        return batch, drops

    def written(self, deferred: list[QueuedFeedback], **tally: int) -> None:
        """A batch is committed: hold `deferred` for a recheck, count, wake flushers."""
        with self._cond:
            self._deferred += deferred
            for name, n in tally.items():
                self._tally[name] += n
            self._writing_since = None
            self._idle.notify_all()

    @property
    def deferred(self) -> int:
        return len(self._deferred)

    def failed(self, retry: list[QueuedImpressions], drops: Drops, **tally: int) -> None:
        """A batch failed: its impressions go back first, its drops back to be counted."""
        with self._cond:
            for key, n in drops.items():
                self._drops[key] = self._drops.get(key, 0) + n
            for entry in reversed(retry):
                self._entries.appendleft(entry)
                self._rows += entry.rows
            for name, n in tally.items():
                self._tally[name] += n
            self._writing_since = None
            self._idle.notify_all()

    def crashed(self, exc: BaseException) -> list[Entry]:
        """The writer died: refuse from now on; everything still waiting, to be failed."""
        with self._cond:
            self.failure = exc
            pending = [*self._entries, *self._deferred]
            self._entries.clear()
            self._deferred.clear()
            self._idle.notify_all()
        return pending
