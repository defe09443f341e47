"""The SQLite file of the event log: tables, pragmas, opening for writing or reading.

    requests     one row per logged response: request_id, ts, user_id | profile_fingerprint,
                 model_version, variant, encoder_variant
    impressions  one row per shown item: request_id, item_id, rank, score, probability
    feedback     one row per (request_id, item_id, event): ts (the client's), received_at
    counts_total, counts_minute   the online counts (see stats.py)

Times are unix seconds (REAL). The primary key of `feedback` is what makes feedback idempotent.
WAL mode lets readers (the A/B report, /stats, retraining) run beside the writer. The schema
version lives in `PRAGMA user_version`; a file from a newer version is refused, not guessed at.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA_VERSION = 1

DDL = """
CREATE TABLE requests (
    request_id TEXT PRIMARY KEY,
    ts REAL NOT NULL,
    user_id INTEGER,
    profile_fingerprint TEXT,
    model_version TEXT NOT NULL,
    variant TEXT NOT NULL,
    encoder_variant TEXT NOT NULL,
    CHECK ((user_id IS NULL) <> (profile_fingerprint IS NULL))
) WITHOUT ROWID;
CREATE INDEX requests_by_ts ON requests (ts);
CREATE TABLE impressions (
    request_id TEXT NOT NULL,
    item_id INTEGER NOT NULL,
    rank INTEGER NOT NULL,
    score REAL NOT NULL,
    probability REAL NOT NULL,
    PRIMARY KEY (request_id, item_id)
) WITHOUT ROWID;
CREATE TABLE feedback (
    request_id TEXT NOT NULL,
    item_id INTEGER NOT NULL,
    event TEXT NOT NULL CHECK (event IN ('click', 'conversion')),
    ts REAL NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (request_id, item_id, event)
) WITHOUT ROWID;
CREATE TABLE counts_total (
    variant TEXT NOT NULL,
    model_version TEXT NOT NULL,
    impressions INTEGER NOT NULL DEFAULT 0,
    clicks INTEGER NOT NULL DEFAULT 0,
    conversions INTEGER NOT NULL DEFAULT 0,
    dropped INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (variant, model_version)
) WITHOUT ROWID;
CREATE TABLE counts_minute (
    minute INTEGER NOT NULL,
    variant TEXT NOT NULL,
    model_version TEXT NOT NULL,
    impressions INTEGER NOT NULL DEFAULT 0,
    clicks INTEGER NOT NULL DEFAULT 0,
    conversions INTEGER NOT NULL DEFAULT 0,
    dropped INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, variant, model_version)
) WITHOUT ROWID;
"""


class EventLogFileError(ValueError):
    """The file is not an event log this code can use (not SQLite, other tables, newer schema)."""


def _check_version(conn: sqlite3.Connection, path: Path) -> int:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise EventLogFileError(
            f"{path}: event log schema version {version} is newer than this code's "
            f"({SCHEMA_VERSION}); upgrade lm-adrec to read it"
        )
    if version == 0 and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
        raise EventLogFileError(f"{path}: an SQLite file with other tables, not an event log")
    return version


def open_writer(path: Path, synchronous: str, busy_timeout_s: float) -> sqlite3.Connection:
    """Open for the one writer thread, creating the folder, the file and the tables if missing."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EventLogFileError(f"{path}: cannot create its folder ({exc})") from exc
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s
    )
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("BEGIN IMMEDIATE")  # two workers starting at once create the tables once
        if _check_version(conn, path) == 0:
            for statement in DDL.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except (sqlite3.Error, EventLogFileError) as exc:
        conn.close()
        if isinstance(exc, EventLogFileError):
            raise
        raise EventLogFileError(f"{path}: cannot open the event log ({exc})") from exc
    return conn


def open_reader(path: Path) -> sqlite3.Connection:
    """Open an existing log for reading only (the report, /stats); never creates anything."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such event log")
    conn = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=ro",
        uri=True,
        isolation_level=None,
        check_same_thread=False,
    )
    try:
        if _check_version(conn, path) == 0:
            raise EventLogFileError(f"{path}: an empty SQLite file, not an event log")
    except (sqlite3.Error, EventLogFileError) as exc:
        conn.close()
        if isinstance(exc, EventLogFileError):
            raise
        raise EventLogFileError(f"{path}: not a readable event log ({exc})") from exc
    return conn
