"""The canonical dataset and its validation.

Canonical tables (every loader produces them; rec_models/data/custom.py reads them from files):

    users         user_id (int, unique); optional age (int), gender, occupation, zip, text
    items         item_id (int, unique), title (non-empty); optional year (int), genres
                  ('|'-separated), text (a free description, e.g. ad copy)
    interactions  one row per impression (an ad or item shown to a user): user_id, item_id,
                  rating (float), timestamp (unix seconds), click (bool), conversion (bool; a
                  conversion is always a click). Rows without a click are shown negatives.
                  rec_models/data/events.py turns event logs and ratings into this form.

Every problem raises DataValidationError naming the file, the row (1-based data row: the first
row after the header is row 1) and the column. A user without interactions is fine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

KINDS = ("users", "items", "interactions")
# Canonical columns in order: (name, kind, required); kind is "id", "int", "str", "float", "time"
# or "bool".
COLUMNS: dict[str, list[tuple[str, str, bool]]] = {
    "users": [
        ("user_id", "id", True),
        ("age", "int", False),
        ("gender", "str", False),
        ("occupation", "str", False),
        ("zip", "str", False),
        ("text", "str", False),
    ],
    "items": [
        ("item_id", "id", True),
        ("title", "str", True),
        ("year", "int", False),
        ("genres", "str", False),
        ("text", "str", False),
    ],
    "interactions": [
        ("user_id", "id", True),
        ("item_id", "id", True),
        ("rating", "float", True),
        ("timestamp", "time", True),
        ("click", "bool", False),  # absent: every row is a click (a log of positives)
        ("conversion", "bool", False),  # absent: no conversions
    ],
}
ROW_CONVENTION = "1-based data row, header not counted"


class DataValidationError(ValueError):
    """Malformed input data; the message names the file, the row and the column."""

    def __init__(self, file: str, row: int | str | None, column: str | None, reason: str) -> None:
        where = [f"file {file}"]
        if isinstance(row, int):
            where.append(f"row {row} ({ROW_CONVENTION})")
        elif row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column '{column}'")
        super().__init__(f"{', '.join(where)}: {reason}")
        self.file, self.row, self.column, self.reason = file, row, column, reason


@dataclass
class Dataset:
    """users (user_id, ...), items (item_id, title, ...), interactions (user_id, item_id, rating,
    timestamp, click, conversion); columns and dtypes are in the module docstring and README."""

    name: str
    users: pd.DataFrame
    items: pd.DataFrame
    interactions: pd.DataFrame


def _first(mask: pd.Series | np.ndarray) -> int:
    """1-based position of the first True."""
    return int(np.argmax(np.asarray(mask, dtype=bool))) + 1


def _stripped(raw: pd.Series) -> pd.Series:
    if pd.api.types.is_string_dtype(raw) or raw.dtype == object:
        return raw.astype("string").str.strip().replace("", pd.NA)
    return raw


def _ints(raw: pd.Series, file: str, col: str, required: bool) -> pd.Series:
    """Integer column: int64 if required (no missing values), else nullable Int64."""
    if pd.api.types.is_bool_dtype(raw):
        raise DataValidationError(file, 1, col, "expected integers, got booleans")
    s = _stripped(raw)
    num = pd.to_numeric(s, errors="coerce")
    values = num.astype("float64").to_numpy(np.float64, na_value=np.nan)
    missing = s.isna().to_numpy()
    bad = ~missing & (~np.isfinite(values) | (np.nan_to_num(values) % 1 != 0))
    if bad.any():
        row = _first(bad)
        raise DataValidationError(file, row, col, f"expected an integer, got {raw.iloc[row - 1]!r}")
    if required and missing.any():
        raise DataValidationError(file, _first(missing), col, "missing value")
    return num.astype(np.int64) if required else num.astype("Int64")


def _floats(raw: pd.Series, file: str, col: str) -> pd.Series:
    """Float64 column without missing or non-finite values."""
    s = _stripped(raw)
    values = (
        pd.to_numeric(s, errors="coerce").astype("float64").to_numpy(np.float64, na_value=np.nan)
    )
    bad = ~np.isfinite(values)
    if bad.any():
        row = _first(bad)
        value = raw.iloc[row - 1]
        reason = (
            "missing value" if pd.isna(s.iloc[row - 1]) else f"expected a number, got {value!r}"
        )
        raise DataValidationError(file, row, col, reason)
    return pd.Series(values, index=raw.index)


def _bools(raw: pd.Series, file: str, col: str) -> pd.Series:
    """Boolean column from bools, 0/1 or true/false strings; no missing values."""
    if pd.api.types.is_bool_dtype(raw) and not raw.isna().any():
        return raw.astype(bool)
    s = _stripped(raw).astype("string").str.lower()
    value = s.map({"1": True, "0": False, "1.0": True, "0.0": False, "true": True, "false": False})
    bad = value.isna().to_numpy()
    if bad.any():
        row = _first(bad)
        raise DataValidationError(
            file, row, col, f"expected 0 or 1 (or true/false), got {raw.iloc[row - 1]!r}"
        )
    return value.astype(bool)


def _timestamps(raw: pd.Series, file: str, col: str) -> pd.Series:
    """Unix seconds (int64) from integers, datetimes or ISO-8601 strings (naive = UTC)."""
    if pd.api.types.is_datetime64_any_dtype(raw):
        parsed = raw if raw.dt.tz is not None else raw.dt.tz_localize("UTC")
        num = pd.Series(np.nan, index=raw.index)
    else:
        s = _stripped(raw)
        num = pd.to_numeric(s, errors="coerce").astype("float64")
        parsed = pd.to_datetime(s.where(num.isna()), errors="coerce", utc=True, format="ISO8601")
    bad = (num.isna() & parsed.isna()).to_numpy()
    if bad.any():
        row = _first(bad)
        value = raw.iloc[row - 1]
        raise DataValidationError(
            file, row, col, f"unparseable timestamp {value!r} (want unix seconds or ISO-8601)"
        )
    secs = (parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return num.fillna(secs.astype("float64")).astype(np.int64)


def _typed(df: pd.DataFrame, kind: str, file: str) -> pd.DataFrame:
    """The canonical columns of one table, in order, typed and checked value by value."""
    for col, _, required in COLUMNS[kind]:
        if required and col not in df.columns:
            have = ", ".join(map(str, df.columns))
            raise DataValidationError(
                file, "header", col, f"missing required column (have: {have})"
            )
    df = df.reset_index(drop=True)
    out = pd.DataFrame(index=df.index)
    for col, how, required in COLUMNS[kind]:
        if col not in df.columns:
            continue
        if how in ("id", "int"):
            out[col] = _ints(df[col], file, col, required)
        elif how == "float":
            out[col] = _floats(df[col], file, col)
        elif how == "time":
            out[col] = _timestamps(df[col], file, col)
        elif how == "bool":
            out[col] = _bools(df[col], file, col)
        else:
            out[col] = _stripped(df[col]).astype("string")
    return out


def _check_unique(df: pd.DataFrame, col: str, file: str) -> None:
    dup = df[col].duplicated()
    if dup.any():
        row = _first(dup)
        value = df[col].iloc[row - 1]
        first = _first(df[col] == value)
        raise DataValidationError(
            file, row, col, f"duplicate id {value} (first seen in row {first})"
        )


def validate_dataset(ds: Dataset, files: dict[str, str] | None = None) -> Dataset:
    """Check columns, values, unique ids and references of any Dataset.

    Returns a new Dataset with canonical dtypes and a fresh RangeIndex (the input is not
    modified). `files` names the source file of each table for the error messages.
    """
    names = {k: k for k in KINDS} | (files or {})
    tables = {k: _typed(getattr(ds, k), k, names[k]) for k in KINDS}
    _check_unique(tables["users"], "user_id", names["users"])
    _check_unique(tables["items"], "item_id", names["items"])
    empty = tables["items"]["title"].isna()
    if empty.any():
        raise DataValidationError(names["items"], _first(empty), "title", "empty title")
    inter = tables["interactions"]
    if "click" not in inter:
        inter["click"] = True
    if "conversion" not in inter:
        inter["conversion"] = False
    inter["click"] |= inter["conversion"]  # a conversion is always a click
    for col, kind in (("user_id", "users"), ("item_id", "items")):
        unknown = ~inter[col].isin(tables[kind][col])
        if unknown.any():
            row = _first(unknown)
            raise DataValidationError(
                names["interactions"],
                row,
                col,
                f"unknown id {inter[col].iloc[row - 1]} (not in {names[kind]})",
            )
    return Dataset(ds.name, tables["users"], tables["items"], inter)
