"""The canonical dataset, its validation, and bring-your-own-data loading and saving.

A custom dataset is a folder with three files, each CSV or Parquet:

    users.{csv,parquet}         user_id (int, unique); optional age (int), gender, occupation,
                                zip, text
    items.{csv,parquet}         item_id (int, unique), title (non-empty); optional year (int),
                                genres ('|'-separated), text (a free description, e.g. ad copy)
    interactions.{csv,parquet}  user_id, item_id (ids known to users/items); optional rating
                                (number, default 1.0), timestamp (unix seconds or ISO-8601; naive
                                times are UTC; default: the row number)

Every problem raises DataValidationError naming the file, the row (1-based data row: the first
row after the header is row 1) and the column. A user without interactions is fine.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

KINDS = ("users", "items", "interactions")
# Canonical columns in order: (name, kind, required); kind is "id", "int", "str", "float" or "time".
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
    timestamp); the columns and dtypes are listed in the module docstring and the README."""

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


def _find(folder: Path, stem: str) -> Path:
    found = [
        folder / f"{stem}{ext}"
        for ext in (".csv", ".parquet")
        if (folder / f"{stem}{ext}").is_file()
    ]
    if not found:
        raise DataValidationError(
            f"{stem}.csv", None, None, f"missing file in {folder} (.csv or .parquet)"
        )
    if len(found) > 1:
        raise DataValidationError(
            f"{stem}.csv", None, None, f"both {stem}.csv and {stem}.parquet exist"
        )
    return found[0]


def _read(path: Path) -> pd.DataFrame:
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(
                path, dtype=str, keep_default_na=False, na_values=[""], skip_blank_lines=False
            )  # blank lines keep their row numbers
            filled = df.notna().any(axis=1).to_numpy()
            df = df.iloc[: len(filled) - int(np.argmax(filled[::-1])) if filled.any() else 0]
    except pd.errors.EmptyDataError:
        raise DataValidationError(
            path.name, None, None, "empty file (no header, no rows)"
        ) from None
    except Exception as exc:  # unreadable file: say which and why
        raise DataValidationError(path.name, None, None, f"cannot be read ({exc})") from exc
    if len(df) == 0:
        raise DataValidationError(path.name, None, None, "empty file (no data rows)")
    df.columns = [str(c).strip() for c in df.columns]
    return df.reset_index(drop=True)


def load_custom(path: str | os.PathLike[str], name: str | None = None) -> Dataset:
    """Load and validate a bring-your-own dataset folder (see the module docstring)."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataValidationError(str(folder), None, None, "dataset folder does not exist")
    files = {k: _find(folder, k) for k in KINDS}
    raw = {k: _read(p) for k, p in files.items()}
    inter = raw["interactions"]
    if "rating" not in inter.columns:
        inter["rating"] = 1.0
    if "timestamp" not in inter.columns:
        inter["timestamp"] = np.arange(len(inter), dtype=np.int64)
    ds = Dataset(name or folder.name, raw["users"], raw["items"], inter)
    return validate_dataset(ds, {k: p.name for k, p in files.items()})


def save_canonical(ds: Dataset, folder: str | os.PathLike[str]) -> Path:
    """Validate, then write users.csv, items.csv, interactions.csv into `folder` atomically:
    written to a temp folder beside it, then renamed into place (an old folder is replaced)."""
    ds = validate_dataset(ds)
    target = Path(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-new-", dir=target.parent))
    old: Path | None = None
    try:
        for kind in KINDS:
            getattr(ds, kind).to_csv(tmp / f"{kind}.csv", index=False)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
            os.replace(target, old / target.name)
        os.replace(tmp, target)
    except BaseException:
        if old is not None and not target.exists():
            os.replace(old / target.name, target)  # put the previous folder back
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return target
