"""Hybrid: r_ui = alpha * z_text(u, i) + (1 - alpha) * z_mf(u, i).

Both terms are z-scored per user over the whole catalog, so they share a scale. The z-scores fold
into one inner product: with item vectors centred on the catalog mean and the user vector divided by
its per-user standard deviation sqrt(u^T Cov u), z(u, i) = (u / sigma(u)) . (v_i - mean(v)). Hence
score(u, i) = user_vector(u) . item_vector(i) with
    user_vector = [alpha * u / sigma_V(u), (1 - alpha) * p_u / sigma_Q(p_u)]
    item_vector = [v_i - mean(V), q_i - mean(Q)]
which one exact or ANN index serves, and which does not depend on the candidates asked for.
alpha is chosen on a validation split carved from the training data, either one for everyone or
one per bucket of history length (`edges`: a user with n history items, counted as the attention
model sees them, i.e. at most max_history, gets alpha[number of edges <= n]), so short histories
can lean on the text and long ones on MF; the bucket is a function of the user tower's input, so
the blend stays inside the exported user tower.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rec_models.models.attention import AttentionRecommender
from rec_models.models.base import Recommender, TrainData
from rec_models.models.mf import MFRecommender

EPS = 1e-12


def per_user_scale(users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """(U, f), (N, f) -> (U,) standard deviation of users @ items.T over the N items."""
    cov = np.cov(items, rowvar=False, bias=True)  # (f, f)
    return np.sqrt(np.einsum("uf,fg,ug->u", users, cov, users) + EPS)


def hybrid_vectors(
    alpha: float | np.ndarray,
    text_users: np.ndarray,
    text_items: np.ndarray,
    mf_users: np.ndarray,
    mf_items: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(user_vectors (U, D), item_vectors (N, D)) whose inner product is the hybrid z-score;
    alpha: one weight or (U,) per user."""
    alpha = np.asarray(alpha, dtype=np.float64)
    alpha = alpha[:, None] if alpha.ndim else alpha
    u_text = alpha * text_users / per_user_scale(text_users, text_items)[:, None]
    u_mf = (1 - alpha) * mf_users / per_user_scale(mf_users, mf_items)[:, None]
    items = np.concatenate([text_items - text_items.mean(0), mf_items - mf_items.mean(0)], axis=1)
    return np.concatenate([u_text, u_mf], axis=1).astype(np.float32), items.astype(np.float32)


def bucket_of(n: np.ndarray, edges: list[int]) -> np.ndarray:
    """(U,) history lengths -> (U,) bucket index = the number of edges <= n."""
    return np.searchsorted(np.asarray(edges), n, side="right")


class HybridRecommender(Recommender):
    name = "hybrid"

    def __init__(
        self,
        mf: MFRecommender,
        attention: AttentionRecommender,
        alpha: float | list[float] = 0.5,
        edges: list[int] | None = None,
    ) -> None:
        super().__init__()
        self.mf, self.attention, self.alpha = mf, attention, alpha
        self.edges = list(edges or [])  # history-length bucket edges; alpha has len(edges) + 1
        self.seen_ = mf.seen_

    def user_alpha(self) -> float | np.ndarray:
        """alpha, or (U,) each user's alpha by history-length bucket."""
        if not self.edges:
            return float(self.alpha)  # type: ignore[arg-type]
        if len(self.alpha) != len(self.edges) + 1:  # type: ignore[arg-type]
            raise ValueError(f"hybrid: {len(self.edges)} edges need {len(self.edges) + 1} alphas")
        n = (self.attention.history >= 0).sum(1)
        return np.asarray(self.alpha)[bucket_of(n, self.edges)]

    def fit(self, data: TrainData) -> HybridRecommender:
        """Parts are fitted separately (train.py); fitting the hybrid fits both with defaults."""
        self.mf.fit(data)
        self.attention.fit(data)
        self.seen_ = data.seen()
        return self

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        return hybrid_vectors(
            self.user_alpha(),
            self.attention.user_vectors(),
            self.attention.item_vectors(),
            self.mf.P,
            self.mf.Q,
        )

    def score(self, users: np.ndarray) -> np.ndarray:
        u, v = self.vectors()
        return u[users] @ v.T  # (U, n_items)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        mf_cfg, mf_arr = self.mf.state()
        att_cfg, att_arr = self.attention.state()
        arrays = {f"mf.{k}": v for k, v in mf_arr.items()} | {
            f"att.{k}": v for k, v in att_arr.items()
        }
        cfg = {"alpha": self.alpha, "edges": self.edges, "mf": mf_cfg, "attention": att_cfg}
        return cfg, arrays

    def load_state(self, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.alpha, self.edges = config["alpha"], list(config.get("edges", []))
        self.mf = MFRecommender.__new__(MFRecommender)
        self.attention = AttentionRecommender.__new__(AttentionRecommender)
        for part, prefix, cfg in ((self.mf, "mf.", "mf"), (self.attention, "att.", "attention")):
            Recommender.__init__(part)
            part.seen_ = self.seen_
            part.load_state(
                config[cfg],
                {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)},
            )
