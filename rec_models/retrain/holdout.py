"""The logged data's own hold-out: the new model and the current version on the same impressions.

The hold-out is the latest share of the logged impressions (snapshot.py). The new model is
fitted on the dataset plus the earlier logged impressions only; the current version is the
scorer bundle in the model store, scored through its own `user_tower.onnx` and item vectors
(the README's scorer-bundle contract), so neither has seen the hold-out. On the impressions
both can score (users and items the current bundle knows):

- auc: click AUC over all hold-out impressions pooled (uncalibrated scores: Platt's monotone
  map leaves it unchanged);
- ndcg@10: each response's impressions re-ranked by the model, clicked = relevant, over the
  responses with at least one click and one impression left unclicked (in the others every
  order scores the same).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from rec_models.config import TrainConfig
from rec_models.data.logged import with_logged
from rec_models.evaluation import metrics as M
from rec_models.fitting import fit_all, pair_scores
from rec_models.pipeline import Context, build_context, torch_embedder
from rec_models.versions import ScorerVersion

Encode = Callable[[list[str]], np.ndarray]


def response_ndcg(
    request_ids: np.ndarray, items: np.ndarray, clicked: np.ndarray, scores: np.ndarray, k: int
) -> tuple[float, int]:
    """(NDCG@k of re-ranking each response's items by `scores`, responses counted)."""
    order = np.lexsort((-scores, request_ids))
    req, item, click = request_ids[order], items[order], clicked[order]
    bounds = np.flatnonzero(np.r_[True, req[1:] != req[:-1], True])
    tops, relevant = [], []
    for s, e in itertools.pairwise(bounds):
        c = click[s:e]
        if c.any() and not c.all():
            tops.append(np.pad(item[s:e][:k], (0, max(0, k - (e - s))), constant_values=-1))
            relevant.append(item[s:e][c])
    if not tops:
        return float("nan"), 0
    return M.ranking_metrics(np.stack(tops), relevant, k)[f"ndcg@{k}"], len(tops)


def holdout_metrics(
    request_ids: np.ndarray, items: np.ndarray, clicked: np.ndarray, scores: np.ndarray, k: int
) -> dict[str, Any]:
    both = clicked.min() != clicked.max()
    ndcg, responses = response_ndcg(request_ids, items, clicked, scores, k)
    return {
        "auc": M.auc(clicked.astype(np.float64), scores) if both else float("nan"),
        f"ndcg@{k}": ndcg,
        "impressions": len(scores),
        "clicks": int(clicked.sum()),
        "responses_ranked": responses,
    }


def new_model_scores(
    cfg: TrainConfig, base: Context, fit_rows: pd.DataFrame, holdout: pd.DataFrame, alpha: float
) -> np.ndarray:
    """(n,) the new hybrid's scores of the hold-out rows, fitted without them."""
    ctx = build_context(cfg, with_logged(base.dataset, fit_rows))
    emb = torch_embedder(ctx)
    hybrid = fit_all(cfg, emb.train_data(ctx.dataset.interactions), alpha)["hybrid"]
    users, items = ctx.index(holdout)
    return pair_scores(hybrid, users, items)


def bundle_scores(
    version: ScorerVersion, user_ids: np.ndarray, item_ids: np.ndarray, encode: Encode
) -> tuple[np.ndarray, np.ndarray]:
    """(known mask, scores of the known rows) of the store version's scorer bundle: user vector
    from user_tower.onnx (profile text embedded by `encode`, clicked history, MF factors) dotted
    with the bundle's item vector."""
    import onnxruntime as ort

    folder = version.path
    with np.load(folder / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    config = json.loads((folder / "config.json").read_text())
    catalog = json.loads((folder / "catalog.json").read_text())
    u_pos = {int(u): j for j, u in enumerate(arrays["user_ids"])}
    i_pos = {int(i): j for j, i in enumerate(arrays["item_ids"])}
    known = np.array(
        [int(u) in u_pos and int(i) in i_pos for u, i in zip(user_ids, item_ids, strict=True)],
        bool,
    )
    users = sorted({u_pos[int(u)] for u in user_ids[known]})
    if not users:
        return known, np.zeros(0)
    texts = [catalog["users"][u]["profile_text"] for u in users]
    profile = np.asarray(encode(texts), np.float32)  # (B, d)
    hist_len = int(config["max_history"])
    item_emb = arrays["item_emb"]
    ptr, hist_ids = arrays["history_indptr"], arrays["history_items"]
    history = np.zeros((len(users), hist_len, item_emb.shape[1]), np.float32)  # (B, L, d)
    mask = np.zeros((len(users), hist_len), np.float32)  # (B, L), left-padded
    for b, u in enumerate(users):
        rows = [i_pos[int(i)] for i in hist_ids[ptr[u] : ptr[u + 1]]][-hist_len:]
        if rows:
            history[b, hist_len - len(rows) :] = item_emb[rows]
            mask[b, hist_len - len(rows) :] = 1.0
    session = ort.InferenceSession(str(folder / "user_tower.onnx"))
    feeds = {
        "profile_emb": profile,
        "history_emb": history,
        "history_mask": mask,
        "user_factors": arrays["user_factors"][users].astype(np.float32),
    }
    vectors = session.run(["user_vector"], feeds)[0]  # (B, D)
    row_of = {u: b for b, u in enumerate(users)}
    b_rows = np.array([row_of[u_pos[int(u)]] for u in user_ids[known]], np.int64)
    i_rows = np.array([i_pos[int(i)] for i in item_ids[known]], np.int64)
    scores = np.einsum("nd,nd->n", vectors[b_rows], arrays["item_vectors"][i_rows])
    return known, scores.astype(np.float64)


def compare_on_holdout(
    cfg: TrainConfig,
    base: Context,
    fit_rows: pd.DataFrame,
    holdout: pd.DataFrame,
    request_ids: np.ndarray,
    alpha: float,
    current: ScorerVersion | None,
) -> dict[str, Any]:
    """{"new": metrics or None, "current": metrics or None, "note": why one is missing}."""
    if len(holdout) == 0:
        return {"new": None, "current": None, "note": "the hold-out is empty (one response?)"}
    new = new_model_scores(cfg, base, fit_rows, holdout, alpha)
    clicked = holdout["click"].to_numpy(bool)
    items = holdout["item_id"].to_numpy(np.int64)
    out: dict[str, Any] = {"new": None, "current": None, "note": ""}
    keep = np.ones(len(holdout), bool)
    if current is not None:
        encode = torch_embedder(base).encode
        users = holdout["user_id"].to_numpy(np.int64)
        keep, cur_scores = bundle_scores(current, users, items, encode)
        if keep.any():
            out["current"] = holdout_metrics(
                request_ids[keep], items[keep], clicked[keep], cur_scores, cfg.k
            )
        else:
            out["note"] = f"{current.tag} knows none of the hold-out's users and items"
    out["new"] = holdout_metrics(request_ids[keep], items[keep], clicked[keep], new[keep], cfg.k)
    return out
