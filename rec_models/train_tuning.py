"""What `make train` chooses on validation before any protocol runs: the hybrid's alpha (one,
or one per history-length bucket), each model's Platt calibration, and, with encoder
fine-tuning, the encoder of each split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rec_models.config import TrainConfig
from rec_models.data.splits import validation_split
from rec_models.evaluation import metrics as M
from rec_models.fitting import LEARNED, ctr_examples, fit_all, pair_scores, rank, relevant_lists
from rec_models.models.base import Recommender
from rec_models.models.hybrid import HybridRecommender, bucket_of
from rec_models.pipeline import Context, Embedder, finetune_pairs, torch_embedder


def split_embedder(
    cfg: TrainConfig, base: Embedder, interactions: pd.DataFrame, folder: Path, log: dict
) -> Embedder:
    """`base`; with `encoder.finetune`, the encoder fine-tuned on `interactions` alone (saved to
    `folder`), so no split's encoder has seen that split's held-out interactions."""
    if not cfg.encoder.finetune:
        return base
    from rec_models.text.finetune import finetune_encoder

    texts, positives = finetune_pairs(base, interactions, cfg.data.seed + 3)
    log[folder.name] = finetune_encoder(
        texts, base.ctx.item_texts, positives, folder, cfg.encoder, cfg.data.seed
    )
    return torch_embedder(base.ctx, folder)


def tune_on_validation(
    cfg: TrainConfig, ctx: Context, emb: Embedder, train: pd.DataFrame, scratch: Path, log: dict
) -> tuple[float, dict[str, tuple[float, float]], dict[str, Any]]:
    """alpha and per-model Platt calibration (the sampled CTR view), from a validation split
    carved out of `train`."""
    fit_df, val_df = validation_split(train, ratio=cfg.hybrid.val_ratio, seed=cfg.data.seed + 1)
    emb = split_embedder(cfg, emb, fit_df, scratch / "encoder-validation", log)
    data = emb.train_data(fit_df)
    models = fit_all(cfg, data, alpha=0.5)
    hybrid = models["hybrid"]
    assert isinstance(hybrid, HybridRecommender)
    candidates = data.warm_items()
    relevant = relevant_lists(ctx, val_df)
    curve = {}
    for alpha in cfg.hybrid.alphas:
        hybrid.alpha = alpha
        curve[alpha] = M.ranking_metrics(rank(hybrid, ctx, candidates, cfg.k), relevant, cfg.k)[
            f"ndcg@{cfg.k}"
        ]
    best = max(curve, key=lambda a: curve[a])
    hybrid.alpha = best
    meta: dict[str, Any] = {"alpha_curve_val_ndcg": {str(a): v for a, v in curve.items()}}
    if cfg.hybrid.length_edges:
        meta["alpha_by_length"] = alpha_by_length(cfg, ctx, hybrid, candidates, relevant, best)
        apply_blend(hybrid, meta)
    u, i, y = ctr_examples(ctx, data, val_df, cfg.data.seed)
    calib = {n: M.fit_platt(pair_scores(models[n], u, i), y) for n in LEARNED}
    return best, calib, meta


def alpha_by_length(
    cfg: TrainConfig,
    ctx: Context,
    hybrid: HybridRecommender,
    candidates: np.ndarray,
    relevant: list[np.ndarray],
    overall: float,
) -> dict[str, Any]:
    """Per history-length bucket (hybrid.length_edges), the alpha of the grid with the best
    validation NDCG@10 of that bucket's users; ties and empty buckets keep `overall`."""
    edges = list(cfg.hybrid.length_edges)
    bucket = bucket_of((hybrid.attention.history >= 0).sum(1), edges)
    alphas = []
    for b in range(len(edges) + 1):
        users = np.nonzero(bucket == b)[0]
        rel = [relevant[u] for u in users]
        curve = {}
        for a in cfg.hybrid.alphas:
            hybrid.alpha = a
            top = hybrid.recommend(users, cfg.k, exclude_seen=True, candidates=candidates)
            curve[a] = M.ranking_metrics(top, rel, cfg.k)[f"ndcg@{cfg.k}"]
        alphas.append(max(curve, key=lambda a: (curve[a], a == overall)))
    hybrid.alpha = overall
    return {"edges": edges, "alphas": alphas}


def apply_blend(hybrid: Recommender, meta: dict[str, Any]) -> None:
    """Give the hybrid its per-length alphas when validation chose them."""
    if "alpha_by_length" in meta:
        assert isinstance(hybrid, HybridRecommender)
        hybrid.alpha = list(meta["alpha_by_length"]["alphas"])
        hybrid.edges = list(meta["alpha_by_length"]["edges"])
