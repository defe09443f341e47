"""Protocol splits of a dataset with logged impressions folded in: the log is never measured,
and never trained on, by the dataset's protocols.

`make retrain` appends the event log's rows (rec_models/data/logged.py, `data.logged`) to the
dataset's. Split together with them, the logged rows would land in every protocol's test set:
the test would no longer be the one the current version recorded its metrics on, and since the
service shows a user the same items response after response, one copy of an impression would be
trained on while another is a test positive. Added to the training side only, they still leak:
the version that served them was trained on every row of the dataset, test rows included, and
left each user's rows out of its answers, so every logged item is known not to be one of the
user's test items, and a model trained on the log learns which strong candidates are not
relevant (its clicks leave the candidates as seen items, its non-clicks sink); the simulated
clicks also follow tastes drawn from all of a user's ratings. So each protocol splits and trains
on the dataset's own rows exactly as `make train` did for the current version, and what the log
adds is measured where the serving version did not see the answers: the log's own hold-out
(rec_models/retrain/holdout.py). The served model trains on everything, the log included.
"""

from __future__ import annotations

import pandas as pd

from rec_models.config import TrainConfig
from rec_models.data.splits import Split, make_split


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


def split_with_logged(
    cfg: TrainConfig, protocol: str, interactions: pd.DataFrame, n_logged: int
) -> Split:
    """The protocol's split of the dataset's own rows: `interactions` less its last `n_logged`
    (the logged ones)."""
    return make_split(protocol, interactions.iloc[: len(interactions) - n_logged], cfg.data.seed)
