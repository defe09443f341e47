"""The Open Bandit Dataset's small sample: real fashion-ad impressions with clicks (ZOZOTOWN).

It ships inside the `obp==0.4.1` wheel on the package index; `pip download --no-deps` fetches the
1.3 MB wheel and two policies' logs of the "all" campaign are read out of it (obp is never
imported, the data never committed):

    python -m rec_models.data.obd [--dest data/obd]

Each policy (uniform `random` and Bernoulli Thompson sampling `bts`) logged 10,000 impressions over
one week (2019-11-24..30): timestamp, item_id (80 items), position (1-3), click (0/1),
propensity_score, four hashed categorical user features and 80 user-item affinities. Mapping to
the canonical dataset:
- rows: both policies' impressions, ordered by time; label = click. Position, propensity and
  affinities are not used.
- users: the sample has no user ids; a user is one combination of the four user features
  (about 300 of them). Profile text names the combination: "Visitor with traits A2, B1, C5, D3."
  (feature 0..3 -> A..D, each hashed value replaced by its frequency rank, 1 = most common).
- items: no text either; built from item_context.csv: title "Fashion item 14", genres from the
  three hashed categorical features ("E3|F7|G2", ranks as above), text "Numeric feature: band 4
  of 5." from the quintile of item_feature_0.
"""

from __future__ import annotations

import argparse
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
from rec_models.data.schema import Dataset, DataValidationError, validate_dataset

WHEEL = "obp==0.4.1"
POLICIES = ("random", "bts")
MEMBER = "obp/dataset/obd/{policy}/all/{file}"
FILES = ("all.csv", "item_context.csv")
USER_FEATURES = [f"user_feature_{k}" for k in range(4)]


def is_complete(dest: str | os.PathLike[str]) -> bool:
    return all((Path(dest) / p / f).is_file() for p in POLICIES for f in FILES)


def fetch_obd(dest: str | os.PathLike[str] = "data/obd") -> Path:
    """Put {random,bts}/{all.csv,item_context.csv} into dest; idempotent, and atomic (extracted
    into a temp folder beside dest, then renamed into place)."""
    dest = Path(dest)
    if is_complete(dest):
        return dest
    if dest.exists() and any(p.name not in {*POLICIES, ".complete"} for p in dest.iterdir()):
        raise FileExistsError(f"{dest} exists and holds other files; choose another --dest")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}-", dir=dest.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", WHEEL, "-d", f"{tmp}/wheel"]  # fmt: skip
        subprocess.run(cmd, check=True)
        wheel = next(Path(tmp, "wheel").glob("obp-*.whl"))
        out = Path(tmp) / "out"
        with zipfile.ZipFile(wheel) as zf:
            for policy in POLICIES:
                (out / policy).mkdir(parents=True)
                for file in FILES:
                    data = zf.read(MEMBER.format(policy=policy, file=file))
                    (out / policy / file).write_bytes(data)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(out, dest)
    return dest


def _ranks(values: pd.Series) -> pd.Series:
    """Each value's frequency rank, 1 = most common (ties by value, so it is deterministic)."""
    counts = values.value_counts()
    order = sorted(counts.index, key=lambda v: (-counts[v], str(v)))
    return values.map({v: r + 1 for r, v in enumerate(order)})


def _items(folder: Path) -> pd.DataFrame:
    ctx = pd.read_csv(folder / "random" / "item_context.csv", index_col=0)
    ctx = ctx.sort_values("item_id").reset_index(drop=True)
    tags = [
        letter + _ranks(ctx[f"item_feature_{k}"]).astype(str)
        for letter, k in (("E", 1), ("F", 2), ("G", 3))
    ]
    band = pd.qcut(ctx["item_feature_0"].rank(method="first"), 5, labels=False) + 1
    return pd.DataFrame({
        "item_id": ctx["item_id"].astype(np.int64),
        "title": "Fashion item " + ctx["item_id"].astype(str),
        "genres": tags[0] + "|" + tags[1] + "|" + tags[2],
        "text": "Numeric feature: band " + band.astype(str) + " of 5.",
    })  # fmt: skip


def load_obd(
    path: str | os.PathLike[str] = "data/obd",
    rows: str = "impressions",
    positive_threshold: float = 1.0,
) -> Dataset:
    """20,000 impressions (two policies, time order), ~300 feature-combination users, 80 items."""
    folder = Path(path)
    if not is_complete(folder):
        raise FileNotFoundError(f"{folder}: Open Bandit Dataset files missing; run `make data "
                                "DATASET=obd`")  # fmt: skip
    logs = []
    for policy in POLICIES:
        log = pd.read_csv(folder / policy / "all.csv", index_col=0)
        logs.append(log[["timestamp", "item_id", "click", *USER_FEATURES]])
    log = pd.concat(logs, ignore_index=True)
    stamps = pd.to_datetime(log["timestamp"], utc=True, format="ISO8601")
    log["timestamp"] = (stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    log = log.sort_values("timestamp", kind="stable").reset_index(drop=True)
    ranks = pd.DataFrame({f: _ranks(log[f]) for f in USER_FEATURES})
    combos = ranks.drop_duplicates().sort_values(USER_FEATURES).reset_index(drop=True)
    combos["user_id"] = np.arange(1, len(combos) + 1, dtype=np.int64)
    user_of = ranks.merge(combos, on=USER_FEATURES, how="left")["user_id"]
    traits = [
        letter + combos[f].astype(str) for letter, f in zip("ABCD", USER_FEATURES, strict=True)
    ]
    users = pd.DataFrame({
        "user_id": combos["user_id"],
        "text": "Visitor with traits " + traits[0] + ", " + traits[1] + ", " + traits[2]
        + ", " + traits[3] + ".",
    })  # fmt: skip
    if set(log["click"].unique()) - {0, 1}:
        raise DataValidationError("all.csv", None, "click", "expected 0/1 clicks")
    inter = pd.DataFrame({
        "user_id": user_of.to_numpy(np.int64),
        "item_id": log["item_id"].to_numpy(np.int64),
        "timestamp": log["timestamp"].to_numpy(np.int64),
        "label": log["click"].to_numpy(np.int64),
    })  # fmt: skip
    if rows == "interactions":  # every impression taken as a positive: a deliberate ablation
        inter = inter.drop(columns="label")
    canonical = to_canonical(inter, "all.csv", rows, positive_threshold)
    files = {"users": "all.csv", "items": "item_context.csv", "interactions": "all.csv"}
    return validate_dataset(Dataset("obd", users, _items(folder), canonical), files)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fetch the Open Bandit Dataset sample.")
    parser.add_argument("--dest", default="data/obd", help="target folder")
    dest = fetch_obd(parser.parse_args(argv).dest)
    ds = load_obd(dest)
    clicks = int(ds.interactions["click"].sum())
    print(
        f"{dest}: {len(ds.users)} users, {len(ds.items)} items, "
        f"{len(ds.interactions)} impressions, {clicks} clicks"
    )


if __name__ == "__main__":
    main()
