"""The options the MovieLens quality sweep measures: the self-attention user tower, the popularity
correction, positives-only targets, the per-user blend weight by history length, iALS's
unobserved weight and the tail of the catalog; and that what is served still exports to one
user tower whose output . item vector is the model's score."""

from __future__ import annotations

import numpy as np
import pytest

from rec_models.config import AttentionConfig, MFConfig
from rec_models.evaluation.tail import tail_items, tail_relevant
from rec_models.models import Recommender
from rec_models.models.attention import AttentionRecommender
from rec_models.models.hybrid import HybridRecommender, bucket_of
from rec_models.models.mf import MFRecommender, _als_half
from tests.models.test_contract import N_USERS, checkerboard

# the blocks' extra parameters want a gentler lr than the bilinear tower on 40 toy users
# (at 5e-3 and 15 epochs 39 of the 40 held-out items come first)
SA = AttentionConfig(
    dim=16, epochs=30, lr=1e-3, batch_size=64, max_history=12, tower="self_attention"
)


@pytest.fixture(scope="module")
def board():
    return checkerboard()


@pytest.fixture(scope="module")
def sa_model(board):
    return AttentionRecommender(SA).fit(board[0], progress=False)


def test_self_attention_tower_finds_the_held_out_item(board, sa_model):
    _, heldout = board
    top = sa_model.recommend(np.arange(N_USERS), k=3, exclude_seen=True)
    assert (top[:, 0] == heldout).all()


def test_self_attention_tower_saves_and_reads_short_right_aligned_histories(
    sa_model, tmp_path
) -> None:
    import torch

    sa_model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert loaded.cfg.tower == "self_attention"
    np.testing.assert_allclose(loaded.score(np.arange(5)), sa_model.score(np.arange(5)), atol=1e-6)
    # the service sends histories only as long as the longest in the batch: the same user
    # with the padding columns cut off must get the same vector (positions count from the end)
    u = 0
    hist = sa_model.history[u : u + 1]
    n = int((hist >= 0).sum())
    emb = np.concatenate([sa_model.item_emb, np.zeros((1, sa_model.item_emb.shape[1]))])
    with torch.inference_mode():
        full = sa_model.net.user_tower(
            torch.as_tensor(sa_model.profile_emb[:1]),
            torch.as_tensor(emb[hist], dtype=torch.float32),
            torch.as_tensor(hist >= 0).float(),
        )
        short = sa_model.net.user_tower(
            torch.as_tensor(sa_model.profile_emb[:1]),
            torch.as_tensor(emb[hist[:, -n:]], dtype=torch.float32),
            torch.ones(1, n),
        )
    np.testing.assert_allclose(short.numpy(), full.numpy(), atol=1e-5)


def test_popularity_correction_and_positives_only_change_the_fit(board) -> None:
    data, _ = board
    base = AttentionConfig(dim=16, epochs=3, batch_size=64, max_history=12)
    ref = AttentionRecommender(base).fit(data, progress=False).score(np.arange(4))
    corr = AttentionConfig(**{**base.__dict__, "pop_correction": 1.0})
    got = AttentionRecommender(corr).fit(data, progress=False).score(np.arange(4))
    assert not np.allclose(got, ref)
    pos = AttentionConfig(**{**base.__dict__, "positives_only": True})
    half = data.subset(np.ones(len(data.users), bool))
    half.ratings = np.where(np.arange(len(half.users)) % 2, 5.0, 1.0).astype(np.float32)
    got = AttentionRecommender(pos).fit(half, progress=False).score(np.arange(4))
    assert not np.allclose(got, ref)  # half of the targets are gone
    half.ratings[:] = 1.0  # nothing rated >= 4: nothing to learn from, said so
    with pytest.raises(ValueError, match="positives_only"):
        AttentionRecommender(pos).fit(half, progress=False)


def test_unobserved_weight_solves_the_weighted_loss() -> None:
    rng = np.random.default_rng(0)
    Y = rng.normal(size=(6, 3))
    obs = np.array([0, 2, 5])
    alpha, reg, w0 = 4.0, 0.5, 0.3
    got = _als_half(Y, [obs], alpha, reg, unobserved=w0)[0]
    # direct: minimise sum_i c_i (p_i - y_i.x)^2 + reg |x|^2, c = 1 + alpha observed, w0 else
    c = np.full(6, w0)
    c[obs] = 1 + alpha
    p = np.zeros(6)
    p[obs] = 1.0
    want = np.linalg.solve(Y.T @ (c[:, None] * Y) + reg * np.eye(3), Y.T @ (c * p))
    np.testing.assert_allclose(got, want, atol=1e-10)
    np.testing.assert_array_equal(
        _als_half(Y, [obs], alpha, reg, unobserved=1.0), _als_half(Y, [obs], alpha, reg)
    )


