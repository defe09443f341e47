"""Top-k indexes: exact results by hand, ANN recall against exact on clustered data, 1M items."""

from __future__ import annotations

import numpy as np
import pytest

from rec_models.serving.index import AnnIndex, ExactIndex, make_index, top_k
from rec_models.serving.settings import ServingSettings


def clustered(rng: np.random.Generator, n: int, d: int, clusters: int = 100) -> np.ndarray:
    """Gaussian clusters with varying norms (maximum inner product, not cosine)."""
    centers = rng.normal(size=(clusters, d)).astype(np.float32)
    x = centers[rng.integers(0, clusters, n)] + 0.5 * rng.normal(size=(n, d)).astype(np.float32)
    return x * rng.uniform(0.5, 1.5, size=(n, 1)).astype(np.float32)


def test_top_k_orders_by_score_then_position_and_drops_minus_inf():
    scores = np.array([0.1, 0.9, 0.5, 0.9, -np.inf, 0.2])
    assert top_k(scores, 3).tolist() == [1, 3, 2]
    assert top_k(scores, 10).tolist() == [1, 3, 2, 5, 0]  # -inf (excluded) never returned
    assert top_k(scores, 0).tolist() == []


def test_exact_index_by_hand():
    vectors = np.array([[1, 0], [0, 1], [1, 1], [-1, 0]], dtype=np.float32)
    index = ExactIndex(vectors)
    rows, scores = index.search(np.array([1.0, 0.5]), k=2)
    assert rows.tolist() == [2, 0] and np.allclose(scores, [1.5, 1.0])
    rows, _ = index.search(np.array([1.0, 0.5]), k=2, exclude=np.array([2]))
    assert rows.tolist() == [0, 1]
    rows, _ = index.search(np.array([1.0, 0.5]), k=5, candidates=np.array([3, 1, 1]))
    assert rows.tolist() == [1, 3]  # duplicates counted once, only the candidates
    rows, _ = index.search(
        np.array([1.0, 0.5]), k=5, exclude=np.array([1]), candidates=np.array([3, 1])
    )
    assert rows.tolist() == [3]
    with pytest.raises(ValueError, match="dimension"):
        index.search(np.ones(3), k=1)


@pytest.mark.parametrize("method", ["ivf", "hnsw"])
def test_ann_recall_against_exact_and_exclusions(method):
    rng = np.random.default_rng(0)
    vectors = clustered(rng, 20_000, 32)
    exact, ann = ExactIndex(vectors), AnnIndex(vectors, method=method)
    recalls = []
    for q in clustered(rng, 30, 32):
        exclude = rng.choice(len(vectors), 500, replace=False)
        want, _ = exact.search(q, 10, exclude)
        got, got_scores = ann.search(q, 10, exclude)
        assert len(got) == 10 and not np.isin(got, exclude).any()
        assert np.all(np.diff(got_scores) <= 0)
        np.testing.assert_allclose(got_scores, vectors[got] @ q, rtol=1e-5)  # exact re-scoring
        recalls.append(len(set(want.tolist()) & set(got.tolist())) / 10)
    assert np.mean(recalls) >= 0.9, f"{method} recall@10 {np.mean(recalls):.3f}"


def test_ann_over_fetches_when_the_best_items_are_excluded():
    rng = np.random.default_rng(1)
    vectors = clustered(rng, 5_000, 16)
    ann, q = AnnIndex(vectors, method="ivf", nlist=64, nprobe=1), clustered(rng, 1, 16)[0]
    best, _ = ExactIndex(vectors).search(q, 300)  # exclude the 300 best: the ANN must look further
    rows, _ = ann.search(q, 20, exclude=best)
    assert len(rows) == 20 and not np.isin(rows, best).any()
    rows, _ = ann.search(q, 5, candidates=np.arange(10))
    assert set(rows.tolist()) <= set(range(10))


def test_make_index_threshold_and_settings():
    vectors = np.random.default_rng(2).normal(size=(2_000, 8)).astype(np.float32)
    assert isinstance(make_index(vectors), ExactIndex)  # default threshold 50,000
    assert isinstance(make_index(vectors, ann_threshold=1_000), AnnIndex)
    settings = ServingSettings.from_env({"ADREC_ANN_THRESHOLD": "1_000", "ADREC_ANN_KIND": "hnsw"})
    index = make_index(vectors, settings.ann_threshold, settings.ann_kind)
    assert isinstance(index, AnnIndex) and index.describe()["method"] == "hnsw"
    with pytest.raises(ValueError, match="ADREC_ANN_THRESHOLD"):
        ServingSettings.from_env({"ADREC_ANN_THRESHOLD": "lots"})
    with pytest.raises(ValueError, match="choose one of"):
        AnnIndex(vectors, method="lsh")


def test_one_million_item_catalog():
    rng = np.random.default_rng(3)
    vectors = clustered(rng, 1_000_000, 16, clusters=500)
    index = make_index(vectors)  # over the threshold: ANN
    assert isinstance(index, AnnIndex) and index.describe()["nlist"] == 1000
    exact = ExactIndex(vectors)
    recalls = []
    for q in clustered(rng, 10, 16, clusters=500):
        want, _ = exact.search(q, 10, exclude=np.arange(100))
        got, _ = index.search(q, 10, exclude=np.arange(100))
        assert len(got) == 10 and got.min() >= 100
        recalls.append(len(set(want.tolist()) & set(got.tolist())) / 10)
    assert np.mean(recalls) >= 0.8
