"""Settings of the event log: one dataclass with commented defaults, checked on construction.

The service's settings object builds one with `EventLogSettings.from_env(environ)`
(`ADREC_EVENTS_<FIELD>`, e.g. `ADREC_EVENTS_PATH`, `ADREC_EVENTS_SYNCHRONOUS=NORMAL`) from the
environment it read; the library reads no environment itself, except for the default location
of the log, which follows the artifacts folder (`ADREC_ARTIFACTS`, default `artifacts/`) like
every other artifact.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from rec_models.config import ROOT
from rec_models.events.model import MAX_FEEDBACK_EVENTS

ENV_PREFIX = "ADREC_EVENTS_"
DAY_S = 86_400.0
SYNCHRONOUS = ("FULL", "NORMAL")


def default_events_path() -> Path:
    """$ADREC_ARTIFACTS/events/events.sqlite (artifacts/events/events.sqlite by default)."""
    artifacts = os.environ.get("ADREC_ARTIFACTS", "").strip()
    return (Path(artifacts) if artifacts else ROOT / "artifacts") / "events" / "events.sqlite"


@dataclass(frozen=True)
class EventLogSettings:
    path: str = ""  # the SQLite file; empty: default_events_path()
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
            if f.type == "str":
                if not isinstance(value, str):
                    raise ValueError(f"events.{f.name}: expected a string, got {value!r}")
                continue
            kinds = int if f.type == "int" else int | float
            if isinstance(value, bool) or not isinstance(value, kinds):
                raise ValueError(f"events.{f.name}: expected {f.type}, got {value!r}")
            lowest = 1 if f.type == "int" else 0
            if value < lowest:
                raise ValueError(f"events.{f.name}: must be at least {lowest}, got {value}")
        if self.synchronous not in SYNCHRONOUS:
            raise ValueError(f"events.synchronous: {self.synchronous!r} (valid: FULL, NORMAL)")
        if self.minute_counts_kept_s < 3600:
            raise ValueError("events.minute_counts_kept_s: must cover the last hour (>= 3600)")

    @property
    def file(self) -> Path:
        return Path(self.path) if self.path else default_events_path()

    @classmethod
    def from_env(cls, env: Mapping[str, str], prefix: str = ENV_PREFIX) -> EventLogSettings:
        """From ADREC_EVENTS_<FIELD> variables (e.g. ADREC_EVENTS_SYNCHRONOUS=NORMAL); an
        unknown or malformed variable is an error naming it. The caller passes its environment
        (the service's settings object reads it once)."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, object] = {}
        for key, raw in env.items():
            if not key.startswith(prefix):
                continue
            name = key[len(prefix) :].lower()
            if name not in known:
                valid = ", ".join(prefix + n.upper() for n in known)
                raise ValueError(f"{key}: unknown variable (valid: {valid})")
            kind = known[name].type
            try:
                values[name] = int(raw) if kind == "int" else float(raw) if kind == "float" else raw
            except ValueError:
                raise ValueError(f"{key}={raw!r}: expected {kind}") from None
        try:
            return cls(**values)  # type: ignore[arg-type]
        except ValueError as exc:  # name the variable, not the field
            head, _, reason = str(exc).partition(": ")
            raise ValueError(f"{prefix}{head.removeprefix('events.').upper()}: {reason}") from None
