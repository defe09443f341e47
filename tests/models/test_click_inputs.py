"""What the models fit on in an impression log: positives with weights, shown negatives."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from rec_models.config import AttentionConfig, MFConfig
from rec_models.models.attention import AttentionRecommender, shown_bias
from rec_models.models.base import TrainData
from rec_models.models.mf import MFRecommender, weighted_cells

from .test_contract import N_USERS, checkerboard


def test_weighted_cells_hand_case() -> None:
    # user 0 clicked item 1 twice (weights 1 and 3) and was shown item 2; user 1 clicked item 2
    # and was also shown it once more (a positive stays a positive)
    data = TrainData(
        2, 3, np.array([0, 0, 1]), np.array([1, 1, 2]), np.ones(3, np.float32),
        np.arange(3), weights=np.array([1.0, 3.0, 1.0], np.float32),
        shown_users=np.array([0, 1]), shown_items=np.array([2, 2]),
    )  # fmt: skip
    by_user, by_item = weighted_cells(data, alpha=10.0, shown_alpha=2.0)
    items, (conf, pref) = by_user[0]
    assert items.tolist() == [1, 2] and conf.tolist() == [30.0, 2.0] and pref.tolist() == [1, 0]
    items, (conf, pref) = by_user[1]
    assert items.tolist() == [2] and conf.tolist() == [10.0] and pref.tolist() == [1]
    users, (conf, pref) = by_item[2]
    cells = sorted(zip(users.tolist(), conf.tolist(), pref.tolist(), strict=True))
    assert cells == [(0, 2.0, 0.0), (1, 10.0, 1.0)]
    assert len(by_item[0][0]) == 0


def test_shown_negatives_push_an_ad_down_in_mf() -> None:
    data, heldout = checkerboard()
    marked = np.arange(0, N_USERS, 4)  # these users were shown their held-out item, no click
    shown = dataclasses.replace(data, shown_users=marked, shown_items=heldout[marked])
    cfg = MFConfig(factors=4, epochs=10, reg=1.0, shown_alpha=20.0)
    plain = MFRecommender(cfg).fit(data, progress=False).score(marked)
    told = MFRecommender(cfg).fit(shown, progress=False).score(marked)
    rows = np.arange(len(marked))
    drop = plain[rows, heldout[marked]] - told[rows, heldout[marked]]
    assert drop.mean() > 0.2 and (drop > 0).mean() >= 0.8, drop  # rank 4: users share factors


def test_bpr_draws_shown_negatives_and_weights() -> None:
    data, heldout = checkerboard()
    marked = np.arange(0, N_USERS, 4)
    shown = dataclasses.replace(
        data,
        shown_users=marked,
        shown_items=heldout[marked],
        weights=np.full(len(data.users), 2.0, np.float32),
    )
    cfg = MFConfig(loss="bpr", factors=4, bpr_epochs=30, lr=0.05, bpr_shown_share=1.0)
    plain = MFRecommender(cfg).fit(data, progress=False).score(marked)
    told = MFRecommender(cfg).fit(shown, progress=False).score(marked)
    rows = np.arange(len(marked))
    assert told[rows, heldout[marked]].mean() < plain[rows, heldout[marked]].mean()


def test_shown_bias_counts_logged_negatives_in_the_softmax() -> None:
    indptr, items = np.array([0, 2, 2, 3]), np.array([1, 4, 0])  # user 0: 1, 4; user 2: 0
    bias = shown_bias(indptr, items, np.array([0, 1, 2]), torch.tensor([4, 0, 3]), 5, 1.5)
    expected = torch.zeros(3, 5)
    expected[0, 1] = 1.5  # item 4 is user 0's target here: no bias on it
    expected[2, 0] = 1.5
    assert torch.equal(bias, expected)


def test_attention_fits_with_shown_negatives_and_weights() -> None:
    data, heldout = checkerboard()
    other = (heldout + 1) % data.n_items  # an item of the other group, shown and not clicked
    shown = dataclasses.replace(
        data,
        shown_users=np.arange(N_USERS),
        shown_items=other,
        weights=np.linspace(1, 3, len(data.users)).astype(np.float32),
    )
    cfg = AttentionConfig(dim=16, epochs=15, batch_size=64, max_history=12, shown_weight=8.0)
    model = AttentionRecommender(cfg).fit(shown, progress=False)
    top = model.recommend(np.arange(N_USERS), k=1, exclude_seen=True)
    assert (top[:, 0] == heldout).all()
