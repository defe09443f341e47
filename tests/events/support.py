"""Helpers of the event-log tests: impressions, a held write lock, reading the file."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rec_models.events import EventKind, Impressions

CLICK, CONVERSION = EventKind.CLICK, EventKind.CONVERSION
NOW = 1_800_000_000.0  # a fixed wall clock for the tests that move time


def impressions(
    request_id: str,
    items: tuple[int, ...] = (10, 20, 30),
    variant: str = "A",
    model_version: str = "1",
    ts: float | None = None,
    user_id: int | None = 7,
) -> Impressions:
    return Impressions.ranked(
        request_id,
        [(item, 1.0 / (rank + 1), 0.05) for rank, item in enumerate(items)],
        model_version=model_version,
        variant=variant,
        encoder_variant="int8",
        timestamp=time.time() if ts is None else ts,
        user_id=user_id,
        profile_fingerprint=None if user_id is not None else "f" * 32,
    )


@contextmanager
def write_lock(path: Path) -> Iterator[sqlite3.Connection]:
    """Hold SQLite's write lock from another connection: the sink's writer stalls meanwhile,
    as it would behind another process or a slow disk."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def rows(path: Path, sql: str, *params: object) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)
