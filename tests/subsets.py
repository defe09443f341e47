"""Small MovieLens subsets for the tests that train end to end (data/ml-100k, from `make data`)."""

from __future__ import annotations

from rec_models.config import DataConfig
from rec_models.data import load_dataset
from rec_models.data.schema import Dataset


def movielens_subset(n_users: int, n_items: int) -> Dataset:
    """The first `n_users` users, the `n_items` most-rated items, those users' ratings of them."""
    full = load_dataset(DataConfig())
    users = full.users.iloc[:n_users]
    popular = full.interactions["item_id"].value_counts().index[:n_items]
    items = full.items[full.items["item_id"].isin(popular)]
    inter = full.interactions[
        full.interactions["user_id"].isin(users["user_id"])
        & full.interactions["item_id"].isin(popular)
    ]
    return Dataset("ml-subset", users, items, inter)
