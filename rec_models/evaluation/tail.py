"""The long tail: items outside the most popular share of the catalog, and relevance restricted
to them, so NDCG@k can be measured among tail items alone (what a model finds beyond the hits).

tail_ndcg@k ranks each user's candidates that are tail items and counts as relevant only the
user's test positives that are tail items (users with none are skipped, as in ranking_metrics).
Popularity is counted on the training positives of the same split.
"""

from __future__ import annotations

import numpy as np

HEAD_SHARE = 0.2  # the head: this share of the warm items, the most popular ones


def tail_items(counts: np.ndarray, head_share: float = HEAD_SHARE) -> np.ndarray:
    """(n_items,) training counts -> (n_items,) bool: warm items outside the top `head_share`
    of the warm items by count (ties broken by item index, so the head has a fixed size)."""
    if not 0.0 <= head_share < 1.0:
        raise ValueError(f"head_share must lie in [0, 1), got {head_share}")
    counts = np.asarray(counts)
    warm = np.nonzero(counts > 0)[0]
    order = warm[np.lexsort((warm, -counts[warm]))]  # most popular first
    tail = np.zeros(len(counts), dtype=bool)
    tail[order[round(head_share * len(warm)) :]] = True
    return tail


def tail_relevant(relevant: list[np.ndarray], tail: np.ndarray) -> list[np.ndarray]:
    """Each user's relevant items that are tail items."""
    return [np.asarray(r, dtype=np.int64)[tail[np.asarray(r, dtype=np.int64)]] for r in relevant]