def test_blend_by_history_length(board) -> None:
    data, _ = board
    mf = MFRecommender(MFConfig(factors=4, epochs=5, reg=1.0)).fit(data, progress=False)
    att = AttentionRecommender(AttentionConfig(dim=16, epochs=2, max_history=12)).fit(
        data, progress=False
    )
    assert bucket_of(np.array([0, 4, 5, 9, 10, 30]), [5, 10]).tolist() == [0, 0, 1, 1, 2, 2]
    hist = att.history.copy()
    hist[:5, :-3] = -1  # five users with a 3-item history, the rest with 9
    att.set_users(att.profile_emb, hist)
    hybrid = HybridRecommender(mf, att, [1.0, 0.0], edges=[5])
    scores = hybrid.score(np.arange(N_USERS))
    text = HybridRecommender(mf, att, 1.0).score(np.arange(N_USERS))
    mf_only = HybridRecommender(mf, att, 0.0).score(np.arange(N_USERS))
    np.testing.assert_allclose(scores[:5], text[:5], atol=1e-5)
    np.testing.assert_allclose(scores[5:], mf_only[5:], atol=1e-5)
    with pytest.raises(ValueError, match="edges need"):
        HybridRecommender(mf, att, [0.5], edges=[5]).score(np.arange(2))


def test_blended_self_attention_hybrid_exports_with_parity(board, sa_model, tmp_path) -> None:
    from export.scorer import export_onnx

    data, _ = board
    mf = MFRecommender(MFConfig(factors=4, epochs=5, reg=1.0)).fit(data, progress=False)
    hist = sa_model.history.copy()
    hist[:3, :-2] = -1  # short histories fall in the first bucket
    sa_model.set_users(sa_model.profile_emb, hist)
    hybrid = HybridRecommender(mf, sa_model, [0.9, 0.3], edges=[4])
    diffs = export_onnx(hybrid, tmp_path)  # raises GateFailed above 1e-4
    assert max(diffs.values()) <= 1e-4
    # as the service calls it: a batch of short histories, only 2 columns wide
    import onnxruntime as ort

    users = np.arange(3)
    emb = sa_model.item_emb[hist[users, -2:]]
    feeds = {
        "profile_emb": sa_model.profile_emb[users],
        "history_emb": emb.astype(np.float32),
        "history_mask": np.ones((3, 2), np.float32),
        "user_factors": mf.P[users],
    }
    got = ort.InferenceSession(str(tmp_path / "user_tower.onnx")).run(None, feeds)[0]
    np.testing.assert_allclose(got, hybrid.vectors()[0][users], atol=1e-4)


def test_item_ids_are_refused_by_the_export(board, tmp_path) -> None:
    from export.scorer import export_onnx

    data, _ = board
    cfg = AttentionConfig(dim=16, epochs=1, max_history=12, item_ids=True)
    att = AttentionRecommender(cfg).fit(data, progress=False)
    mf = MFRecommender(MFConfig(factors=4, epochs=2)).fit(data, progress=False)
    with pytest.raises(ValueError, match=r"attention\.item_ids"):
        export_onnx(HybridRecommender(mf, att, 0.5), tmp_path)


def test_tail_items_and_relevance() -> None:
    counts = np.array([50, 0, 3, 40, 3, 1, 2, 9, 8, 7, 6])  # 10 warm items: the head is 2
    tail = tail_items(counts)
    assert np.nonzero(~tail & (counts > 0))[0].tolist() == [0, 3]
    assert not tail[1]  # a cold item is neither head nor tail
    assert [r.tolist() for r in tail_relevant([np.array([0, 2, 5]), np.array([3])], tail)] == [
        [2, 5],
        [],
    ]
    with pytest.raises(ValueError, match="head_share"):
        tail_items(counts, 1.0)


def test_alpha_by_length_picks_per_bucket_and_keeps_overall_where_empty(board) -> None:
    from rec_models.config import TrainConfig
    from rec_models.train_tuning import alpha_by_length, apply_blend

    data, heldout = board
    mf = MFRecommender(MFConfig(factors=4, epochs=5, reg=1.0)).fit(data, progress=False)
    att = AttentionRecommender(AttentionConfig(dim=16, epochs=2, max_history=12)).fit(
        data, progress=False
    )
    cfg = TrainConfig()
    cfg.hybrid.alphas = [0.0, 0.5, 1.0]
    cfg.hybrid.length_edges = [5, 100]  # nobody has 100 history items: that bucket is empty
    hybrid = HybridRecommender(mf, att, 0.5)
    relevant = [np.array([h]) for h in heldout]
    ctx = None  # unused by alpha_by_length
    blend = alpha_by_length(cfg, ctx, hybrid, np.ones(data.n_items, bool), relevant, 0.5)
    assert blend["edges"] == [5, 100] and len(blend["alphas"]) == 3
    assert set(blend["alphas"]) <= {0.0, 0.5, 1.0}
    assert blend["alphas"][0] == 0.5 and blend["alphas"][2] == 0.5  # no user below 5 or >= 100
    assert hybrid.alpha == 0.5  # left as it was
    apply_blend(hybrid, {"alpha_by_length": blend})
    assert hybrid.edges == [5, 100] and hybrid.user_alpha().shape == (N_USERS,)
