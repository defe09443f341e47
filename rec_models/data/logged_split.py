"""Protocol splits of a dataset with logged impressions folded in, without leaking the log.

`make retrain` appends the event log's rows (rec_models/data/logged.py, `data.logged`) to the
dataset's. Split together, the logged rows would land in every protocol's test set as well:
the test would no longer be the one the current version recorded its metrics on, and since the
service shows a user the same items response after response, one copy of an impression would be
trained on while another copy is a test positive. So each protocol splits the dataset's own
rows exactly as `make train` did for the current version, and the logged rows join the training
side only, less every one that would leak into what is measured:

- its (user, item) pair is a row of the protocol's test or of the validation split carved out of
  the training side (rec_models/train_tuning.py: alpha and calibration);
- its item (cold_start) or user (cold_user) is one the protocol keeps out of training;
- (temporal) it is later than the user's first test row: the future of the test period.

The counts of what was left out, and why, go into the training report (`logged_split`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rec_models.config import TrainConfig
from rec_models.data.splits import Split, make_split, validation_split


def logged_rows(cfg: TrainConfig, interactions: pd.DataFrame) -> int:
    """How many of the last rows of `interactions` are the `data.logged` snapshot's
    (rec_models/data/logged.with_logged appends them, in order)."""
    if not cfg.data.logged:
        return 0
    from rec_models.data.logged import read_logged

    n = len(read_logged(cfg.data.logged))
    if n > len(interactions):
        raise ValueError(f"data.logged has {n} rows, more than the {len(interactions)} loaded")
    return n


def _pairs(df: pd.DataFrame) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays([df["user_id"].to_numpy(), df["item_id"].to_numpy()])


def split_with_logged(
    cfg: TrainConfig, protocol: str, interactions: pd.DataFrame, n_logged: int
) -> tuple[Split, dict[str, int]]:
    """(the protocol's split, what happened to the logged rows). The split's train holds the
    dataset's training rows first, then the logged rows that joined them (`Split.n_logged`)."""
    seed = cfg.data.seed
    if n_logged == 0:
        return make_split(protocol, interactions, seed=seed), {}
    base, logged = interactions.iloc[:-n_logged], interactions.iloc[-n_logged:]
    split = make_split(protocol, base, seed=seed)
    _, val = validation_split(split.train, ratio=cfg.hybrid.val_ratio, seed=seed + 1)
    pairs = _pairs(logged)
    measured = pairs.isin(_pairs(split.test)) | pairs.isin(_pairs(val))
    cold = np.zeros(len(logged), bool)
    if split.cold_items is not None:
        cold |= logged["item_id"].isin(split.cold_items).to_numpy()
    if split.cold_users is not None:
        cold |= logged["user_id"].isin(split.cold_users).to_numpy()
    later = np.zeros(len(logged), bool)
    if protocol == "temporal":
        first_test = split.test.groupby("user_id")["timestamp"].min()
        start = logged["user_id"].map(first_test).to_numpy(np.float64)  # NaN: no test rows
        later = logged["timestamp"].to_numpy(np.float64) >= start
    keep = ~(measured | cold | later)
    split.train = pd.concat([split.train, logged[keep]])
    split.n_logged = int(keep.sum())
    return split, {
        "logged_rows": n_logged,
        "to_training": int(keep.sum()),
        "left_out_test_or_validation_pair": int(measured.sum()),
        "left_out_cold": int((cold & ~measured).sum()),
        "left_out_later_than_test": int((later & ~measured & ~cold).sum()),
    }


def validation_with_logged(
    train: pd.DataFrame, n_logged: int, ratio: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fit, val) of a training frame whose last `n_logged` rows are logged: the validation
    split of the dataset's rows, as without a log, the logged rows all fit (split_with_logged
    already left out those whose pair is in this validation split)."""
    if n_logged == 0:
        return validation_split(train, ratio=ratio, seed=seed)
    fit, val = validation_split(train.iloc[:-n_logged], ratio=ratio, seed=seed)
    return pd.concat([fit, train.iloc[-n_logged:]]), val
