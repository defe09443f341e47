"""The dataset's protocols split and train on the dataset's own rows, whatever the log holds:
the test rows are the ones the current version recorded its metrics on, and no logged row is
trained on (the version that served the log saw every test row and left them out of its
answers, so each logged item is known not to be a test item).

Split together with the dataset (the old behaviour), logged rows joined the test sets and the
training sides, and the retrained version's recorded NDCG@10 was measured on other rows,
trained on rows that tell which candidates are not relevant.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rec_models.config import load_config
from rec_models.data.logged_split import split_with_logged
from rec_models.data.splits import make_split

USERS, ITEMS = 30, 40


def frames(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(dataset rows, logged rows): the log shows new pairs, each in three responses."""
    rng = np.random.default_rng(seed)
    base = pd.DataFrame(
        [(u, i) for u in range(USERS) for i in rng.choice(ITEMS, 12, replace=False)],
        columns=["user_id", "item_id"],
    )
    base["timestamp"] = rng.integers(0, 1000, len(base))
    pairs = pd.DataFrame(
        [(u, i) for u in range(USERS) for i in range(ITEMS)], columns=base.columns[:2]
    )
    logged = pd.concat([pairs.sample(200, random_state=seed)] * 3)
    logged["timestamp"] = np.sort(rng.integers(1000, 2000, len(logged)))
    for df, click in ((base, True), (logged, rng.random(len(logged)) < 0.4)):
        df["rating"], df["click"], df["conversion"] = 4.0, click, False
    return base.reset_index(drop=True), logged.reset_index(drop=True)


@pytest.mark.parametrize("protocol", ["recommenders", "temporal", "cold_start", "cold_user"])
def test_the_protocols_split_and_train_on_the_datasets_rows_only(protocol: str):
    cfg = load_config(None)
    base, logged = frames()
    merged = pd.concat([base, logged], ignore_index=True)
    split = split_with_logged(cfg, protocol, merged, len(logged))
    alone = make_split(protocol, base, seed=cfg.data.seed)
    assert split.test.index.equals(alone.test.index)
    assert split.train.index.equals(alone.train.index)
    assert (split.train.index < len(base)).all() and (split.test.index < len(base)).all()
    assert split_with_logged(cfg, protocol, base, 0).test.index.equals(alone.test.index)
