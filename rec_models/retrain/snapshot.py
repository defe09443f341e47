"""The event log as training rows: every impression of a known user, clicked or not.

Reads the SQLite log through `EventLogReader` (read-only, so it runs beside a live service).
An impression counts as clicked / converted when the log holds that feedback for it. Impressions
of cold profiles (a fingerprint, no user id) cannot join a user's history and are left out,
counted. The latest `holdout_share` of the rows by time, cut between responses (a response is
never split), is the hold-out the new model is compared on.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rec_models.data.logged import logged_frame
from rec_models.events.reader import EventLogReader
from rec_models.events.schema import EventLogFileError
from rec_models.pipeline import Context
from rec_models.retrain import RetrainError


@dataclass
class Snapshot:
    """The log's known-user impressions, oldest first (rows of `frame` match `request_ids`)."""

    path: Path
    frame: pd.DataFrame  # rec_models.data.logged.LOGGED_COLUMNS
    request_ids: np.ndarray  # (n,) str
    served_ts: np.ndarray  # (n,) float, the response's time
    cold_impressions: int  # left out: cold profiles
    versions: dict[str, int] = field(default_factory=dict)  # impressions per model_version

    def summary(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "impressions": len(self.frame),
            "clicks": int(self.frame["label"].sum()),
            "conversions": int(self.frame["conversion"].sum()),
            "cold_profile_impressions_left_out": self.cold_impressions,
            "first": float(self.served_ts.min()),
            "last": float(self.served_ts.max()),
            "by_model_version": self.versions,
        }

    def holdout_mask(self, share: float) -> np.ndarray:
        """(n,) bool: the latest `share` of the rows by time, whole responses only."""
        if not 0.0 < share < 1.0:
            raise RetrainError(f"config: retrain.holdout_share must lie in (0, 1), got {share}")
        order = np.lexsort((self.request_ids, self.served_ts))
        req = self.request_ids[order]
        # the first row of the response that crosses (1 - share) of the rows starts the hold-out
        start = int(np.ceil((1.0 - share) * len(order)))
        while 0 < start < len(order) and req[start] == req[start - 1]:
            start += 1
        mask = np.zeros(len(order), bool)
        mask[order[start:]] = True
        return mask


def _fail(path: Path, reason: str) -> RetrainError:
    return RetrainError(f"event log {path}: {reason}")


def read_snapshot(path: str | Path, ctx: Context) -> Snapshot:
    """The log at `path` checked against the dataset of `ctx` (every item id, every user id in
    the catalog); RetrainError with one line on anything unusable."""
    path = Path(path)
    rows = []
    try:
        with EventLogReader(path) as reader:
            rows = list(reader.labelled_impressions())
    except FileNotFoundError:
        raise _fail(path, "no such file (the service writes it; or pass --events)") from None
    except EventLogFileError as exc:
        raise RetrainError(str(exc)) from None
    except sqlite3.Error as exc:
        raise _fail(path, f"cannot be read ({exc})") from None
    if not rows:
        raise _fail(path, "no impressions logged yet, nothing to learn from")
    known = [r for r in rows if r.user_id is not None]
    if not known:
        raise _fail(path, f"all {len(rows)} impressions are of cold profiles (no user id)")
    users = np.array([r.user_id for r in known], np.int64)
    items = np.array([r.item_id for r in known], np.int64)
    for values, ids, what in ((items, ctx.item_ids, "item_id"), (users, ctx.user_ids, "user_id")):
        unknown = ~np.isin(values, ids)
        if unknown.any():
            j = int(np.argmax(unknown))
            raise _fail(
                path,
                f"request {known[j].request_id}: {what} {values[j]} is not in dataset "
                f"'{ctx.dataset.name}' ({int(unknown.sum())} such impressions; is the log "
                "from another dataset?)",
            )
    served = np.array([r.timestamp for r in known], np.float64)
    clicked = np.array([r.clicked for r in known], bool)
    converted = np.array([r.converted for r in known], bool)
    if not clicked.any() and not converted.any():
        raise _fail(path, f"no clicks among {len(known)} impressions, nothing to learn from")
    frame = logged_frame(users, items, served, clicked, converted, ctx.cfg.data.positive_threshold)
    return Snapshot(
        path,
        frame,
        np.array([r.request_id for r in known]),
        served,
        len(rows) - len(known),
        dict(Counter(r.model_version for r in known)),
    )
