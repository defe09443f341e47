"""The Recommender contract, run against every model on a synthetic dataset with a known answer.

Checkerboard: users and items fall into two groups; every user interacted with every item of their
group but one, held out. Item and profile texts carry the group (a direction in embedding space),
so every learned model must return the held-out item first among the user's unseen items.
"""

from __future__ import annotations

import numpy as np
import pytest

from rec_models.config import AttentionConfig, MFConfig
from rec_models.models import Recommender, TrainData, get_model
from rec_models.models.attention import AttentionRecommender
from rec_models.models.hybrid import HybridRecommender
from rec_models.models.mf import MFRecommender

N_USERS, N_ITEMS, D = 40, 20, 16


def checkerboard() -> tuple[TrainData, np.ndarray]:
    rng = np.random.default_rng(0)
    group_u = np.arange(N_USERS) % 2
    group_i = np.arange(N_ITEMS) % 2
    heldout = np.array([rng.choice(np.nonzero(group_i == g)[0]) for g in group_u])
    pairs = [
        (u, i)
        for u in range(N_USERS)
        for i in range(N_ITEMS)
        if group_i[i] == group_u[u] and i != heldout[u]
    ]
    users = np.array([p[0] for p in pairs])
    items = np.array([p[1] for p in pairs])
    dirs = np.linalg.qr(rng.normal(size=(D, 2)))[0].T  # two orthonormal group directions
    item_emb = dirs[group_i] + 0.3 * rng.normal(size=(N_ITEMS, D))
    item_emb /= np.linalg.norm(item_emb, axis=1, keepdims=True)

    def encode_profiles(u, i, r, t):
        noise = np.random.default_rng(1).normal(size=(N_USERS, D))  # a deterministic 'encoder'
        emb = dirs[group_u] + 0.3 * noise
        return (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)

    data = TrainData(
        N_USERS,
        N_ITEMS,
        users,
        items,
        np.full(len(users), 5.0, np.float32),
        np.arange(len(users), dtype=np.int64),
        item_emb.astype(np.float32),
        encode_profiles,
    )
    return data, heldout


def make(name: str, data: TrainData) -> Recommender:
    mf_cfg = MFConfig(factors=4, epochs=10, reg=1.0)
    att_cfg = AttentionConfig(dim=16, epochs=15, batch_size=64, max_history=12)
    if name == "mf":
        return MFRecommender(mf_cfg).fit(data, progress=False)
    if name == "attention":
        return AttentionRecommender(att_cfg).fit(data, progress=False)
    mf = MFRecommender(mf_cfg).fit(data, progress=False)
    att = AttentionRecommender(att_cfg).fit(data, progress=False)
    return HybridRecommender(mf, att, alpha=0.5)


@pytest.fixture(scope="module")
def board():
    return checkerboard()


@pytest.mark.parametrize("name", ["mf", "attention", "hybrid"])
def test_heldout_item_comes_first(board, name, tmp_path):
    data, heldout = board
    model = make(name, data)
    top = model.recommend(np.arange(N_USERS), k=3, exclude_seen=True)
    assert top.shape == (N_USERS, 3)
    assert (top[:, 0] == heldout).all(), f"{name}: held-out item not first"
    # Seen items are never recommended.
    seen = {(u, i) for u, i in zip(data.users, data.items, strict=True)}
    assert not any((u, i) in seen for u in range(N_USERS) for i in top[u])
    # save -> load gives the same scores.
    model.save(tmp_path / name)
    again = Recommender.load(tmp_path / name)
    np.testing.assert_allclose(
        again.score(np.arange(N_USERS)), model.score(np.arange(N_USERS)), rtol=1e-5, atol=1e-5
    )


def test_deterministic_given_seed(board):
    data, _ = board
    a, b = make("hybrid", data), make("hybrid", data)
    np.testing.assert_allclose(a.score(np.arange(5)), b.score(np.arange(5)), rtol=1e-6, atol=1e-6)


def test_hybrid_is_a_per_user_zscore_blend(board):
    data, _ = board
    model = make("hybrid", data)
    assert isinstance(model, HybridRecommender)
    users = np.arange(N_USERS)

    def z(s):
        return (s - s.mean(1, keepdims=True)) / s.std(1, keepdims=True)

    expected = 0.5 * z(model.attention.score(users)) + 0.5 * z(model.mf.score(users))
    np.testing.assert_allclose(model.score(users), expected, rtol=1e-4, atol=1e-4)


def test_baselines_and_unknown_name(board):
    data, _ = board
    pop = get_model("popularity")().fit(data)
    top = pop.recommend(np.arange(3), k=2, exclude_seen=False)
    counts = data.item_counts()
    assert counts[top[0, 0]] == counts.max()
    with pytest.raises(ValueError, match="choose one of"):
        get_model("nope")


def test_mf_leaves_unseen_items_without_factors():
    data, _ = checkerboard()
    sub = data.subset(data.items != 3)
    model = MFRecommender(MFConfig(factors=4, epochs=2)).fit(sub, progress=False)
    assert not model.Q[3].any()


def test_bad_mf_loss_is_named():
    with pytest.raises(ValueError, match=r"mf\.loss"):
        MFRecommender(MFConfig(loss="mse"))
