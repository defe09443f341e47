"""`EventSink`: where impressions and feedback go; the seam for Kafka or another event bus.

The contract a sink keeps, whatever it writes to:

- `log_impressions(impressions) -> bool` never blocks and never raises for load: it queues the
  response's impressions and returns True, or drops them, counts the drop and returns False.
  A recommendation is never delayed or failed by the log.
- `submit_feedback(events) -> Future[FeedbackReceipt]` returns at once. Checks that need no
  storage (the timestamp window, the call size) and shedding happen right there: it raises
  `FeedbackError` (4xx) or `SinkOverloaded` / `SinkUnavailable` (503) before queueing anything.
  The future resolves only once the events are durable (committed, or acknowledged by the bus),
  or fails with `FeedbackError` (unknown request 404, not shown / too late 400, duplicate 409)
  or `SinkUnavailable` (503). A call is all-or-nothing.
- `record_feedback(events)` is the same for an asyncio caller: it awaits the future without
  blocking the event loop.
- Feedback for a request whose impressions were logged but are not stored yet is accepted:
  the sink orders them (the SQLite sink writes its queue in order).
- `stats()` returns the online counts (`EventStats`); `counters()` this process's own
  counters (drops, refusals, queue depth); `flush()` waits until what was accepted is stored,
  `close()` flushes and stops.

A Kafka sink, for example, would be built around a producer (confluent_kafka.Producer with
acks=all and idempotence on) and a poll thread that serves the delivery callbacks:

    class KafkaSink(EventSink):
        def log_impressions(self, impressions):
            try:  # produce() only appends to librdkafka's local buffer
                self.producer.produce("impressions", key=impressions.request_id,
                                      value=encode(impressions))
            except BufferError:  # local buffer full: drop and count, never wait
                self.count_drop(impressions)
                return False
            return True

        def submit_feedback(self, events):  # a list here, for brevity
            events = precheck_feedback(events, time.time(), self.settings, indexed=True)
            future = Future()
            # The request check needs the impressions: a compacted topic or a cache of recent
            # request ids; the duplicate check happens downstream, keyed by
            # (request_id, item_id, event), so a redelivered event is still stored once.
            self.producer.produce("feedback", value=encode(events), on_delivery=lambda err, _:
                future.set_exception(SinkUnavailable(str(err))) if err
                else future.set_result(FeedbackReceipt(len(events))))
            return future

and keep its own counts for `stats()` (a consumer maintaining the same per-minute table, or
in memory). The service only ever talks to an `EventSink`.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from typing import Any

from rec_models.events.errors import FeedbackError, Problem, SinkOverloaded
from rec_models.events.model import Feedback, Impressions
from rec_models.events.settings import EventLogSettings
from rec_models.events.stats import EventStats


@dataclass(frozen=True)
class FeedbackReceipt:
    """What an acknowledged feedback call gets back: every event of it is durable."""

    stored: int  # events written (all of the call)


@dataclass(frozen=True)
class SinkCounters:
    """This process's counters since the sink started (Prometheus counters and gauges)."""

    impressions_queued: int = 0  # impression rows accepted into the queue
    impressions_dropped: int = 0  # rows shed because the queue was full
    impressions_written: int = 0  # rows committed
    impressions_lost: int = 0  # rows accepted but not written (storage failure, reused id)
    feedback_written: int = 0  # events committed
    feedback_rejected: int = 0  # calls refused with a 4xx
    feedback_shed: int = 0  # calls refused with 503 because the writer was behind
    feedback_failed: int = 0  # calls answered 503 because a write failed
    commits: int = 0  # transactions committed
    queue_rows: int = 0  # rows waiting now
    lag_s: float = 0.0  # how long the oldest waiting entry has waited

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def precheck_feedback(
    events: Sequence[Feedback], now: float, settings: EventLogSettings, indexed: bool
) -> list[Feedback]:
    """The checks that need no storage: call size, the time window. Missing times become now."""
    if not events:
        raise FeedbackError([((), "expected at least one feedback event", "invalid")])
    if len(events) > settings.max_feedback_events:
        raise FeedbackError(
            [
                (
                    (),
                    f"{len(events)} events in one call; at most {settings.max_feedback_events}",
                    "too_many",
                )
            ]
        )
    problems: list[Problem] = []
    out = []
    for i, event in enumerate(events):
        loc = (i, "timestamp") if indexed else ("timestamp",)
        ts = now if event.timestamp is None else event.timestamp
        if ts > now + settings.max_clock_skew_s:
            ahead = ts - now
            problems.append(
                (
                    loc,
                    f"{ahead:.0f} s in the future (the log allows "
                    f"{settings.max_clock_skew_s:.0f} s of clock skew)",
                    "invalid",
                )
            )
        elif ts < now - settings.retention_s:
            age_days = (now - ts) / 86_400
            problems.append(
                (
                    loc,
                    f"{age_days:.1f} days old: older than the retention window "
                    f"({settings.retention_s / 86_400:g} days)",
                    "invalid",
                )
            )
        out.append(Feedback(event.request_id, event.item_id, event.event, ts))
    if problems:
        raise FeedbackError(problems)
    return out


class EventSink(ABC):
    """The log's interface to the service (see the module docstring for the contract)."""

    @abstractmethod
    def log_impressions(self, impressions: Impressions) -> bool: ...

    @abstractmethod
    def submit_feedback(self, events: Feedback | Sequence[Feedback]) -> Future[FeedbackReceipt]: ...

    async def record_feedback(
        self, events: Feedback | Sequence[Feedback], timeout: float | None = None
    ) -> FeedbackReceipt:
        """Await the commit without blocking the loop. On timeout: SinkOverloaded (the events
        may still be stored later; a retry then gets 409 duplicate, which means stored)."""
        future = asyncio.wrap_future(self.submit_feedback(events))
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise SinkOverloaded(
                f"feedback not committed within {timeout} s; retrying is safe "
                "(409 duplicate means it was stored)"
            ) from None

    @abstractmethod
    def stats(self, now: float | None = None) -> EventStats: ...

    @abstractmethod
    def counters(self) -> SinkCounters: ...

    @abstractmethod
    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything accepted so far is stored; False on timeout (not async)."""

    @abstractmethod
    def close(self, timeout: float | None = None) -> None: ...

    def __enter__(self) -> EventSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
