"""One group commit: a batch of queued entries written in one SQLite transaction.

Runs on the sink's writer thread only. Entries are applied in queue order, so feedback sees the
impressions queued before it even though neither is committed yet. Feedback is checked inside
the write transaction (BEGIN IMMEDIATE holds SQLite's write lock), so the checks and the insert
are atomic across threads and processes: two workers given the same click store it once.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from rec_models.events.errors import FeedbackError, Problem
from rec_models.events.model import EventKind, Feedback, Impressions
from rec_models.events.settings import EventLogSettings
from rec_models.events.sink import FeedbackReceipt
from rec_models.events.stats import minute_of

CHUNK = 500  # ids per IN (...) query
ArmKey = tuple[str, str]  # (variant, model_version)


@dataclass(eq=False)
class QueuedImpressions:
    impressions: Impressions
    enqueued: float  # monotonic seconds
    attempts: int = 0

    @property
    def rows(self) -> int:
        return len(self.impressions.items)


@dataclass(eq=False)
class QueuedFeedback:
    events: list[Feedback]  # timestamps resolved
    indexed: bool  # the call was a list: locs start with the index
    future: Future[FeedbackReceipt]
    enqueued: float  # monotonic seconds
    first_try: float | None = None  # monotonic seconds of the first check (for the grace)
    recheck_at: float = 0.0  # monotonic seconds; while deferred

    @property
    def rows(self) -> int:
        return len(self.events)


Entry = QueuedImpressions | QueuedFeedback
Outcome = bool | FeedbackReceipt | FeedbackError  # impressions written? / feedback result


@dataclass
class _Delta:
    """Count changes of one batch, folded into the count tables at its end."""

    total: dict[ArmKey, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0] * 4))
    minute: dict[tuple[int, str, str], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0] * 4)
    )

    def add(self, arm: ArmKey, ts: float, column: int, n: int, first_minute: int) -> None:
        self.total[arm][column] += n
        minute = minute_of(ts)
        if minute >= first_minute:
            self.minute[(minute, *arm)][column] += n


@dataclass
class _Known:
    """What the log holds about the requests of one feedback call (this transaction included)."""

    requests: dict[str, tuple[float, ArmKey]] = field(default_factory=dict)  # -> (ts, arm)
    shown: set[tuple[str, int]] = field(default_factory=set)
    stored: set[tuple[str, int, str]] = field(default_factory=set)  # (rid, item, event)
    clicked_here: set[tuple[str, int]] = field(default_factory=set)  # clicks in this call


IMPRESSIONS, CLICKS, CONVERSIONS, DROPPED = range(4)
_UPSERT = (
    "INSERT INTO {table} ({keys}, impressions, clicks, conversions, dropped) "
    "VALUES ({marks}, ?, ?, ?, ?) ON CONFLICT ({keys}) DO UPDATE SET "
    "impressions = impressions + excluded.impressions, clicks = clicks + excluded.clicks, "
    "conversions = conversions + excluded.conversions, dropped = dropped + excluded.dropped"
)
UPSERT_TOTAL = _UPSERT.format(table="counts_total", keys="variant, model_version", marks="?, ?")
UPSERT_MINUTE = _UPSERT.format(
    table="counts_minute", keys="minute, variant, model_version", marks="?, ?, ?"
)


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


class BatchWriter:
    def __init__(
        self,
        conn: sqlite3.Connection,
        settings: EventLogSettings,
        dropped_hint: Callable[[str], bool],
    ) -> None:
        self.conn = conn
        self.settings = settings
        self.dropped_hint = dropped_hint  # was this request's impressions shed by this process?
        self._last_prune = -1

    def write(
        self, entries: Sequence[Entry], drops: dict[tuple[ArmKey, int], int], now: float
    ) -> list[Outcome]:
        """Apply `entries` and the shed-impression counts in one transaction; commit.

        Raises sqlite3.Error with the transaction rolled back: nothing of the batch is stored.
        """
        first_minute = minute_of(now - self.settings.minute_counts_kept_s)
        delta = _Delta()
        outcomes: list[Outcome] = []
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for entry in entries:
                if isinstance(entry, QueuedImpressions):
                    outcomes.append(self._impressions(entry.impressions, delta, first_minute))
                else:
                    outcomes.append(self._feedback(entry, now, delta, first_minute))
            for (arm, minute), n in drops.items():
                delta.add(arm, minute * 60.0, DROPPED, n, first_minute)
            self._fold(delta)
            self._prune(first_minute)
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        return outcomes

    def _impressions(self, imp: Impressions, delta: _Delta, first_minute: int) -> bool:
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO requests VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                imp.request_id,
                imp.timestamp,
                imp.user_id,
                imp.profile_fingerprint,
                imp.model_version,
                imp.variant,
                imp.encoder_variant,
            ),
        )
        if cur.rowcount == 0:  # the request id was logged before: keep the first, count this
            return False
        self.conn.executemany(
            "INSERT INTO impressions VALUES (?, ?, ?, ?, ?)",
            [(imp.request_id, i.item_id, i.rank, i.score, i.probability) for i in imp.items],
        )
        arm = (imp.variant, imp.model_version)
        delta.add(arm, imp.timestamp, IMPRESSIONS, len(imp.items), first_minute)
        return True

    def _lookup(self, events: list[Feedback]) -> _Known:
        known = _Known(
            clicked_here={(e.request_id, e.item_id) for e in events if e.event is EventKind.CLICK}
        )
        for part in _chunks(sorted({e.request_id for e in events})):
            where = f"WHERE request_id IN ({', '.join('?' * len(part))})"
            for rid, ts, variant, version in self.conn.execute(
                f"SELECT request_id, ts, variant, model_version FROM requests {where}", part
            ):
                known.requests[rid] = (ts, (variant, version))
            sql = f"SELECT request_id, item_id FROM impressions {where}"
            known.shown.update(self.conn.execute(sql, part))
            sql = f"SELECT request_id, item_id, event FROM feedback {where}"
            known.stored.update(self.conn.execute(sql, part))
        return known

    def _check(self, ev: Feedback, known: _Known, now: float) -> tuple[str, str, str] | None:
        """(field, message, kind) of what is wrong with one event, or None."""
        rid, item = ev.request_id, ev.item_id
        request = known.requests.get(rid)
        if request is None:
            why = ": its impressions were dropped (the event log was overloaded)"
            why = why if self.dropped_hint(rid) else ""
            return ("request_id", f"unknown request_id {rid!r}{why}", "unknown_request")
        served = request[0]
        if served < now - self.settings.retention_s:
            return ("request_id", f"request {rid!r} was served more than the retention window "
                    "ago; feedback on it is closed", "invalid")  # fmt: skip
        if (rid, item) not in known.shown:
            return ("item_id", f"item {item} was not shown in request {rid!r}", "invalid")
        ts = float(ev.timestamp or 0.0)
        if ts < served - self.settings.max_clock_skew_s:
            return ("timestamp", f"{served - ts:.0f} s before request {rid!r} was served",
                    "invalid")  # fmt: skip
        if (rid, item, ev.event.value) in known.stored:
            return ("event", f"duplicate: the {ev.event.value} on item {item} of request "
                    f"{rid!r} is already stored", "duplicate")  # fmt: skip
        needs_click = (rid, item, EventKind.CLICK.value) not in known.stored
        if (
            ev.event is EventKind.CONVERSION
            and needs_click
            and (rid, item) not in known.clicked_here
        ):
            return ("event", f"a conversion needs a click on item {item} of request {rid!r} "
                    "first (none stored)", "invalid")  # fmt: skip
        return None

    def _feedback(
        self, entry: QueuedFeedback, now: float, delta: _Delta, first_minute: int
    ) -> FeedbackReceipt | FeedbackError:
        events = entry.events
        known = self._lookup(events)
        problems: list[Problem] = []
        first_of: dict[tuple[str, int, str], int] = {}
        for i, ev in enumerate(events):
            key = (ev.request_id, ev.item_id, ev.event.value)
            found = self._check(ev, known, now)
            if found is None and key in first_of:
                found = ("event", f"duplicate of event [{first_of[key]}] in this call", "duplicate")
            first_of.setdefault(key, i)
            if found is not None:
                field, message, kind = found
                problems.append(((i, field) if entry.indexed else (field,), message, kind))
        if problems:
            return FeedbackError(problems)
        self.conn.executemany(
            "INSERT INTO feedback VALUES (?, ?, ?, ?, ?)",
            [(e.request_id, e.item_id, e.event.value, e.timestamp, now) for e in events],
        )
        for ev in events:
            column = CLICKS if ev.event is EventKind.CLICK else CONVERSIONS
            arm = known.requests[ev.request_id][1]
            delta.add(arm, float(ev.timestamp or 0.0), column, 1, first_minute)
        return FeedbackReceipt(stored=len(events))

    def _fold(self, delta: _Delta) -> None:
        if delta.total:
            self.conn.executemany(UPSERT_TOTAL, [(*k, *v) for k, v in delta.total.items()])
        if delta.minute:
            self.conn.executemany(UPSERT_MINUTE, [(*k, *v) for k, v in delta.minute.items()])

    def _prune(self, first_minute: int) -> None:
        if first_minute != self._last_prune:  # at most once a minute
            self.conn.execute("DELETE FROM counts_minute WHERE minute < ?", (first_minute,))
            self._last_prune = first_minute
