"""The CTR view of an impression log: click prediction on held-out impressions, in time order.

Split (rec_models.data.splits.time_split): the latest 20% of impressions are the test; of the
rest, the latest 20% are validation and the earlier ones train the models. Every model is fitted
on the training impressions only, its Platt calibration on the validation impressions (real
shown ads, clicked or not: no sampled unseen items), and measured on the test impressions:
- ctr: AUC (with a 95% bootstrap interval), log loss, ECE, mean predicted vs observed CTR, and
  the reliability diagram's bins; for mf, attention, hybrid, popularity (per-ad click counts)
  and the logistic-regression baseline on the same features (rec_models/models/logistic.py);
- cvr: the same among the test clicks, label = converted (only where both splits have
  conversions);
- impression_ranking: per user, the test impressions re-ranked by the model, clicked = relevant
  (ranking among what the user could be shown, not the catalog).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from rec_models.config import TrainConfig
from rec_models.data.splits import time_split
from rec_models.evaluation import metrics as M
from rec_models.fitting import fit_all, pair_scores, ranked_impressions
from rec_models.models.base import Recommender
from rec_models.models.logistic import HashedFeatures, fit_logistic
from rec_models.pipeline import Context, Embedder

CTR_MODELS = ("popularity", "mf", "attention", "hybrid")
NOTE = (
    "time-ordered: models fit on the earliest 64% of impressions, Platt calibration on the "
    "next 16%, measured on the latest 20% (held-out impressions, clicked or not)"
)


def _labelled(ctx: Context, df: pd.DataFrame, column: str) -> tuple[np.ndarray, ...]:
    users, items = ctx.index(df)
    return users, items, df[column].to_numpy(bool).astype(np.float64)


def _outcome_metrics(
    models: dict[str, Recommender], val: tuple, test: tuple, seed: int
) -> tuple[dict, dict, dict]:
    """(metrics, reliability bins, Platt (a, b)) per model: calibrated on val, scored on test."""
    metrics, bins, calib = {}, {}, {}
    for name, model in models.items():
        calib[name] = M.fit_platt(pair_scores(model, val[0], val[1]), val[2])
        scores = pair_scores(model, test[0], test[1])
        probs = M.apply_platt(scores, *calib[name])
        metrics[name] = M.ctr_metrics(test[2], probs)
        # on the calibrated probabilities, like the AUC itself (a fitted slope < 0 flips it)
        metrics[name]["auc_ci95"] = list(M.auc_interval(test[2], probs, seed=seed))
        bins[name] = M.reliability_bins(test[2], probs, quantile=True)
    return metrics, bins, calib


def _baseline(ctx: Context, emb: Embedder, fit: pd.DataFrame, val: tuple, test: tuple, seed: int):
    """The logistic regression's CTR metrics and bins on test (l2 chosen on val)."""
    pos = fit[fit["click"]]
    users, items = ctx.index(pos)
    profile = emb.profile_texts(
        users, items, pos["rating"].to_numpy(), pos["timestamp"].to_numpy(np.int64)
    )
    features = HashedFeatures(profile, ctx.item_texts)
    model, curve = fit_logistic(features, _labelled(ctx, fit, "click"), val)
    probs = model.predict(test[0], test[1])
    out = M.ctr_metrics(test[2], probs)
    out["auc_ci95"] = list(M.auc_interval(test[2], probs, seed=seed))
    out["l2"], out["val_logloss_curve"] = model.l2, curve
    return out, M.reliability_bins(test[2], probs, quantile=True)


def evaluate_impressions(
    cfg: TrainConfig, ctx: Context, emb: Embedder, interactions: pd.DataFrame, alpha: float
) -> tuple[dict[str, Any], dict[str, tuple[float, float]]]:
    """The report's "ctr", "cvr", "impression_ranking", "reliability" and "skipped" entries,
    and the CTR calibration per model (what the served model uses)."""
    train, test_df = time_split(interactions, 0.2)
    fit, val_df = time_split(train, 0.2)
    data = emb.train_data(fit)
    models = fit_all(cfg, data, alpha)
    chosen = {name: models[name] for name in CTR_MODELS}
    val, test = _labelled(ctx, val_df, "click"), _labelled(ctx, test_df, "click")
    seed = cfg.data.seed
    out: dict[str, Any] = {"skipped": {}}
    for name, labels in (("validation", val[2]), ("test", test[2])):
        if labels.min() == labels.max():
            out["skipped"]["ctr"] = f"the {name} impressions are all clicked or all not clicked"
            return out, {}
    out["ctr"], out["reliability"], calib = _outcome_metrics(chosen, val, test, seed)
    lr, lr_bins = _baseline(ctx, emb, fit, val, test, seed)
    out["ctr"]["logistic_regression"], out["reliability"]["logistic_regression"] = lr, lr_bins
    val_c, test_c = val_df[val_df["click"]], test_df[test_df["click"]]
    n_conv = (int(val_c["conversion"].sum()), int(test_c["conversion"].sum()))
    if min(n_conv) == 0 or n_conv[1] == len(test_c) or n_conv[0] == len(val_c):
        out["skipped"]["cvr"] = (
            f"needs converted and unconverted clicks in validation and test "
            f"(conversions: {n_conv[0]} of {len(val_c)} validation, "
            f"{n_conv[1]} of {len(test_c)} test clicks)"
        )
    else:
        val_cv, test_cv = _labelled(ctx, val_c, "conversion"), _labelled(ctx, test_c, "conversion")
        out["cvr"] = _outcome_metrics(chosen, val_cv, test_cv, seed)[0]
    k = cfg.k
    relevant = [test[1][(test[0] == u) & (test[2] > 0)] for u in range(ctx.n_users)]
    out["impression_ranking"] = {}
    for name, model in models.items():
        top = ranked_impressions(model, test[0], test[1], ctx.n_users, k)
        out["impression_ranking"][name] = M.ranking_metrics(top, relevant, k)
    out["sizes"] = {
        "fit": len(fit),
        "validation": len(val_df),
        "test": len(test_df),
        "test_clicks": int(test[2].sum()),
    }
    return out, calib
