"""What every protocol does: fit the models on a split's training rows, rank, look up scores.

Shared by train.py (ranking protocols) and clicks.py (the impression log's CTR view). Relevance is
always the positives (clicks) of the test rows; shown-but-not-clicked test rows are never relevant.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rec_models.config import TrainConfig
from rec_models.data.events import positive_mask
from rec_models.data.splits import Split
from rec_models.evaluation import metrics as M
from rec_models.models.attention import AttentionRecommender
from rec_models.models.base import Recommender, TrainData
from rec_models.models.baselines import PopularityRecommender, RandomRecommender
from rec_models.models.hybrid import HybridRecommender
from rec_models.models.mf import MFRecommender
from rec_models.pipeline import Context

LEARNED = ("mf", "attention", "hybrid")


def fit_all(cfg: TrainConfig, data: TrainData, alpha: float) -> dict[str, Recommender]:
    mf = MFRecommender(cfg.mf).fit(data)
    att = AttentionRecommender(cfg.attention).fit(data)
    return {
        "random": RandomRecommender(cfg.data.seed).fit(data),
        "popularity": PopularityRecommender().fit(data),
        "mf": mf,
        "attention": att,
        "hybrid": HybridRecommender(mf, att, alpha),
    }


def relevant_lists(ctx: Context, test: pd.DataFrame) -> list[np.ndarray]:
    """Per user, the item indices of the test positives."""
    users, items = ctx.index(test[positive_mask(test)])
    order = np.argsort(users, kind="stable")
    bounds = np.searchsorted(users[order], np.arange(ctx.n_users + 1))
    return [items[order][bounds[u] : bounds[u + 1]] for u in range(ctx.n_users)]


def candidates_of(ctx: Context, split: Split, data: TrainData) -> np.ndarray:
    """(n_items,) bool: the cold items for cold_start, else every item seen in training."""
    if split.cold_items is not None:
        return np.isin(ctx.item_ids, split.cold_items)
    return data.warm_items()


def rank(model: Recommender, ctx: Context, candidates: np.ndarray, k: int) -> np.ndarray:
    users = np.arange(ctx.n_users)
    return model.recommend(users, k, exclude_seen=True, candidates=candidates)


def pair_scores(model: Recommender, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    full = model.score(np.arange(int(users.max()) + 1))
    return full[users, items].astype(np.float64)


def ranked_impressions(
    model: Recommender, users: np.ndarray, items: np.ndarray, n_users: int, k: int
) -> np.ndarray:
    """(n_users, k) each user's shown items (users, items: the held-out impressions) re-ranked
    by the model, best first, -1 padded: ranking among what the user could be shown."""
    scores = pair_scores(model, users, items)
    order = np.lexsort((-scores, users))
    u, i = users[order], items[order]
    start = np.searchsorted(u, np.arange(n_users + 1))
    top = np.full((n_users, k), -1, dtype=np.int64)
    for user in np.unique(u):
        seq = i[start[user] : start[user + 1]]
        seq = seq[np.sort(np.unique(seq, return_index=True)[1])][:k]  # an ad shown twice: once
        top[user, : len(seq)] = seq
    return top


def evaluate_ranking(
    models: dict[str, Recommender],
    ctx: Context,
    test: pd.DataFrame,
    candidates: np.ndarray,
    k: int,
) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    relevant = relevant_lists(ctx, test)
    out, tops = {}, {}
    for name, model in models.items():
        tops[name] = rank(model, ctx, candidates, k)
        out[name] = M.ranking_metrics(tops[name], relevant, k)
    return out, tops


def ctr_examples(ctx: Context, data: TrainData, test: pd.DataFrame, seed: int) -> tuple:
    """The sampled CTR view of a log without impressions: liked test rows are clicks, the other
    test rows non-clicks, plus as many sampled unseen items as non-clicks."""
    users, items = ctx.index(test)
    liked = ctx.liked(test["rating"].to_numpy()) & positive_mask(test)
    labels = liked.astype(np.float64)
    rng = np.random.default_rng(seed)
    seen = set(zip(data.users.tolist(), data.items.tolist(), strict=True))
    seen |= set(zip(users.tolist(), items.tolist(), strict=True))
    neg_u, neg_i = [], []
    while len(neg_u) < len(users):
        u, i = int(rng.integers(ctx.n_users)), int(rng.integers(ctx.n_items))
        if (u, i) not in seen:
            seen.add((u, i))
            neg_u.append(u)
            neg_i.append(i)
    u_all = np.concatenate([users, neg_u])
    i_all = np.concatenate([items, neg_i])
    return u_all, i_all, np.concatenate([labels, np.zeros(len(neg_u))])


def beyond_accuracy(
    tops: dict[str, np.ndarray], data: TrainData, item_emb: np.ndarray
) -> dict[str, dict[str, float]]:
    counts = data.item_counts()
    return {
        name: {
            "coverage": M.catalog_coverage(top, data.n_items),
            "diversity": M.intra_list_diversity(top, item_emb),
            "novelty": M.novelty(top, counts, data.n_users),
        }
        for name, top in tops.items()
    }
