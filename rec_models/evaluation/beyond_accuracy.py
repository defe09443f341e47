"""Beyond-accuracy metrics of top-k lists: catalog coverage, intra-list diversity, novelty.

topk is (U, k) int item indices per user; -1 entries are padding and are ignored.
"""

from __future__ import annotations

import numpy as np


def catalog_coverage(topk: np.ndarray, n_items: int) -> float:
    """Share of the n_items catalog that appears in at least one list of topk (U, k)."""
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    topk = np.asarray(topk, dtype=np.int64)
    return float(np.unique(topk[topk >= 0]).size / n_items)


def intra_list_diversity(topk: np.ndarray, item_emb: np.ndarray) -> float:
    """1 - mean pairwise cosine similarity within each list, averaged over users.

    topk: (U, k); item_emb: (N, d), L2-normalised here (zero rows stay zero). Lists with fewer
    than two real items are skipped; returns 0.0 when no list has two.
    """
    topk = np.asarray(topk, dtype=np.int64)
    emb = np.asarray(item_emb, dtype=np.float64)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    emb = emb / np.where(norms > 0, norms, 1.0)
    sq_norms = (emb * emb).sum(axis=1)  # (N,) 1, or 0 for zero rows
    valid = topk >= 0  # (U, k)
    safe = np.where(valid, topk, 0)
    m = valid.sum(axis=1).astype(np.float64)  # (U,)
    keep = m >= 2
    if not keep.any():
        return 0.0
    # sum over ordered pairs i != j of e_i . e_j = |sum_i e_i|^2 - sum_i |e_i|^2
    total = np.einsum("uk,ukd->ud", valid.astype(np.float64), emb[safe])  # (U, d)
    pair_sum = (total * total).sum(axis=1) - (sq_norms[safe] * valid).sum(axis=1)
    mean_cos = pair_sum[keep] / (m[keep] * (m[keep] - 1.0))
    return float(np.mean(1.0 - mean_cos))


def novelty(topk: np.ndarray, item_popularity_counts: np.ndarray, n_users: int) -> float:
    """Mean self-information -log2(count_i / n_users) of recommended items.

    topk: (U, k); item_popularity_counts: (N,) training interaction counts (0 is read as 1).
    Averaged within each list, then over users with at least one real item; 0.0 if none.
    """
    if n_users < 1:
        raise ValueError(f"n_users must be >= 1, got {n_users}")
    topk = np.asarray(topk, dtype=np.int64)
    counts = np.maximum(np.asarray(item_popularity_counts, dtype=np.float64), 1.0)
    info = -np.log2(counts / n_users)  # (N,)
    valid = topk >= 0
    m = valid.sum(axis=1)
    keep = m > 0
    if not keep.any():
        return 0.0
    per_user = np.where(valid, info[np.where(valid, topk, 0)], 0.0).sum(axis=1)
    return float(np.mean(per_user[keep] / m[keep]))
