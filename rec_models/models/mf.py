"""Matrix factorisation R ~ P Q^T for implicit feedback: r_ui = p_u . q_i.

Default loss: weighted squared loss over the whole matrix (implicit ALS, Hu, Koren & Volinsky 2008):
observed cells have confidence 1 + alpha, unobserved cells weight 1, ridge `reg`. Solved in closed
form, alternating P and Q, so it is deterministic and takes seconds. `loss="bpr"` gives classic BPR
(pairwise, SGD in torch) for comparison. Items never seen in training keep zero factors: MF cannot
score cold items, honestly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rec_models.config import MFConfig
from rec_models.models.base import Recommender, TrainData, check_finite


def _als_half(Y: np.ndarray, rows: list[np.ndarray], alpha: float, reg: float) -> np.ndarray:
    """Solve every row x of X given Y: (Y^T Y + alpha Y_o^T Y_o + reg I) x = (1 + alpha) Y_o^T 1."""
    f = Y.shape[1]
    gram = Y.T @ Y + reg * np.eye(f)  # (f, f), shared by all rows
    X = np.zeros((len(rows), f))
    for a, obs in enumerate(rows):
        if len(obs):
            Yo = Y[obs]  # (n_obs, f)
            X[a] = np.linalg.solve(gram + alpha * Yo.T @ Yo, (1 + alpha) * Yo.sum(0))
    return X


class MFRecommender(Recommender):
    name = "mf"

    def __init__(self, cfg: MFConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or MFConfig()
        if self.cfg.loss not in ("ials", "bpr"):
            raise ValueError(f"mf.loss '{self.cfg.loss}': choose ials or bpr")
        self.P = np.zeros((0, self.cfg.factors), dtype=np.float32)  # (n_users, f)
        self.Q = np.zeros((0, self.cfg.factors), dtype=np.float32)  # (n_items, f)

    def fit(self, data: TrainData, progress: bool = True) -> MFRecommender:
        self.seen_ = data.seen()
        if self.cfg.loss == "ials":
            self._fit_ials(data, progress)
        else:
            self._fit_bpr(data, progress)
        known = data.item_counts() > 0
        self.Q[~known] = 0.0  # no interactions, no factors
        check_finite("mf", self.P, self.Q)
        return self

    def _fit_ials(self, data: TrainData, progress: bool) -> None:
        from threadpoolctl import threadpool_limits
        from tqdm.auto import tqdm

        cfg = self.cfg
        rng = np.random.default_rng(cfg.seed)
        user_rows = [np.unique(s) for s in self.seen_]
        order = np.argsort(data.items, kind="stable")
        bounds = np.searchsorted(data.items[order], np.arange(data.n_items + 1))
        item_rows = [
            np.unique(data.users[order[bounds[i] : bounds[i + 1]]]) for i in range(data.n_items)
        ]
        P = rng.normal(0, 0.01, (data.n_users, cfg.factors))
        Q = rng.normal(0, 0.01, (data.n_items, cfg.factors))
        # Thousands of small (f, f) solves: one BLAS thread each is faster than two fighting.
        with threadpool_limits(limits=1, user_api="blas"):
            for _ in tqdm(range(cfg.epochs), desc="mf (ials)", disable=not progress, unit="iter"):
                P = _als_half(Q, user_rows, cfg.alpha, cfg.reg)
                Q = _als_half(P, item_rows, cfg.alpha, cfg.reg)
        self.P, self.Q = P.astype(np.float32), Q.astype(np.float32)

    def _fit_bpr(self, data: TrainData, progress: bool) -> None:
        import torch
        from tqdm.auto import tqdm

        cfg = self.cfg
        gen = torch.Generator().manual_seed(cfg.seed)
        P = torch.nn.Parameter(torch.randn(data.n_users, cfg.factors, generator=gen) * 0.1)
        Q = torch.nn.Parameter(torch.randn(data.n_items, cfg.factors, generator=gen) * 0.1)
        opt = torch.optim.Adam([P, Q], lr=cfg.lr)
        users = torch.as_tensor(np.asarray(data.users), dtype=torch.long)
        items = torch.as_tensor(np.asarray(data.items), dtype=torch.long)
        for _ in tqdm(range(cfg.bpr_epochs), desc="mf (bpr)", disable=not progress, unit="epoch"):
            perm = torch.randperm(len(users), generator=gen)
            for s in range(0, len(users), cfg.batch_size):
                b = perm[s : s + cfg.batch_size]
                u, i = users[b], items[b]
                j = torch.randint(0, data.n_items, (len(b),), generator=gen)
                diff = (P[u] * (Q[i] - Q[j])).sum(1)
                reg = P[u].pow(2).sum(1) + Q[i].pow(2).sum(1) + Q[j].pow(2).sum(1)
                loss = -torch.nn.functional.logsigmoid(diff).mean() + cfg.bpr_reg * reg.mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        self.P = P.detach().numpy().astype(np.float32)
        self.Q = Q.detach().numpy().astype(np.float32)

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.P[users] @ self.Q.T  # (U, n_items)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"factors": self.cfg.factors, "loss": self.cfg.loss}, {"P": self.P, "Q": self.Q}

    def load_state(self, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.cfg = MFConfig(factors=config["factors"], loss=config["loss"])
        self.P, self.Q = arrays["P"], arrays["Q"]
