"""Click-through-rate metrics (AUC, log loss, calibration error) and Platt calibration.

All inputs are 1-D arrays of the same length n: labels in {0, 1}, scores any real value,
probabilities in [0, 1].
"""

from __future__ import annotations

import numpy as np


def _check_pair(labels: np.ndarray, values: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate (n,) labels in {0, 1} and (n,) values; return both as float64."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    v = np.asarray(values, dtype=np.float64).ravel()
    if y.shape != v.shape:
        raise ValueError(f"labels has {y.size} entries but {name} has {v.size}")
    if y.size == 0:
        raise ValueError("labels is empty")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    if not np.isfinite(v).all():
        raise ValueError(f"{name} contain NaN or inf")
    return y, v


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """(n,) -> (n,) 1-based ranks; tied values share the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    # start index of each run of equal values, and each run's mean 1-based rank
    starts = np.flatnonzero(np.r_[True, sorted_vals[1:] != sorted_vals[:-1]])
    ends = np.r_[starts[1:], values.size]
    run_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney U statistic, ties counted as half.

    labels: (n,) 0/1; scores: (n,) real. Raises ValueError when only one class is present.
    """
    y, s = _check_pair(labels, scores, "scores")
    n_pos = float(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs both positive and negative labels")
    rank_sum = _average_ranks(s)[y == 1].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def logloss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy; probs (n,) are clipped to [eps, 1 - eps]."""
    y, p = _check_pair(labels, probs, "probs")
    p = np.clip(p, eps, 1.0 - eps)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, n_bins: int = 10) -> float:
    """ECE over n_bins equal-width bins of [0, 1], each |mean label - mean prob| weighted by size.

    labels, probs: (n,). The last bin includes 1.0.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    y, p = _check_pair(labels, probs, "probs")
    p = np.clip(p, 0.0, 1.0)
    bins = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)  # (n,)
    label_sum = np.bincount(bins, weights=y, minlength=n_bins)
    prob_sum = np.bincount(bins, weights=p, minlength=n_bins)
    # per bin |sum labels - sum probs| = size * |mean label - mean prob|; empty bins add 0
    return float(np.abs(label_sum - prob_sum).sum() / y.size)


def ctr_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """AUC, log loss, ECE (10 bins), mean predicted and observed CTR of (n,) labels and probs."""
    y, p = _check_pair(labels, probs, "probs")
    return {
        "auc": auc(y, p),
        "logloss": logloss(y, p),
        "ece": expected_calibration_error(y, p),
        "mean_predicted_ctr": float(p.mean()),
        "observed_ctr": float(y.mean()),
    }


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


def apply_platt(scores: np.ndarray, a: float, b: float) -> np.ndarray:
    """Calibrated probabilities sigmoid(a * s + b), same shape as scores."""
    return _sigmoid(a * np.asarray(scores, dtype=np.float64) + b)


def fit_platt(
    scores: np.ndarray,
    labels: np.ndarray,
    l2: float = 1e-6,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> tuple[float, float]:
    """Fit p = sigmoid(a * s + b) by Newton's method (IRLS) on the mean log loss.

    scores, labels: (n,). Scores are standardised first and a small L2 penalty (l2 / 2 * |w|^2
    on the standardised coefficients) keeps the fit finite on separable or one-class data;
    a step-halving line search keeps every step descending. Returns (a, b) on the raw scale.
    """
    y, s = _check_pair(labels, scores, "scores")
    mu, sd = float(s.mean()), float(s.std())
    sd = sd if sd > 0 else 1.0
    x = np.stack([(s - mu) / sd, np.ones_like(s)], axis=1)  # (n, 2)

    def objective(w: np.ndarray) -> float:
        z = x @ w
        return float(np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * (w @ w))

    w = np.zeros(2)
    loss = objective(w)
    for _ in range(max_iter):
        p = _sigmoid(x @ w)
        grad = x.T @ (p - y) / y.size + l2 * w
        hess = (x * (p * (1.0 - p))[:, None]).T @ x / y.size + l2 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-10:
            new_loss = objective(w - t * step)
            if new_loss <= loss:
                break
            t *= 0.5
        else:
            break  # no descending step left: converged to machine precision
        w = w - t * step
        improvement, loss = loss - new_loss, new_loss
        if np.abs(t * step).max() < tol or improvement < tol * tol:
            break
    a_std, b_std = float(w[0]), float(w[1])
    return a_std / sd, b_std - a_std * mu / sd


def reliability_bins(
    labels: np.ndarray, probs: np.ndarray, n_bins: int = 10, quantile: bool = False
) -> list[dict[str, float]]:
    """The reliability diagram's points: per non-empty bin, its bounds, size, mean predicted
    probability and observed rate. Bins are expected_calibration_error's equal-width bins of
    [0, 1], or with `quantile` n_bins bins of equal size by predicted probability (at a CTR of
    0.4% every prediction falls into the first equal-width bin)."""
    y, p = _check_pair(labels, probs, "probs")
    p = np.clip(p, 0.0, 1.0)
    if quantile:
        order = np.argsort(p, kind="stable")
        bins = np.empty(p.size, dtype=np.int64)
        bins[order] = np.arange(p.size) * n_bins // p.size
    else:
        bins = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    out = []
    for b in np.unique(bins):
        m = bins == b
        lo, hi = (
            (float(p[m].min()), float(p[m].max())) if quantile else (b / n_bins, (b + 1) / n_bins)
        )
        out.append({
            "lo": lo, "hi": hi, "count": int(m.sum()),
            "mean_predicted": float(p[m].mean()), "observed": float(y[m].mean()),
        })  # fmt: skip
    return out


def auc_interval(
    labels: np.ndarray, scores: np.ndarray, n_boot: int = 200, seed: int = 0
) -> tuple[float, float]:
    """95% bootstrap interval (2.5th, 97.5th percentile over n_boot resamples of the rows) of
    the AUC: how far a small test set lets the AUC be trusted. Resamples with one class only
    are redrawn."""
    y, s = _check_pair(labels, scores, "scores")
    rng = np.random.default_rng(seed)
    values: list[float] = []
    while len(values) < n_boot:
        idx = rng.integers(0, y.size, y.size)
        if 0 < y[idx].sum() < y.size:
            values.append(auc(y[idx], s[idx]))
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)
