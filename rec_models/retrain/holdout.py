"""The logged data's own hold-out: the new model and the current version on the same impressions.

The hold-out is the latest share of the logged impressions (snapshot.py). The new model is
fitted on the dataset plus the earlier logged impressions only; the current version is the
scorer bundle in the model store, scored through its own `user_tower.onnx` and item vectors
(bundle.py), so neither has seen the hold-out. On the impressions
both can score (users and items the current bundle knows):

- auc: click AUC over all hold-out impressions pooled (uncalibrated scores: Platt's monotone
  map leaves it unchanged);
- ndcg@10: each response's impressions re-ranked by the model, clicked = relevant, over the
  responses with at least one click and one impression left unclicked (in the others every
  order scores the same).

Both leave out the hold-out impressions of an item the user had clicked earlier in the log: the
new version has that click in its history, so the service never shows it that item again, and
how it ranks it is no part of what it would do. (Kept in, they made the comparison unfair: the
new model scores its own training clicks high, and a user who already followed an ad or opened a
film rarely clicks it again, so a retrained version looked worse the more it had learned.)
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd

from rec_models.config import TrainConfig
from rec_models.data.logged import with_logged
from rec_models.evaluation import metrics as M
from rec_models.fitting import fit_all, pair_scores
from rec_models.pipeline import Context, Embedder, build_context, torch_embedder
from rec_models.retrain.bundle import OfflineBundle
from rec_models.versions import ScorerVersion


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
    cfg: TrainConfig,
    base: Context,
    fit_rows: pd.DataFrame,
    holdout: pd.DataFrame,
    alpha: float,
    encoder: Embedder,
) -> np.ndarray:
    """(n,) the new hybrid's scores of the hold-out rows, fitted without them (texts embedded
    by `encoder`'s encode function: one PyTorch encoder per retrain)."""
    ctx = build_context(cfg, with_logged(base.dataset, fit_rows))
    emb = Embedder(ctx, encoder.encode, encoder.count_tokens, encoder.max_tokens)
    hybrid = fit_all(cfg, emb.train_data(ctx.dataset.interactions), alpha)["hybrid"]
    users, items = ctx.index(holdout)
    return pair_scores(hybrid, users, items)


def compare_on_holdout(
    cfg: TrainConfig,
    base: Context,
    fit_rows: pd.DataFrame,
    holdout: pd.DataFrame,
    request_ids: np.ndarray,
    alpha: float,
    current: ScorerVersion | None,
) -> dict[str, Any]:
    """{"new": metrics or None, "current": metrics or None, "note": why one is missing,
    "calibration": the served Platt map from the hold-out (holdout_calibration)}."""
    if len(holdout) == 0:
        note = "the hold-out is empty (one response?)"
        return {"new": None, "current": None, "note": note, "calibration": None}
    encoder = torch_embedder(base)  # the model and its embedding cache, loaded once
    new = new_model_scores(cfg, base, fit_rows, holdout, alpha, encoder)
    clicked = holdout["click"].to_numpy(bool)
    items = holdout["item_id"].to_numpy(np.int64)
    users = holdout["user_id"].to_numpy(np.int64)
    out: dict[str, Any] = {"new": None, "current": None, "note": ""}
    keep = ~clicked_before(fit_rows, users, items)
    out["left_out_clicked_before"] = int((~keep).sum())
    if current is not None and keep.any():
        known, cur_scores = OfflineBundle(current.path).pair_scores(
            users[keep], items[keep], encoder.encode
        )
        if known.any():
            keep[np.flatnonzero(keep)[~known]] = False
            out["current"] = holdout_metrics(
                request_ids[keep], items[keep], clicked[keep], cur_scores[known], cfg.k
            )
        else:
            out["note"] = f"{current.tag} knows none of the hold-out's users and items"
    if not keep.any():
        out["note"] = out["note"] or "every hold-out impression is of an item clicked before"
        return out | {"calibration": None}
    out["new"] = holdout_metrics(request_ids[keep], items[keep], clicked[keep], new[keep], cfg.k)
    out["calibration"] = holdout_calibration(
        new[keep], clicked[keep], cfg.retrain.min_holdout_clicks
    )
    return out


def clicked_before(fit_rows: pd.DataFrame, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """(n,) bool: the (user, item) pairs clicked in `fit_rows` (the log before the hold-out)."""
    earlier = fit_rows[fit_rows["click"].to_numpy(bool)]
    done = pd.MultiIndex.from_arrays([earlier["user_id"].to_numpy(), earlier["item_id"].to_numpy()])
    return pd.MultiIndex.from_arrays([users, items]).isin(done)


def holdout_calibration(
    scores: np.ndarray, clicked: np.ndarray, min_clicks: int
) -> dict[str, Any] | None:
    """Platt (a, b) of the new model's scores on the hold-out impressions (the model fitted
    without them): the served version's click probabilities, calibrated on logged impressions
    shown and not clicked. None below `min_clicks` clicks or without a non-click."""
    if clicked.sum() < min_clicks or clicked.all():
        return None
    a, b = M.fit_platt(scores, clicked.astype(np.float64))
    probs = M.apply_platt(scores, a, b)
    return {
        "a": a,
        "b": b,
        "fitted_on": f"{len(scores)} hold-out impressions ({int(clicked.sum())} clicked)",
        "mean_predicted_ctr": float(probs.mean()),
        "observed_ctr": float(clicked.mean()),
    }
