"""Impressions logged by the service, folded into a dataset: what `make retrain` learns from.

The event log (rec_models/events) holds what the service showed and which of it was clicked
or converted. `make retrain` snapshots the impressions of known users into a CSV (`LOGGED_COLUMNS`,
one row per impression, `label` 1 = clicked) and `data.logged` names that file, so every later
step that rebuilds the dataset from `train_config.json` (export, re-evaluation) gets the same
rows, whatever the live log holds by then.

A logged row joins the canonical interactions (rec_models/data/schema.py) as an impression:
clicked rows are positives, the others shown negatives (MF's shown confidence, the attention
model's logged negatives, the CTR calibration on real impressions). Its `rating` is
`positive_threshold` when clicked, so a click also counts as liked where ratings decide that
(MovieLens' "interactions" reading), and 0 when not.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from rec_models.data.events import to_canonical
from rec_models.data.schema import Dataset, DataValidationError, validate_dataset

LOGGED_COLUMNS = ("user_id", "item_id", "rating", "timestamp", "label", "conversion")


def logged_frame(
    users: np.ndarray,
    items: np.ndarray,
    timestamps: np.ndarray,
    clicked: np.ndarray,
    converted: np.ndarray,
    positive_threshold: float,
) -> pd.DataFrame:
    """The snapshot's rows (LOGGED_COLUMNS) from per-impression arrays; times in unix seconds."""
    clicked = np.asarray(clicked, bool) | np.asarray(converted, bool)
    return pd.DataFrame(
        {
            "user_id": np.asarray(users, np.int64),
            "item_id": np.asarray(items, np.int64),
            "rating": np.where(clicked, float(positive_threshold), 0.0),
            "timestamp": np.floor(np.asarray(timestamps, np.float64)).astype(np.int64),
            "label": clicked.astype(np.int8),
            "conversion": np.asarray(converted, bool).astype(np.int8),
        }
    )


def write_logged(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.loc[:, list(LOGGED_COLUMNS)].to_csv(path, index=False)
    return path


def canonical_logged(frame: pd.DataFrame) -> pd.DataFrame:
    """Typed snapshot rows (logged_frame's) in canonical form; none of them need be a click."""
    converted = frame["conversion"].to_numpy(bool)
    return pd.DataFrame(
        {
            "user_id": frame["user_id"].to_numpy(np.int64),
            "item_id": frame["item_id"].to_numpy(np.int64),
            "rating": frame["rating"].to_numpy(np.float64),
            "timestamp": frame["timestamp"].to_numpy(np.int64),
            "click": frame["label"].to_numpy(bool) | converted,
            "conversion": converted,
        }
    )


def read_logged(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The snapshot at `path` in canonical form (click and conversion flags)."""
    path = Path(path)
    if not path.is_file():
        raise DataValidationError(str(path), None, None, "logged impressions file does not exist")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    missing = [c for c in LOGGED_COLUMNS if c not in raw.columns]
    if missing:
        raise DataValidationError(path.name, "header", missing[0], "missing column")
    if len(raw) == 0:
        raise DataValidationError(path.name, None, None, "empty file (no data rows)")
    return to_canonical(raw, path.name, "impressions")


def with_logged(ds: Dataset, logged: pd.DataFrame, file: str = "logged.csv") -> Dataset:
    """`ds` with the canonical `logged` rows appended to its interactions; an id the dataset
    does not know names the logged file, row and column."""
    ds = validate_dataset(ds)  # canonical columns, click and conversion flags included
    logged = validate_dataset(Dataset(ds.name, ds.users, ds.items, logged), {"interactions": file})
    inter = pd.concat([ds.interactions, logged.interactions], ignore_index=True)
    return validate_dataset(Dataset(ds.name, ds.users, ds.items, inter))
