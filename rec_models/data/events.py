"""What a row of an interactions file means: impressions, clicks and conversions.

The canonical form (rec_models/data/schema.py) has one row per impression, an ad or item shown
to a user, with `click` and `conversion` flags. A file says what its rows are in one of four
ways, checked in this order:

1. an `event` column (`impression`, `click`, `conversion`; an event log, several rows per
   impression). Events are folded into impressions per (user, item) in time order: a click
   marks the latest earlier impression of that user and item that has no click yet, a
   conversion the latest earlier click without a conversion. A click without such an
   impression stands for its own impression (at the click's time); a conversion without a
   click implies the click (and, without an impression, the impression).
2. a `label` column, 0/1 (one row per impression, 1 = clicked), with an optional 0/1
   `conversion` column.
3. a `rating` column: a row is a click when `rating >= positive_threshold` (optional
   `conversion` column as in 2).
4. none of them: every row is a click (a log of positives, no shown negatives).

`data.rows` says what the models learn from (DataConfig): "impressions" fit on the clicks and
use the other rows as shown negatives; "interactions" (MovieLens' preset) take every row as an
interaction the user chose and `rating >= positive_threshold` as the liked subset.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rec_models.config import ConfigError, DataConfig
from rec_models.data.schema import DataValidationError, _bools, _first, _stripped, _typed

ROWS = ("impressions", "interactions")
EVENTS = {"impression": 0, "click": 1, "conversion": 2}


def rows_of(cfg: DataConfig) -> str:
    """The resolved `data.rows`: "auto" is "interactions" for MovieLens, else "impressions"."""
    if cfg.rows == "auto":
        return "interactions" if cfg.source == "movielens" else "impressions"
    if cfg.rows not in ROWS:
        raise ConfigError(f"config: data.rows '{cfg.rows}': choose auto, {', '.join(ROWS)}")
    return cfg.rows


def to_canonical(
    raw: pd.DataFrame, file: str, rows: str = "impressions", positive_threshold: float = 4.0
) -> pd.DataFrame:
    """A raw interactions table (strings from a CSV, or typed) -> the canonical columns
    user_id, item_id, rating, timestamp, click, conversion, events folded into impressions.
    Missing `rating` is 1.0, missing `timestamp` the row number. Ids are not checked against
    users/items here (validate_dataset does that)."""
    cols = set(raw.columns)
    if "click" in cols:
        raise DataValidationError(
            file, "header", "click", "not an input column: put a 0/1 click outcome in 'label'"
        )
    if {"event", "label"} <= cols:
        raise DataValidationError(file, "header", "label", "give an event or a label column")
    if rows == "interactions" and cols & {"event", "label"}:
        col = "event" if "event" in cols else "label"
        raise DataValidationError(
            file,
            "header",
            col,
            "data.rows = 'interactions' takes every row as an interaction; "
            "a log of impressions and clicks needs data.rows = 'impressions'",
        )
    df = raw.reset_index(drop=True).copy()
    has_rating = "rating" in cols
    if not has_rating:
        df["rating"] = 1.0
    if "timestamp" not in cols:
        df["timestamp"] = np.arange(len(df), dtype=np.int64)
    out = _typed(df, "interactions", file)
    conversion = out.pop("conversion") if "conversion" in out else pd.Series(False, out.index)
    if "event" in cols:
        return _fold_events(out, _event_codes(df["event"], file), conversion, file)
    if "label" in cols:
        click = _bools(df["label"], file, "label")
    elif has_rating and rows == "impressions":
        click = out["rating"] >= positive_threshold
    else:
        click = pd.Series(True, out.index)
    out["click"] = click.to_numpy() | conversion.to_numpy()
    out["conversion"] = conversion.to_numpy()
    if not out["click"].any():
        col = "label" if "label" in cols else "rating"
        why = f" (no rating reaches positive_threshold {positive_threshold})"
        why = why if col == "rating" else ""
        raise DataValidationError(file, None, col, f"no row is a click{why}")
    return out


def _event_codes(raw: pd.Series, file: str) -> np.ndarray:
    """(n,) int8 codes 0 impression, 1 click, 2 conversion; anything else names its row."""
    names = _stripped(raw.astype("string")).str.lower()
    codes = names.map(EVENTS)
    bad = codes.isna().to_numpy()
    if bad.any():
        row = _first(bad)
        raise DataValidationError(
            file, row, "event", f"unknown event {raw.iloc[row - 1]!r} (want {', '.join(EVENTS)})"
        )
    return codes.to_numpy(np.int8)


def _fold_events(
    typed: pd.DataFrame, codes: np.ndarray, conversion: pd.Series, file: str
) -> pd.DataFrame:
    """One row per impression from an event log (the rules in the module docstring). Rows come
    out in the file order of the event that opened each impression."""
    if conversion.any():
        row = _first(conversion.to_numpy())
        raise DataValidationError(
            file, row, "conversion", "an event log marks conversions with event = conversion"
        )
    users = typed["user_id"].to_numpy()
    items = typed["item_id"].to_numpy()
    stamps = typed["timestamp"].to_numpy()
    position = np.arange(len(typed))
    order = np.lexsort((position, codes, stamps, items, users))
    key = np.stack([users[order], items[order]], axis=1)
    starts = np.flatnonzero(np.r_[True, (key[1:] != key[:-1]).any(axis=1)])
    ends = np.r_[starts[1:], len(order)]
    opened: list[int] = []  # file position of the event that opened each impression
    clicked: list[bool] = []
    converted: list[bool] = []
    for s, e in zip(starts, ends, strict=True):
        open_imps: list[int] = []  # impressions without a click yet (indices into the lists)
        open_clicks: list[int] = []  # clicks without a conversion yet
        for r in order[s:e]:
            code = codes[r]
            if code == 0 or (code == 1 and not open_imps) or (code == 2 and not open_clicks):
                if code == 2 and open_imps:  # a conversion implies the click on an impression
                    j = open_imps.pop()
                    clicked[j] = converted[j] = True
                    continue
                opened.append(int(r))
                clicked.append(code >= 1)
                converted.append(code == 2)
                j = len(opened) - 1
                if code == 0:
                    open_imps.append(j)
                elif code == 1:
                    open_clicks.append(j)
            elif code == 1:
                j = open_imps.pop()
                clicked[j] = True
                open_clicks.append(j)
            else:
                converted[open_clicks.pop()] = True
    first = np.asarray(opened, dtype=np.int64)
    keep = np.argsort(first, kind="stable")
    out = typed.iloc[first[keep]].reset_index(drop=True)
    out["click"] = np.asarray(clicked, dtype=bool)[keep]
    out["conversion"] = np.asarray(converted, dtype=bool)[keep]
    if not out["click"].any():
        raise DataValidationError(file, None, "event", "no click or conversion event")
    return out


def positive_mask(interactions: pd.DataFrame) -> np.ndarray:
    """(n,) bool: the rows models fit on and ranking counts as relevant (the clicks; every row
    of an "interactions" dataset is one)."""
    return interactions["click"].to_numpy(bool)


def has_impressions(interactions: pd.DataFrame) -> bool:
    """True when the log holds shown-but-not-clicked rows (real negatives for CTR)."""
    return bool((~positive_mask(interactions)).any())
