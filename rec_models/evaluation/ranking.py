"""Top-k ranking metrics (Microsoft Recommenders definitions) and top-k selection from scores.

Definitions follow recommenders/evaluation/python_evaluation.py with relevancy_method="top_k":
binary relevance, DCG discount 1/log(1 + rank) (the log base cancels in NDCG), precision divides
the hits by k (not by the list length), MAP divides the summed precision at hit ranks by all of
the user's relevant items and MAP@k by min(k, n_relevant). Averages run over the users that have
at least one relevant test item; -1 in a top-k row is padding and never hits.
"""

from __future__ import annotations

import numpy as np

PAD = -1  # fills top-k rows when fewer than k candidates remain


def _pad_to_k(topk: np.ndarray, k: int) -> np.ndarray:
    """(U, m) -> (U, k): truncate to k columns or right-pad with -1."""
    topk = np.asarray(topk, dtype=np.int64)
    if topk.ndim != 2:
        raise ValueError(f"topk must be 2-D (n_users, k), got shape {topk.shape}")
    if topk.shape[1] >= k:
        return topk[:, :k]
    pad = np.full((topk.shape[0], k - topk.shape[1]), PAD, dtype=np.int64)
    return np.concatenate([topk, pad], axis=1)


def _hit_matrix(topk: np.ndarray, relevant: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Hits (U, k) bool and the number of distinct relevant items per user (U,) int64.

    Each (user, item) pair is encoded as one int64 so a single np.isin covers all users.
    """
    n_users = topk.shape[0]
    lengths = np.fromiter((len(r) for r in relevant), dtype=np.int64, count=n_users)
    if lengths.sum() == 0:
        return np.zeros(topk.shape, dtype=bool), np.zeros(n_users, dtype=np.int64)
    rel_items = np.concatenate([np.asarray(r, dtype=np.int64).ravel() for r in relevant])
    if rel_items.min() < 0:
        raise ValueError("relevant item indices must be >= 0")
    rel_users = np.repeat(np.arange(n_users, dtype=np.int64), lengths)
    width = int(max(rel_items.max(), topk.max(initial=0))) + 1
    rel_codes = np.unique(rel_users * width + rel_items)  # (nnz,) distinct pairs
    n_relevant = np.bincount(rel_codes // width, minlength=n_users)
    valid = topk >= 0
    codes = np.arange(n_users, dtype=np.int64)[:, None] * width + np.where(valid, topk, 0)
    hits = valid & np.isin(codes, rel_codes)
    return hits, n_relevant


def ranking_metrics(topk: np.ndarray, relevant: list[np.ndarray], k: int) -> dict[str, float]:
    """NDCG@k, precision@k, recall@k, MAP, MAP@k and hit rate@k.

    topk: (U, k) int item indices per user, best first, -1 = padding (more columns are cut,
    fewer are padded). relevant: U arrays of relevant (test) item indices; users with an empty
    array are skipped. Returns keys "ndcg@{k}", "precision@{k}", "recall@{k}", "map",
    "map@{k}", "hr@{k}"; all 0.0 when no user has a relevant item.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    topk = _pad_to_k(topk, k)
    if len(relevant) != topk.shape[0]:
        raise ValueError(f"relevant has {len(relevant)} users but topk has {topk.shape[0]} rows")
    keys = [f"ndcg@{k}", f"precision@{k}", f"recall@{k}", "map", f"map@{k}", f"hr@{k}"]
    hits, n_relevant = _hit_matrix(topk, relevant)
    evaluated = n_relevant > 0
    if not evaluated.any():
        return dict.fromkeys(keys, 0.0)
    hits = hits[evaluated].astype(np.float64)  # (E, k)
    n_rel = n_relevant[evaluated].astype(np.float64)  # (E,)
    ranks = np.arange(1, k + 1, dtype=np.float64)  # (k,)

    n_hits = hits.sum(axis=1)
    discount = 1.0 / np.log1p(ranks)  # 1 / ln(1 + rank)
    dcg = hits @ discount
    ideal_len = np.minimum(n_rel, k).astype(np.int64)
    idcg = np.cumsum(discount)[ideal_len - 1]
    # sum over hit ranks of precision@rank = (hits so far) / rank
    precision_sum = (hits * np.cumsum(hits, axis=1) / ranks).sum(axis=1)

    values = [
        dcg / idcg,
        n_hits / k,
        n_hits / n_rel,
        precision_sum / n_rel,
        precision_sum / np.minimum(n_rel, k),
        (n_hits > 0).astype(np.float64),
    ]
    return {key: float(v.mean()) for key, v in zip(keys, values, strict=True)}


def topk_from_scores(
    scores: np.ndarray,
    k: int,
    exclude: list[np.ndarray] | None = None,
    candidates: np.ndarray | None = None,
) -> np.ndarray:
    """Indices of the k highest scores per row, best first.

    scores: (U, N) float. exclude: U arrays of item indices never to return (e.g. seen items).
    candidates: (N,) bool mask shared by all users; False items are never returned.
    Returns (U, k) int64; rows are padded with -1 when fewer than k items remain. Excluded and
    non-candidate items are set to -inf internally (the input is not modified).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    scores = np.array(scores, dtype=np.float64, copy=True)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (n_users, n_items), got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    n_users, n_items = scores.shape
    if candidates is not None:
        candidates = np.asarray(candidates, dtype=bool)
        if candidates.shape != (n_items,):
            raise ValueError(f"candidates must have shape ({n_items},), got {candidates.shape}")
        scores[:, ~candidates] = -np.inf
    if exclude is not None:
        if len(exclude) != n_users:
            raise ValueError(f"exclude has {len(exclude)} users but scores has {n_users} rows")
        lengths = [len(e) for e in exclude]
        if sum(lengths) > 0:
            cols = np.concatenate([np.asarray(e, dtype=np.int64).ravel() for e in exclude])
            rows = np.repeat(np.arange(n_users), lengths)
            scores[rows, cols] = -np.inf

    k_eff = min(k, n_items)
    if k_eff == 0:
        return np.full((n_users, k), PAD, dtype=np.int64)
    part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]  # (U, k_eff) unordered
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    top = np.take_along_axis(part, order, axis=1)
    top_scores = np.take_along_axis(part_scores, order, axis=1)
    top = np.where(np.isneginf(top_scores), PAD, top)
    return _pad_to_k(top, k)
