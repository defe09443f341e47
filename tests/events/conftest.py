"""Fixtures of the event-log tests: a sink factory on a temporary file."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rec_models.events import EventLogSettings, SQLiteSink


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "events" / "events.sqlite"


@pytest.fixture
def make_sink(log_path: Path) -> Iterator[Callable[..., SQLiteSink]]:
    """make_sink(clock=..., **settings) -> a SQLiteSink on the test's file; closed afterwards."""
    sinks: list[SQLiteSink] = []

    def make(clock: Callable[[], float] = time.time, **settings: object) -> SQLiteSink:
        base = {"unknown_request_grace_s": 0.0} | settings  # one process: no cross-worker wait
        sink = SQLiteSink(log_path, EventLogSettings(**base), clock=clock)
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        sink.close(timeout=30)
