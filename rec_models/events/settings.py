"""Settings of the event log: one dataclass with commented defaults, checked on construction.

The service's settings object builds one of these (from its own environment variables); the
library reads no environment itself, except for the default location of the log, which follows
the artifacts folder (`ADREC_ARTIFACTS`, default `artifacts/`) like every other artifact.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from rec_models.config import ROOT
from rec_models.events.model import MAX_FEEDBACK_EVENTS

DAY_S = 86_400.0
SYNCHRONOUS = ("FULL", "NORMAL")


def default_events_path() -> Path:
    """$ADREC_ARTIFACTS/events/events.sqlite (artifacts/events/events.sqlite by default)."""
    artifacts = os.environ.get("ADREC_ARTIFACTS", "").strip()
    return (Path(artifacts) if artifacts else ROOT / "artifacts") / "events" / "events.sqlite"


@dataclass(frozen=True)
class EventLogSettings:
    # Impression rows waiting for the writer; an impression that would exceed it is dropped and
    # counted (never silently): /recommend never waits for the log.
    max_queue_rows: int = 50_000
    # Extra rows feedback may queue beyond that, so it is not shed just because impressions filled
    # the queue; beyond both, feedback is refused (503).
    feedback_reserve_rows: int = 10_000
    # Feedback is refused (503) while the oldest queued entry has waited longer than this: the
    # writer is behind (slow disk, a lock held by another process), so an ack would be slow too.
    max_lag_s: float = 2.0
    max_batch_rows: int = 20_000  # rows written per transaction (one group commit)
    # A batch of impressions alone waits this long for more before committing (fewer fsyncs);
    # a batch with feedback commits at once, as its callers await it.
    impression_linger_s: float = 0.05
    # SQLite `synchronous` in WAL mode: FULL syncs the log on every commit, so acknowledged
    # feedback survives a power loss too; NORMAL survives a crash or kill -9 of the process only.
    synchronous: str = "FULL"
    busy_timeout_s: float = 5.0  # wait for another process's write lock (several workers)
    # Feedback is accepted for this long after its impression: older clicks, and clicks on
    # older requests, are refused (400). The log itself keeps every row.
    retention_s: float = 30 * DAY_S
    max_clock_skew_s: float = 300.0  # feedback timestamps up to this far in the future pass
    # With several worker processes, feedback can reach a worker before the serving worker's
    # writer has committed that request's impressions: an unknown request_id is rechecked for
    # this long before the call is answered 404. 0 with one worker.
    unknown_request_grace_s: float = 0.5
    max_feedback_events: int = MAX_FEEDBACK_EVENTS  # events per feedback call
    minute_counts_kept_s: float = 2 * 3600.0  # per-minute counts kept for the last-hour stats

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "synchronous":
                if value not in SYNCHRONOUS:
                    raise ValueError(f"events.synchronous: {value!r} (valid: FULL, NORMAL)")
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"events.{f.name}: expected a number, got {value!r}")
            lowest = (
                1 if f.name in ("max_queue_rows", "max_batch_rows", "max_feedback_events") else 0
            )
            if value < lowest:
                raise ValueError(f"events.{f.name}: must be at least {lowest}, got {value}")
        if self.minute_counts_kept_s < 3600:
            raise ValueError("events.minute_counts_kept_s: must cover the last hour (>= 3600)")
