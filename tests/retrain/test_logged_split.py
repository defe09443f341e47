"""Logged impressions folded into a dataset train, never test: every protocol measures on the
dataset's own test rows, the ones the current version recorded its metrics on.

Split together with the dataset (the old behaviour), logged rows joined the test sets, and a
logged pair shown in several responses had one copy trained on while another was a test
positive, so the retrained version's recorded NDCG@10 was measured on other, partly leaked rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rec_models.config import load_config
from rec_models.data.logged_split import split_with_logged, validation_with_logged
from rec_models.data.splits import make_split, validation_split

USERS, ITEMS = 30, 40


def frames(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(dataset rows, logged rows): the log shows pairs of the dataset (some of them test rows
    of every protocol) and new pairs, each new one in three responses."""
    rng = np.random.default_rng(seed)
    base = pd.DataFrame(
        [(u, i) for u in range(USERS) for i in rng.choice(ITEMS, 12, replace=False)],
        columns=["user_id", "item_id"],
    )
    base["timestamp"] = rng.integers(0, 1000, len(base))
    new = pd.DataFrame(
        [(u, i) for u in range(USERS) for i in range(ITEMS)], columns=base.columns[:2]
    )
    new = new.sample(200, random_state=seed)
    logged = pd.concat([base.sample(100, random_state=seed)[["user_id", "item_id"]], new] * 3)
    logged["timestamp"] = np.sort(rng.integers(500, 2000, len(logged)))
    for df, click in ((base, True), (logged, rng.random(len(logged)) < 0.4)):
        df["rating"], df["click"], df["conversion"] = 4.0, click, False
    return base.reset_index(drop=True), logged.reset_index(drop=True)


@pytest.mark.parametrize("protocol", ["recommenders", "temporal", "cold_start", "cold_user"])
def test_logged_rows_train_and_the_test_is_the_datasets_own(protocol: str):
    cfg = load_config(None)
    base, logged = frames()
    merged = pd.concat([base, logged], ignore_index=True)
    split, fate = split_with_logged(cfg, protocol, merged, len(logged))
    alone = make_split(protocol, base, seed=cfg.data.seed)
    assert split.test.index.equals(alone.test.index)  # no logged row is measured
    _, val = validation_split(alone.train, ratio=cfg.hybrid.val_ratio, seed=cfg.data.seed + 1)
    joined = split.train.iloc[len(alone.train) :]
    assert (joined.index >= len(base)).all() and len(joined) == split.n_logged > 0
    pairs = set(zip(joined["user_id"], joined["item_id"], strict=True))
    for held in (split.test, val):
        assert not pairs & set(zip(held["user_id"], held["item_id"], strict=True))
    if split.cold_items is not None:
        assert not joined["item_id"].isin(split.cold_items).any()
    if split.cold_users is not None:
        assert not joined["user_id"].isin(split.cold_users).any()
    if protocol == "temporal":
        first = split.test.groupby("user_id")["timestamp"].min()
        assert (joined["timestamp"].to_numpy() < joined["user_id"].map(first).to_numpy()).all()
    left = sum(v for k, v in fate.items() if k.startswith("left_out"))
    assert fate["to_training"] == split.n_logged and left + split.n_logged == len(logged)
    assert fate["left_out_test_or_validation_pair"] > 0


def test_validation_is_carved_from_the_datasets_rows_only():
    cfg = load_config(None)
    base, logged = frames(1)
    merged = pd.concat([base, logged], ignore_index=True)
    split, _ = split_with_logged(cfg, "recommenders", merged, len(logged))
    fit, val = validation_with_logged(split.train, split.n_logged, 0.2, cfg.data.seed + 1)
    assert (val.index < len(base)).all()
    assert len(fit) + len(val) == len(split.train)
