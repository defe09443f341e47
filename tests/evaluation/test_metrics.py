"""Hand-computed checks of the evaluation metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rec_models.evaluation.metrics import (
    apply_platt,
    auc,
    auc_interval,
    catalog_coverage,
    ctr_metrics,
    expected_calibration_error,
    fit_platt,
    intra_list_diversity,
    logloss,
    novelty,
    ranking_metrics,
    reliability_bins,
    topk_from_scores,
)


def _arrays(*rows: list[int]) -> list[np.ndarray]:
    return [np.array(r, dtype=np.int64) for r in rows]


# ---------------------------------------------------------------- ranking


def test_ranking_hand_computed_single_user() -> None:
    m = ranking_metrics(np.array([[3, 1, 2]]), _arrays([1, 4]), k=3)
    assert m["precision@3"] == pytest.approx(1 / 3)
    assert m["recall@3"] == pytest.approx(1 / 2)
    ndcg = (1 / math.log2(3)) / (1 + 1 / math.log2(3))  # hit at rank 2, ideal ranks 1 and 2
    assert m["ndcg@3"] == pytest.approx(ndcg)
    assert m["map"] == pytest.approx((1 / 2) / 2)
    assert m["map@3"] == pytest.approx((1 / 2) / 2)
    assert m["hr@3"] == 1.0
    assert set(m) == {"ndcg@3", "precision@3", "recall@3", "map", "map@3", "hr@3"}


def test_map_divides_by_all_relevant_map_at_k_by_min_k() -> None:
    m = ranking_metrics(np.array([[5, 1]]), _arrays([1, 2, 3]), k=2)
    assert m["map"] == pytest.approx((1 / 2) / 3)
    assert m["map@2"] == pytest.approx((1 / 2) / 2)
    assert m["ndcg@2"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))


def test_perfect_ranking_and_no_hits() -> None:
    perfect = ranking_metrics(np.array([[4, 2, 7]]), _arrays([2, 4, 7]), k=3)
    assert perfect["ndcg@3"] == pytest.approx(1.0)
    assert perfect["map"] == pytest.approx(1.0)
    assert perfect["precision@3"] == pytest.approx(1.0)
    # more relevant items than k: the ideal list is k hits long, so ndcg is still 1
    assert ranking_metrics(np.array([[0, 1]]), _arrays([0, 1, 2, 3]), k=2)["ndcg@2"] == 1.0
    none = ranking_metrics(np.array([[5, 6, 7]]), _arrays([1, 2]), k=3)
    assert all(v == 0.0 for v in none.values())


def test_users_without_relevant_items_are_skipped() -> None:
    topk = np.array([[1, 2, 3], [1, 2, 3], [7, 8, 9]])
    m = ranking_metrics(topk, _arrays([1, 2], [], [1]), k=3)
    # user 0 perfect (ndcg 1), user 1 skipped, user 2 no hit (0)
    assert m["ndcg@3"] == pytest.approx(0.5)
    assert m["hr@3"] == pytest.approx(0.5)
    assert m["recall@3"] == pytest.approx(0.5)
    assert m["precision@3"] == pytest.approx((2 / 3) / 2)
    assert ranking_metrics(topk, _arrays([], [], []), k=3)["ndcg@3"] == 0.0


def test_padding_never_hits_and_short_lists_are_padded() -> None:
    m = ranking_metrics(np.array([[1, -1, -1]]), _arrays([1]), k=3)
    assert m["ndcg@3"] == 1.0
    assert m["precision@3"] == pytest.approx(1 / 3)  # divided by k, not by the list length
    # -1 must not be confused with item 0
    m = ranking_metrics(np.array([[-1, -1, 0]]), _arrays([0]), k=3)
    assert m["ndcg@3"] == pytest.approx((1 / math.log2(4)) / 1.0)
    assert m["map"] == pytest.approx(1 / 3)
    assert ranking_metrics(np.array([[1, 5]]), _arrays([5]), k=3) == ranking_metrics(
        np.array([[1, 5, -1]]), _arrays([5]), k=3
    )


def _reference(topk: np.ndarray, relevant: list[np.ndarray], k: int) -> dict[str, float]:
    """Straightforward per-user loop of the same definitions."""
    rows = []
    for items, rel in zip(topk, relevant, strict=True):
        rel = set(rel.tolist())
        if not rel:
            continue
        hits = [int(i in rel) for i in items[:k]]
        dcg = sum(h / math.log(1 + r) for r, h in enumerate(hits, 1))
        idcg = sum(1 / math.log(1 + r) for r in range(1, min(k, len(rel)) + 1))
        prec_sum = sum(sum(hits[:r]) / r for r, h in enumerate(hits, 1) if h)
        n = sum(hits)
        rows.append(
            [
                dcg / idcg,
                n / k,
                n / len(rel),
                prec_sum / len(rel),
                prec_sum / min(k, len(rel)),
                float(n > 0),
            ]
        )
    keys = [f"ndcg@{k}", f"precision@{k}", f"recall@{k}", "map", f"map@{k}", f"hr@{k}"]
    return dict(zip(keys, np.mean(rows, axis=0), strict=True))


def test_ranking_matches_reference_loop_on_random_data() -> None:
    rng = np.random.default_rng(0)
    n_users, n_items, k = 60, 40, 10
    topk = np.stack([rng.permutation(n_items)[:k] for _ in range(n_users)])
    topk[::7, -3:] = -1
    relevant = [rng.choice(n_items, size=rng.integers(0, 15), replace=False) for _ in topk]
    ours = ranking_metrics(topk, relevant, k)
    ref = _reference(topk, relevant, k)
    assert ours == pytest.approx(ref)


def test_ranking_rejects_mismatched_users() -> None:
    with pytest.raises(ValueError, match="relevant"):
        ranking_metrics(np.array([[1, 2]]), _arrays([1], [2]), k=2)


# ---------------------------------------------------------------- CTR


def test_auc_ties_perfect_inverted() -> None:
    # positives 0.5 and 0.9 vs negative 0.5: one tie (1/2) and one win -> 1.5 / 2
    assert auc(np.array([0, 1, 1]), np.array([0.5, 0.5, 0.9])) == pytest.approx(0.75)
    assert auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert auc(np.array([1, 1, 0, 0]), np.array([0.1, 0.2, 0.3, 0.4])) == 0.0
    assert auc(np.array([0, 1, 0, 1]), np.full(4, 0.3)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="both"):
        auc(np.array([1, 1]), np.array([0.1, 0.2]))


def test_logloss_hand_value_and_clipping() -> None:
    expected = -(math.log(0.8) + math.log(0.6)) / 2
    assert logloss(np.array([1, 0]), np.array([0.8, 0.4])) == pytest.approx(expected)
    assert math.isfinite(logloss(np.array([1, 0]), np.array([0.0, 1.0])))
    assert logloss(np.array([1, 0]), np.array([0.0, 1.0]), eps=1e-7) == pytest.approx(
        -math.log(1e-7)
    )


def test_ece_two_bins_hand_value() -> None:
    labels = np.array([0, 1, 1, 1])
    probs = np.array([0.2, 0.4, 0.6, 0.9])
    # bin [0, .5): mean prob .3, mean label .5 -> .2; bin [.5, 1]: .75 vs 1 -> .25; weights 2/4
    expected = 0.5 * 0.2 + 0.5 * 0.25
    assert expected_calibration_error(labels, probs, n_bins=2) == pytest.approx(expected)
    assert expected_calibration_error(np.array([0, 1]), np.array([0.0, 1.0])) == 0.0


def test_ctr_metrics_keys_and_means() -> None:
    m = ctr_metrics(np.array([0, 1, 1, 0]), np.array([0.1, 0.7, 0.6, 0.2]))
    assert set(m) == {"auc", "logloss", "ece", "mean_predicted_ctr", "observed_ctr"}
    assert m["auc"] == 1.0
    assert m["mean_predicted_ctr"] == pytest.approx(0.4)
    assert m["observed_ctr"] == pytest.approx(0.5)


def test_platt_recovers_known_parameters() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(0.5, 1.5, size=50_000)
    labels = (rng.random(scores.size) < apply_platt(scores, 2.0, -1.0)).astype(int)
    a, b = fit_platt(scores, labels)
    assert a == pytest.approx(2.0, abs=0.1)
    assert b == pytest.approx(-1.0, abs=0.1)


def test_platt_is_finite_on_separable_and_constant_data() -> None:
    a, b = fit_platt(np.array([-2.0, -1.0, 1.0, 2.0]), np.array([0, 0, 1, 1]))
    assert math.isfinite(a) and math.isfinite(b) and a > 0
    probs = apply_platt(np.array([-2.0, 2.0]), a, b)
    assert probs[0] < 0.05 and probs[1] > 0.95
    a, b = fit_platt(np.zeros(4), np.array([0, 1, 1, 1]))
    assert a == pytest.approx(0.0, abs=1e-6)
    assert apply_platt(np.zeros(1), a, b)[0] == pytest.approx(0.75, abs=1e-4)


# ---------------------------------------------------------------- beyond accuracy


def test_catalog_coverage() -> None:
    assert catalog_coverage(np.array([[0, 1], [1, -1]]), n_items=4) == 0.5


def test_intra_list_diversity_hand_values() -> None:
    emb = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])  # normalised: e0, e1, (e0 + e1) / sqrt 2
    topk = np.array([[0, 1, -1], [0, 2, -1], [1, -1, -1]])  # last list has < 2 items: skipped
    expected = (1.0 + (1.0 - 1 / math.sqrt(2))) / 2
    assert intra_list_diversity(topk, emb) == pytest.approx(expected)
    # three items: cosines 0, 1/sqrt2, 1/sqrt2
    three = intra_list_diversity(np.array([[0, 1, 2]]), emb)
    assert three == pytest.approx(1 - (2 / math.sqrt(2)) / 3)
    assert intra_list_diversity(np.array([[0, 0]]), emb) == pytest.approx(0.0)


def test_novelty_hand_values() -> None:
    counts = np.array([8, 2, 0])  # self-information with 8 users: 0, 2, 3 (0 read as 1)
    topk = np.array([[0, 1], [2, -1]])
    assert novelty(topk, counts, n_users=8) == pytest.approx((1.0 + 3.0) / 2)


# ---------------------------------------------------------------- top-k selection


def test_topk_respects_exclusion_candidates_and_pads() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.3], [0.4, 0.2, 0.8, 0.6]])
    before = scores.copy()
    top = topk_from_scores(
        scores, 3, exclude=_arrays([1], []), candidates=np.array([True, True, True, False])
    )
    np.testing.assert_array_equal(top, [[2, 0, -1], [2, 0, 1]])
    np.testing.assert_array_equal(scores, before)  # input untouched
    np.testing.assert_array_equal(topk_from_scores(scores[:1], 6), [[1, 2, 3, 0, -1, -1]])
    assert top.dtype == np.int64


def test_topk_matches_full_sort() -> None:
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(30, 200))
    expected = np.argsort(-scores, axis=1)[:, :10]
    np.testing.assert_array_equal(topk_from_scores(scores, 10), expected)


def test_topk_rejects_nan() -> None:
    with pytest.raises(ValueError, match="NaN"):
        topk_from_scores(np.array([[0.1, np.nan]]), 1)


# ---------------------------------------------------------------- calibration of the CTR view


def test_reliability_bins_hand_values() -> None:
    labels = np.array([0, 1, 0, 1, 1])
    probs = np.array([0.05, 0.15, 0.12, 0.95, 1.0])
    bins = reliability_bins(labels, probs, n_bins=10)
    assert [(b["lo"], b["hi"], b["count"]) for b in bins] == [(0.0, 0.1, 1), (0.1, 0.2, 2),
                                                              (0.9, 1.0, 2)]  # fmt: skip
    assert bins[1]["mean_predicted"] == pytest.approx(0.135) and bins[1]["observed"] == 0.5
    assert bins[2]["observed"] == 1.0  # 1.0 falls in the last bin
    # the bins are ECE's: size-weighted |observed - predicted|
    ece = sum(b["count"] * abs(b["observed"] - b["mean_predicted"]) for b in bins) / 5
    assert ece == pytest.approx(expected_calibration_error(labels, probs, 10))
    # equal-size bins by predicted probability: 2, 2 and 1 rows of the sorted predictions
    even = reliability_bins(labels, probs, n_bins=3, quantile=True)
    assert [b["count"] for b in even] == [2, 2, 1]
    assert [b["observed"] for b in even] == [0.0, 1.0, 1.0]
    assert even[0]["lo"] == 0.05 and even[0]["hi"] == 0.12


def test_auc_interval_brackets_the_auc_and_shrinks_with_data() -> None:
    rng = np.random.default_rng(0)

    def width(n: int) -> tuple[float, float, float]:
        y = rng.random(n) < 0.3
        s = y + rng.normal(0, 1.0, n)
        lo, hi = auc_interval(y, s, n_boot=200, seed=1)
        return lo, auc(y, s), hi

    lo, mid, hi = width(200)
    assert lo < mid < hi
    lo2, _, hi2 = width(5000)
    assert hi2 - lo2 < (hi - lo) / 3  # about 1/sqrt(25) of the width
    assert auc_interval([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8], n_boot=50) == (1.0, 1.0)
