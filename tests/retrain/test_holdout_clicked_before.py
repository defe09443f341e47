"""The hold-out comparison leaves out impressions of items the user had clicked earlier in the
log: the new version has those clicks in its history, so the service never shows it them again.

Kept in (the old behaviour), they penalised learning: a retrained model scores its own training
clicks high, and a user who already clicked an item rarely clicks it again, so the model that
learned the clicks ranked the hold-out worse than the one that never saw them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rec_models.config import load_config
from rec_models.retrain import holdout as H


def frame(rows: list[tuple[int, int, bool]]) -> pd.DataFrame:
    users, items, clicks = zip(*rows, strict=True)
    return pd.DataFrame({"user_id": users, "item_id": items, "click": clicks})


def test_items_clicked_before_the_holdout_are_not_ranked(monkeypatch):
    # earlier in the log user 1 clicked items 10 and 11; in the hold-out they are shown again
    # (and not clicked again) beside 12 and 13, of which 12 is clicked. The new model scores
    # its training clicks highest: ranked with them, the click sits third; without, first.
    fit_rows = frame([(1, 10, True), (1, 11, True), (1, 12, False), (1, 13, False)])
    holdout = frame([(1, 10, False), (1, 11, False), (1, 12, True), (1, 13, False)])
    scores = np.array([0.9, 0.8, 0.5, 0.1])
    monkeypatch.setattr(H, "torch_embedder", lambda base: None)
    monkeypatch.setattr(H, "new_model_scores", lambda *args: scores)
    cfg = load_config(None)
    cfg.retrain.min_holdout_clicks = 1
    out = H.compare_on_holdout(cfg, None, fit_rows, holdout, np.array(["r"] * 4), 0.5, None)
    assert out["new"]["ndcg@10"] == 1.0 and out["new"]["auc"] == 1.0
    assert out["new"]["impressions"] == 2 and out["new"]["clicks"] == 1
    assert out["left_out_clicked_before"] == 2
    assert H.clicked_before(fit_rows, np.array([1, 1, 2]), np.array([10, 12, 10])).tolist() == [
        True,
        False,
        False,
    ]
