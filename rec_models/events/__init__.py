"""The feedback log: impressions, clicks and conversions, durable, with online counts.

    service ──log_impressions──▶ EventSink ──▶ SQLiteSink: bounded queue ─▶ one writer thread
            ──record_feedback─▶            group commits to artifacts/events/events.sqlite (WAL)
            ◀─────stats()──────            counts per variant and model version (hour, all time)

    events.sqlite ──▶ EventLogReader ──▶ python -m rec_models.abtest (the A/B report), retraining

Standard library only (sqlite3, threading, asyncio): importable by the service without torch.
"""

from __future__ import annotations

from rec_models.events.errors import EventError, FeedbackError, SinkOverloaded, SinkUnavailable
from rec_models.events.model import (
    EventKind,
    Feedback,
    Impressions,
    ShownItem,
    new_request_id,
    parse_feedback,
    profile_fingerprint,
    user_key,
)
from rec_models.events.settings import EventLogSettings, default_events_path
from rec_models.events.sink import EventSink, FeedbackReceipt, SinkCounters
from rec_models.events.sqlite_sink import SQLiteSink
from rec_models.events.stats import ArmStats, Counts, EventStats

__all__ = [
    "ArmStats",
    "Counts",
    "EventError",
    "EventKind",
    "EventLogSettings",
    "EventSink",
    "EventStats",
    "Feedback",
    "FeedbackError",
    "FeedbackReceipt",
    "Impressions",
    "SQLiteSink",
    "ShownItem",
    "SinkCounters",
    "SinkOverloaded",
    "SinkUnavailable",
    "default_events_path",
    "new_request_id",
    "parse_feedback",
    "profile_fingerprint",
    "user_key",
]
