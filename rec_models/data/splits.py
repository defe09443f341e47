"""Evaluation protocols as deterministic splits of an interactions frame (pure pandas/numpy).

- recommenders: Microsoft Recommenders' `python_stratified_split(ratio=0.75, seed=42)`
  (filter_by="user", min_rating=1): each user's interactions shuffled by np.random.rand drawn over
  the frame's row order; the first round(0.75 n) of each user (half to even) are train.
- temporal: per user, the latest 20% of interactions by timestamp are the test set.
- cold_start: 20% of the items (seeded) leave training entirely; their interactions are the test.
- cold_user: 20% of the users (seeded) leave training entirely; their interactions are the test.
- time_split (not a ranking protocol: the CTR view of an impression log): the latest 20% of all
  rows by timestamp are the test, everything earlier is training.
On an impression log every protocol splits impressions; the evaluation counts the clicked test
rows as relevant (rec_models/fitting.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

PROTOCOLS = ("recommenders", "temporal", "cold_start", "cold_user")


@dataclass
class Split:
    """One evaluation protocol's train and test interactions."""

    name: str  # the protocol
    train: pd.DataFrame
    test: pd.DataFrame
    cold_items: np.ndarray | None = None  # item ids removed from training (cold_start only)
    cold_users: np.ndarray | None = None  # user ids removed from training (cold_user only)


def _check_ratio(ratio: float, what: str) -> None:
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"{what} must lie strictly between 0 and 1, got {ratio}")


def python_stratified_split(
    df: pd.DataFrame, ratio: float = 0.75, seed: int = 42, col_user: str = "user_id"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) with Microsoft Recommenders' python_stratified_split semantics.

    Their recipe (recommenders 1.2.1, recommenders/datasets/python_splitters.py), step by step:
    seed the global NumPy RNG, draw one uniform number per row in the frame's row order, sort by
    (user, random), rank each user's rows 1..n and keep rank <= round(ratio * n) for train, where
    round is NumPy's half-to-even (n=2 -> 2 of 2, n=6 -> 4, n=10 -> 8 at ratio 0.75). Both frames
    keep the input's index and columns, ordered by user then random draw.
    The input is not modified.
    """
    _check_ratio(ratio, "ratio")
    data = df.copy()
    np.random.seed(seed)  # their exact recipe: the global RNG, one draw per row
    data["_random"] = np.random.rand(data.shape[0])
    data = data.sort_values([col_user, "_random"])
    groups = data.groupby(col_user)
    count = groups[col_user].transform("count")
    rank = groups.cumcount() + 1
    data = data.drop(columns="_random")
    in_train = (rank <= (ratio * count).round()).to_numpy()  # Series.round: half to even
    return data[in_train], data[~in_train]


def temporal_split(
    df: pd.DataFrame, test_ratio: float = 0.2, col_user: str = "user_id"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): per user, the latest round(test_ratio * n) interactions by timestamp are
    test (ties: later rows of the frame count as later); each user keeps at least one training
    interaction. Both frames keep the input's index, ordered by user, then time."""
    _check_ratio(test_ratio, "test_ratio")
    position = np.arange(len(df))
    order = np.lexsort((position, df["timestamp"].to_numpy(), df[col_user].to_numpy()))
    data = df.iloc[order]
    groups = data.groupby(col_user)
    count = groups[col_user].transform("count").to_numpy()
    rank = groups.cumcount().to_numpy() + 1  # 1 = oldest
    n_test = np.minimum(np.round(test_ratio * count), count - 1)
    in_test = rank > count - n_test
    return data[~in_test], data[in_test]


def cold_start_split(
    df: pd.DataFrame, item_ratio: float = 0.2, seed: int = 42
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """(train, test, cold_item_ids): round(item_ratio * n_items) of the items that appear in df,
    drawn with a seeded generator, become cold; all their interactions are test, the rest train.
    Rows keep the input's order and index."""
    _check_ratio(item_ratio, "item_ratio")
    items = np.sort(df["item_id"].unique())
    rng = np.random.default_rng(seed)
    n_cold = round(item_ratio * len(items))
    cold = np.sort(rng.choice(items, size=n_cold, replace=False)).astype(np.int64)
    is_cold = df["item_id"].isin(cold).to_numpy()
    return df[~is_cold], df[is_cold], cold


def cold_user_split(
    df: pd.DataFrame, user_ratio: float = 0.2, seed: int = 42
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """(train, test, cold_user_ids): round(user_ratio * n_users) of the users in df, drawn with a
    seeded generator, leave training; all their rows are test. Rows keep the input's order."""
    _check_ratio(user_ratio, "user_ratio")
    users = np.sort(df["user_id"].unique())
    rng = np.random.default_rng(seed)
    cold = np.sort(rng.choice(users, size=round(user_ratio * len(users)), replace=False))
    is_cold = df["user_id"].isin(cold).to_numpy()
    return df[~is_cold], df[is_cold], cold.astype(np.int64)


def time_split(df: pd.DataFrame, test_ratio: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): the latest round(test_ratio * n) rows by timestamp (ties: later rows of the
    frame are later) are test. Both keep the input's index, in time order."""
    _check_ratio(test_ratio, "test_ratio")
    order = np.lexsort((np.arange(len(df)), df["timestamp"].to_numpy()))
    n_test = round(test_ratio * len(df))
    data = df.iloc[order]
    return data.iloc[: len(df) - n_test], data.iloc[len(df) - n_test :]


def validation_split(
    train: pd.DataFrame, ratio: float = 0.2, seed: int = 43
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fit, val): a per-user stratified split of a training frame holding out about `ratio` of
    each user's interactions, for hyperparameters and calibration."""
    _check_ratio(ratio, "ratio")
    return python_stratified_split(train, ratio=1 - ratio, seed=seed)


def make_split(protocol: str, interactions: pd.DataFrame, seed: int = 42) -> Split:
    """The split of one protocol: "recommenders" (stratified 75/25), "temporal" (latest 20%
    per user), "cold_start" (20% of items cold) or "cold_user" (20% of users cold)."""
    if protocol == "recommenders":
        return Split(protocol, *python_stratified_split(interactions, 0.75, seed))
    if protocol == "temporal":
        return Split(protocol, *temporal_split(interactions, 0.2))
    if protocol == "cold_start":
        train, test, cold = cold_start_split(interactions, 0.2, seed)
        return Split(protocol, train, test, cold)
    if protocol == "cold_user":
        train, test, cold = cold_user_split(interactions, 0.2, seed)
        return Split(protocol, train, test, cold_users=cold)
    raise ValueError(f"unknown protocol '{protocol}': choose one of {', '.join(PROTOCOLS)}")
