"""Matrix factorisation R ~ P Q^T for implicit feedback: r_ui = p_u . q_i.

Default loss: weighted squared loss over the whole matrix (implicit ALS, Hu, Koren & Volinsky 2008):
observed cells have confidence 1 + alpha, unobserved cells weight 1, ridge `reg`. Solved in closed
form, alternating P and Q, so it is deterministic and takes seconds. `loss="bpr"` gives classic BPR
(pairwise, SGD in torch) for comparison. Items never seen in training keep zero factors: MF cannot
score cold items, honestly.

On an impression log the fit sees more than positives: a positive's confidence is 1 + alpha * w
(w = its weight, a conversion above a click), and a shown-but-not-clicked cell gets preference 0
with confidence 1 + shown_alpha, above the unobserved cells' 1 (BPR draws part of its negatives
from the shown ones instead).
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np

from rec_models.config import MFConfig
from rec_models.models.base import Recommender, TrainData, check_finite


def _als_half(
    Y: np.ndarray,
    rows: list[np.ndarray],
    alpha: float,
    reg: float,
    cells: list[tuple[np.ndarray, np.ndarray]] | None = None,
    unobserved: float = 1.0,
) -> np.ndarray:
    """Solve every row x of X given Y: (Y^T Y + alpha Y_o^T Y_o + reg I) x = (1 + alpha) Y_o^T 1.
    With `cells`, row a's observed cells have extra confidence conf (n_obs,) and preference
    pref (n_obs,): (Y^T Y + Y_o^T diag(conf) Y_o + reg I) x = Y_o^T ((1 + conf) * pref).
    `unobserved` = w0 weighs the unobserved cells (Y^T Y -> w0 Y^T Y) while an observed cell
    keeps its total confidence 1 + alpha (alpha -> alpha + 1 - w0)."""
    f = Y.shape[1]
    gram = Y.T @ Y + reg * np.eye(f)  # (f, f), shared by all rows
    extra, shift = alpha, 0.0  # an observed cell's confidence above the unobserved weight
    if unobserved != 1.0:
        gram = unobserved * (Y.T @ Y) + reg * np.eye(f)
        extra, shift = alpha + 1.0 - unobserved, 1.0 - unobserved
    X = np.zeros((len(rows), f))
    for a, obs in enumerate(rows):
        if len(obs):
            Yo = Y[obs]  # (n_obs, f)
            if cells is None:
                X[a] = np.linalg.solve(gram + extra * Yo.T @ Yo, (1 + alpha) * Yo.sum(0))
            else:
                conf, pref = cells[a]
                weight = conf + shift if shift else conf
                X[a] = np.linalg.solve(gram + (Yo.T * weight) @ Yo, Yo.T @ ((1 + conf) * pref))
    return X


def weighted_cells(data: TrainData, alpha: float, shown_alpha: float) -> tuple[list, list]:
    """Per user and per item: (observed indices, (extra confidence, preference)) of every cell:
    positives (alpha * their largest weight, 1) and shown-only cells (shown_alpha, 0)."""
    w = np.ones(len(data.users)) if data.weights is None else data.weights.astype(np.float64)
    code = data.users.astype(np.int64) * data.n_items + data.items
    order = np.lexsort((-w, code))
    first = np.r_[True, code[order][1:] != code[order][:-1]]
    pos_code, pos_w = code[order][first], w[order][first]  # each cell's largest weight
    shown = np.zeros(0, np.int64)
    if data.shown_users is not None:
        shown = np.unique(data.shown_users.astype(np.int64) * data.n_items + data.shown_items)
        shown = shown[~np.isin(shown, pos_code)]  # clicked once and shown again: a positive
    codes = np.r_[pos_code, shown]
    conf = np.r_[alpha * pos_w, np.full(len(shown), shown_alpha)]
    pref = np.r_[np.ones(len(pos_code)), np.zeros(len(shown))]
    users, items = codes // data.n_items, codes % data.n_items

    def grouped(key: np.ndarray, other: np.ndarray, n: int) -> list:
        o = np.argsort(key, kind="stable")
        b = np.searchsorted(key[o], np.arange(n + 1))
        # Gather once: `other[o][s:e]` inside the loop would copy every array per group, and
        # each slice, a view, would keep its whole copy alive (8 GB on MovieLens + a log).
        other_o, conf_o, pref_o = other[o], conf[o], pref[o]
        return [(other_o[s:e], (conf_o[s:e], pref_o[s:e])) for s, e in pairwise(b)]

    return grouped(users, items, data.n_users), grouped(items, users, data.n_items)


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
        self.Q[~known] = 0.0  # no positives, no factors (an ad only ever shown has no signal)
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
        user_cells = item_cells = None
        if data.weights is not None or data.shown_users is not None:
            by_user, by_item = weighted_cells(data, cfg.alpha, cfg.shown_alpha)
            user_rows, user_cells = [r for r, _ in by_user], [c for _, c in by_user]
            item_rows, item_cells = [r for r, _ in by_item], [c for _, c in by_item]
        P = rng.normal(0, 0.01, (data.n_users, cfg.factors))
        Q = rng.normal(0, 0.01, (data.n_items, cfg.factors))
        # Thousands of small (f, f) solves: one BLAS thread each is faster than two fighting.
        with threadpool_limits(limits=1, user_api="blas"):
            for _ in tqdm(range(cfg.epochs), desc="mf (ials)", disable=not progress, unit="iter"):
                P = _als_half(Q, user_rows, cfg.alpha, cfg.reg, user_cells, cfg.unobserved)
                Q = _als_half(P, item_rows, cfg.alpha, cfg.reg, item_cells, cfg.unobserved)
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
        weights = None if data.weights is None else torch.as_tensor(data.weights)
        indptr, shown = (torch.as_tensor(a) for a in data.shown_by_user())
        n_shown = indptr[1:] - indptr[:-1]  # (n_users,)
        for _ in tqdm(range(cfg.bpr_epochs), desc="mf (bpr)", disable=not progress, unit="epoch"):
            perm = torch.randperm(len(users), generator=gen)
            for s in range(0, len(users), cfg.batch_size):
                b = perm[s : s + cfg.batch_size]
                u, i = users[b], items[b]
                j = torch.randint(0, data.n_items, (len(b),), generator=gen)
                if len(shown):  # part of the negatives from what the user was shown
                    draw = torch.rand(len(b), generator=gen)
                    pick = (n_shown[u] > 0) & (draw < cfg.bpr_shown_share)
                    offset = (torch.rand(len(b), generator=gen) * n_shown[u]).long()
                    j = torch.where(pick, shown[(indptr[u] + offset).clamp(max=len(shown) - 1)], j)
                diff = (P[u] * (Q[i] - Q[j])).sum(1)
                reg = P[u].pow(2).sum(1) + Q[i].pow(2).sum(1) + Q[j].pow(2).sum(1)
                fit = -torch.nn.functional.logsigmoid(diff)
                fit = fit.mean() if weights is None else (fit * weights[b]).sum() / weights[b].sum()
                loss = fit + cfg.bpr_reg * reg.mean()
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
