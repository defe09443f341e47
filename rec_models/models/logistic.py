"""Logistic regression on hashed sparse features: the CTR baseline of an impression log.

Features of one impression (user u, item i), each a hashed indicator with one learned weight:
user id, item id, the words of the user's profile text (demographics, free text, liked titles),
the words of the item's text (title, genres, description), and the cross that lets a linear model
personalise: user id x item word (a user word x item word cross was measured 7x slower to fit for
a model that already has this one). These are the inputs the recommenders read (identities and the
texts the encoder embeds), so the comparison is on the same features. Fitted by Newton-CG (scipy,
sparse design matrix, Hessian-vector products) on the mean log loss plus l2 * |w|^2 / 2; the l2
strength is chosen on a validation set.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

BUCKETS = 1 << 18
_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    return sorted(set(_WORD.findall(text.lower())))


def _h(name: str) -> int:
    return zlib.crc32(name.encode()) % BUCKETS


class HashedFeatures:
    """Feature indices per impression from per-user and per-item words."""

    def __init__(self, user_texts: Sequence[str], item_texts: Sequence[str]) -> None:
        self.user_words = [words(t) for t in user_texts]
        self.item_words = [words(t) for t in item_texts]

    def row(self, u: int, i: int) -> list[int]:
        uw, iw = self.user_words[u], self.item_words[i]
        feats = [f"u={u}", f"i={i}", *(f"uw={w}" for w in uw), *(f"iw={w}" for w in iw)]
        feats += [f"u={u}&iw={w}" for w in iw]
        return [_h(f) for f in feats]

    def matrix(self, users: np.ndarray, items: np.ndarray) -> Any:
        """(n, BUCKETS) sparse 0/1 CSR matrix of the impressions' hashed features."""
        from scipy.sparse import csr_matrix

        cache: dict[tuple[int, int], list[int]] = {}  # an impression shown twice: one row build
        rows = [cache.setdefault((u, i), self.row(u, i)) for u, i in zip(
            users.tolist(), items.tolist(), strict=True)]  # fmt: skip
        indptr = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
        cols = np.concatenate(rows).astype(np.int64)
        X = csr_matrix((np.ones(len(cols)), cols, indptr), shape=(len(rows), BUCKETS))
        X.sum_duplicates()
        X.data[:] = 1.0  # hash collisions inside a row count once
        return X


class LogisticCTR:
    """p(click | u, i) = sigmoid(b + sum of the weights of the impression's hashed features)."""

    def __init__(self, features: HashedFeatures, l2: float = 1e-4, max_iter: int = 50) -> None:
        self.features, self.l2, self.max_iter = features, l2, max_iter
        self.weights = np.zeros(BUCKETS)
        self.bias = 0.0

    def fit(
        self, users: np.ndarray, items: np.ndarray, labels: np.ndarray, matrix: Any = None
    ) -> LogisticCTR:
        """Fit on impressions (users, items) with 0/1 labels by Newton-CG; `matrix` is their
        precomputed features.matrix(users, items)."""
        from scipy.optimize import minimize

        X = matrix if matrix is not None else self.features.matrix(users, items)
        used = np.unique(X.indices)
        Xu = X[:, used].tocsr()  # only the features that occur: a small dense weight vector
        XuT = Xu.T.tocsr()
        y = np.asarray(labels, dtype=np.float64)
        n = len(y)

        def parts(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            z = Xu @ theta[:-1] + theta[-1]
            return z, np.exp(-np.logaddexp(0.0, -z))  # logits, probabilities

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w = theta[:-1]
            z, p = parts(theta)
            loss = np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * self.l2 * (w @ w)
            r = (p - y) / n
            return float(loss), np.r_[XuT @ r + self.l2 * w, r.sum()]

        def hessp(theta: np.ndarray, v: np.ndarray) -> np.ndarray:
            p = parts(theta)[1]
            d = p * (1.0 - p) / n * (Xu @ v[:-1] + v[-1])
            return np.r_[XuT @ d + self.l2 * v[:-1], d.sum()]

        theta = np.zeros(len(used) + 1)
        res = minimize(objective, theta, jac=True, hessp=hessp, method="Newton-CG",
                       options={"maxiter": self.max_iter})  # fmt: skip
        self.weights = np.zeros(BUCKETS)
        self.weights[used] = res.x[:-1]
        self.bias = float(res.x[-1])
        return self

    def predict(self, users: np.ndarray, items: np.ndarray, matrix: Any = None) -> np.ndarray:
        X = matrix if matrix is not None else self.features.matrix(users, items)
        return np.exp(-np.logaddexp(0.0, -(X @ self.weights + self.bias)))


def fit_logistic(
    features: HashedFeatures,
    train: tuple[np.ndarray, np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray, np.ndarray],
    grid: Sequence[float] = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1),
) -> tuple[LogisticCTR, dict[str, float]]:
    """The model whose l2 (from grid) has the lowest validation log loss, and the curve."""
    from rec_models.evaluation.ctr import logloss

    curve: dict[str, float] = {}
    best: LogisticCTR | None = None
    train_x, val_x = features.matrix(train[0], train[1]), features.matrix(val[0], val[1])
    for l2 in grid:
        model = LogisticCTR(features, l2).fit(*train, matrix=train_x)
        curve[str(l2)] = logloss(val[2], model.predict(val[0], val[1], val_x))
        if best is None or curve[str(l2)] < curve[str(best.l2)]:
            best = model
    assert best is not None
    return best, curve
