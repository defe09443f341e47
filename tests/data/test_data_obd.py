"""The Open Bandit Dataset loader: the real reading code on a small log in the wheel's layout
(and on the real sample when `make data DATASET=obd` has fetched it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rec_models.config import ROOT, DataConfig
from rec_models.data import load_dataset
from rec_models.data.obd import POLICIES, is_complete, load_obd

FEATURES = [f"user_feature_{k}" for k in range(4)]


def fake_obd(folder: Path) -> Path:
    """Two policies' logs of 6 impressions each, 3 items, in the wheel's column layout."""
    rng = np.random.default_rng(0)
    items = pd.DataFrame({
        "item_id": [0, 1, 2], "item_feature_0": [-0.5, 0.1, 0.9],
        "item_feature_1": ["aa", "bb", "aa"], "item_feature_2": ["c1", "c1", "c2"],
        "item_feature_3": ["z", "z", "z"],
    })  # fmt: skip
    for p, policy in enumerate(POLICIES):
        (folder / policy).mkdir(parents=True)
        stamps = pd.date_range("2019-11-24", periods=6, freq="min", tz="UTC") + pd.Timedelta(
            seconds=30 * p
        )
        log = pd.DataFrame({
            "timestamp": stamps.astype(str), "item_id": rng.integers(0, 3, 6),
            "position": 1, "click": [1, 0, 0, 0, 1 - p, 0], "propensity_score": 0.3,
            **{f: ["h1", "h1", "h2", "h1", "h2", "h1"] for f in FEATURES},
            "user-item_affinity_0": 0.0,
        })  # fmt: skip
        log.loc[3, "user_feature_3"] = "h9"  # a third feature combination
        log.to_csv(folder / policy / "all.csv")
        items.to_csv(folder / policy / "item_context.csv")
    return folder


def test_loader_maps_impressions_users_and_items(tmp_path: Path) -> None:
    folder = fake_obd(tmp_path / "obd")
    assert is_complete(folder)
    ds = load_obd(folder)
    inter = ds.interactions
    assert len(inter) == 12 and inter["timestamp"].is_monotonic_increasing  # policies merged
    assert inter["click"].sum() == 3 and not inter["conversion"].any()
    assert len(ds.users) == 3  # one user per combination of the four user features
    assert ds.users["text"].iloc[0] == "Visitor with traits A1, B1, C1, D1."
    item = ds.items.set_index("item_id").loc[2]
    assert item["title"] == "Fashion item 2" and item["genres"] == "E1|F2|G1"
    assert item["text"] == "Numeric feature: band 5 of 5."  # highest item_feature_0
    every = load_obd(folder, rows="interactions").interactions  # the ablation: all positives
    assert every["click"].all()


def test_missing_folder_says_how_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make data DATASET=obd"):
        load_dataset(DataConfig(source="obd", path=str(tmp_path / "none")))


@pytest.mark.skipif(not is_complete(ROOT / "data" / "obd"), reason="make data DATASET=obd")
def test_real_sample_counts() -> None:
    ds = load_dataset(DataConfig(source="obd", path=str(ROOT / "data" / "obd")))
    assert (len(ds.interactions), len(ds.items)) == (20_000, 80)
    assert int(ds.interactions["click"].sum()) == 80  # 38 (random) + 42 (bts) clicks
    assert 200 < len(ds.users) < 400
