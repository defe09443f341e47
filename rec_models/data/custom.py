"""Bring-your-own data: a folder with users, items and interactions files, loaded and saved.

A custom dataset is a folder with three files, each CSV or Parquet:

    users.{csv,parquet}         user_id (int, unique); optional age (int), gender, occupation,
                                zip, text
    items.{csv,parquet}         item_id (int, unique), title (non-empty); optional year (int),
                                genres ('|'-separated), text (a free description, e.g. ad copy)
    interactions.{csv,parquet}  user_id, item_id (ids known to users/items); what a row is comes
                                from an optional `event` column (impression / click /
                                conversion), or `label` (0/1 click) and `conversion` (0/1), or
                                `rating` (number, default 1.0) against positive_threshold
                                (rec_models/data/events.py); timestamp (unix seconds or ISO-8601;
                                naive times are UTC; default: the row number)

Every problem raises DataValidationError naming the file, the row (1-based data row: the first
row after the header is row 1) and the column.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from rec_models.data.events import to_canonical
from rec_models.data.schema import KINDS, Dataset, DataValidationError, validate_dataset


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


def load_custom(
    path: str | os.PathLike[str],
    name: str | None = None,
    rows: str = "impressions",
    positive_threshold: float = 4.0,
) -> Dataset:
    """Load and validate a bring-your-own dataset folder (see the module docstring); `rows` and
    `positive_threshold` say what an interactions row is (rec_models/data/events.py)."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataValidationError(str(folder), None, None, "dataset folder does not exist")
    files = {k: _find(folder, k) for k in KINDS}
    raw = {k: _read(p) for k, p in files.items()}
    inter = to_canonical(raw["interactions"], files["interactions"].name, rows, positive_threshold)
    ds = Dataset(name or folder.name, raw["users"], raw["items"], inter)
    return validate_dataset(ds, {k: p.name for k, p in files.items()})


def file_tables(ds: Dataset) -> dict[str, pd.DataFrame]:
    """The tables as load_custom reads them back: the click flag goes out as `label` (left out
    when every row is a click) and `conversion` only when there are conversions."""
    inter = ds.interactions.drop(columns=["click", "conversion"])
    if not ds.interactions["click"].all():
        inter["label"] = ds.interactions["click"].astype(np.int8)
    if ds.interactions["conversion"].any():
        inter["conversion"] = ds.interactions["conversion"].astype(np.int8)
    return {"users": ds.users, "items": ds.items, "interactions": inter}


def save_canonical(ds: Dataset, folder: str | os.PathLike[str]) -> Path:
    """Validate, then write users.csv, items.csv, interactions.csv into `folder` atomically:
    written to a temp folder beside it, then renamed into place (an old folder is replaced)."""
    tables = file_tables(validate_dataset(ds))
    target = Path(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-new-", dir=target.parent))
    old: Path | None = None
    try:
        for kind in KINDS:
            tables[kind].to_csv(tmp / f"{kind}.csv", index=False)
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
