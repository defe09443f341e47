"""Evaluation splits: Recommenders' stratified split, temporal, cold-start, validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rec_models.data.splits import (
    PROTOCOLS,
    cold_start_split,
    cold_user_split,
    make_split,
    python_stratified_split,
    temporal_split,
    time_split,
    validation_split,
)


def frame(n_users: int = 40, seed: int = 0) -> pd.DataFrame:
    """Users with 1..12 interactions each, rows shuffled, random items and timestamps."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 13, size=n_users)
    users = np.repeat(np.arange(100, 100 + n_users), counts)
    rows = rng.permutation(len(users))
    return pd.DataFrame({
        "user_id": users[rows],
        "item_id": rng.integers(0, 50, size=len(users)),
        "rating": rng.integers(1, 6, size=len(users)).astype(float),
        "timestamp": rng.integers(0, 20, size=len(users)),  # many ties on purpose
    }, index=pd.RangeIndex(1000, 1000 + len(users)))  # fmt: skip


def reference_split(df: pd.DataFrame, ratio: float, seed: int) -> set[int]:
    """Hand-written Recommenders recipe: the index labels of the training rows."""
    np.random.seed(seed)
    draw = np.random.rand(len(df))
    train: set[int] = set()
    for user in np.unique(df["user_id"]):
        pos = np.flatnonzero(df["user_id"].to_numpy() == user)
        pos = pos[np.argsort(draw[pos], kind="stable")]
        keep = int(np.round(ratio * len(pos)))  # half to even, like Series.round
        train |= set(df.index[pos[:keep]])
    return train


def per_user(df: pd.DataFrame) -> pd.Series:
    return df.groupby("user_id").size()


def test_stratified_counts_and_reference() -> None:
    df = frame()
    before = df.copy()
    train, test = python_stratified_split(df, 0.75, seed=42)
    pd.testing.assert_frame_equal(df, before)  # input untouched
    assert list(train.columns) == list(df.columns)
    n = per_user(df)
    expect = np.round(0.75 * n).astype(int)  # NumPy half-to-even: 2 -> 2, 6 -> 4, 10 -> 8
    assert per_user(train).reindex(n.index, fill_value=0).equals(expect)
    assert sorted(train.index.tolist() + test.index.tolist()) == sorted(df.index)
    assert set(train.index) == reference_split(df, 0.75, 42)
    assert {int(np.round(0.75 * k)) for k in (2, 6, 10)} == {2, 4, 8}


def test_stratified_is_deterministic_per_seed() -> None:
    df = frame()
    a, _ = python_stratified_split(df, 0.75, seed=42)
    b, _ = python_stratified_split(df, 0.75, seed=42)
    c, _ = python_stratified_split(df, 0.75, seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert set(a.index) != set(c.index) and len(a) == len(c)


def test_validation_split_holds_out_a_share_per_user() -> None:
    df = frame(seed=3)
    fit, val = validation_split(df, ratio=0.2, seed=5)
    n = per_user(df)
    assert per_user(fit).reindex(n.index, fill_value=0).equals(np.round(0.8 * n).astype(int))
    assert set(fit.index) == reference_split(df, 0.8, 5) and len(fit) + len(val) == len(df)


def test_temporal_split_latest_in_test() -> None:
    df = frame(seed=1)
    train, test = temporal_split(df, test_ratio=0.2)
    assert len(train) + len(test) == len(df)
    n = per_user(df)
    expect = np.minimum(np.round(0.2 * n), n - 1).astype(int)
    assert per_user(test).reindex(n.index, fill_value=0).equals(expect)
    assert set(per_user(train).index) == set(n.index)  # everyone keeps a training interaction
    pos = pd.Series(np.arange(len(df)), index=df.index)
    for user, rows in test.groupby("user_id"):
        mine = train[train["user_id"] == user]
        latest_train = max(zip(mine["timestamp"], pos[mine.index], strict=True))
        earliest_test = min(zip(rows["timestamp"], pos[rows.index], strict=True))
        assert latest_train < earliest_test  # ties: the later row of the frame is later


def test_temporal_tie_and_single_interaction() -> None:
    df = pd.DataFrame({"user_id": [1] * 5 + [2], "item_id": [1, 2, 3, 4, 5, 6],
                       "timestamp": [9, 5, 9, 1, 2, 0]})  # fmt: skip
    train, test = temporal_split(df, 0.2)
    assert test["item_id"].tolist() == [3]  # latest time 9, the later of the two rows
    assert 6 in train["item_id"].tolist()


def test_cold_start_split() -> None:
    df = frame(n_users=200, seed=2)
    train, test, cold = cold_start_split(df, item_ratio=0.2, seed=42)
    items = df["item_id"].unique()
    assert len(cold) == round(0.2 * len(items)) and set(cold) <= set(items)
    assert not train["item_id"].isin(cold).any()
    assert test["item_id"].isin(cold).all() and len(train) + len(test) == len(df)
    again = cold_start_split(df, 0.2, seed=42)[2]
    assert np.array_equal(cold, again) and not np.array_equal(cold, cold_start_split(df, 0.2, 1)[2])


def test_make_split_protocols() -> None:
    df = frame()
    for name in PROTOCOLS:
        split = make_split(name, df, seed=42)
        assert split.name == name and len(split.train) + len(split.test) == len(df)
        assert (split.cold_items is not None) == (name == "cold_start")
        assert (split.cold_users is not None) == (name == "cold_user")
    with pytest.raises(ValueError, match="recommenders, temporal, cold_start, cold_user"):
        make_split("random", df)
    with pytest.raises(ValueError, match="between 0 and 1"):
        python_stratified_split(df, ratio=1.0)


def test_cold_user_split() -> None:
    df = frame(n_users=200, seed=3)
    train, test, cold = cold_user_split(df, user_ratio=0.2, seed=42)
    users = df["user_id"].unique()
    assert len(cold) == round(0.2 * len(users)) and set(cold) <= set(users)
    assert not train["user_id"].isin(cold).any() and test["user_id"].isin(cold).all()
    assert len(train) + len(test) == len(df)
    split = make_split("cold_user", df, seed=42)
    assert np.array_equal(split.cold_users, cold) and split.cold_items is None


def test_time_split_is_global_and_time_ordered() -> None:
    df = pd.DataFrame({"user_id": [1, 2, 1, 2, 3], "item_id": [1, 2, 3, 4, 5],
                       "timestamp": [50, 10, 40, 30, 50]})  # fmt: skip
    train, test = time_split(df, 0.4)
    assert train["timestamp"].tolist() == [10, 30, 40]  # every user's earlier rows
    assert test["item_id"].tolist() == [1, 5]  # ties at 50: file order
