"""Export the served hybrid's scoring head to ONNX, with its arrays and catalog (the scorer bundle).

user_tower.onnx: (profile_emb, history_emb, history_mask, user_factors) -> user_vector
scorer.onnx:     the same + (item_emb, item_factors) -> scores = user_vector . item_vector
The layout is the README's "Scorer bundle" contract. Parity with the PyTorch/numpy model is checked
here (max abs difference <= 1e-4 per output) before the bundle is published.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from export.gates import GateFailed
from export.variant_dir import staging
from rec_models.config import TrainConfig, load_config
from rec_models.data.events import positive_mask
from rec_models.models.base import Recommender
from rec_models.models.hybrid import EPS, HybridRecommender
from rec_models.pipeline import build_context

OPSET = 17
PARITY_TOL = 1e-4
FOLDIN_REG = 1.0


def build_modules(model: HybridRecommender) -> tuple[Any, Any]:
    """torch (UserTower, Scorer) computing the hybrid vectors of rec_models.models.hybrid."""
    import torch
    from torch import nn

    if model.attention.cfg.item_ids:
        raise ValueError(
            "attention.item_ids: item ID embeddings are not exportable (the scorer rebuilds "
            "item vectors from text); train with attention.item_ids = false"
        )
    net = model.attention.net
    text_items = model.attention.item_vectors()  # (N, dim)
    mf_items = model.mf.Q  # (N, f)

    def buffers(items: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        cov = np.cov(items, rowvar=False, bias=True)
        return torch.as_tensor(cov, dtype=torch.float32), torch.as_tensor(
            items.mean(0), dtype=torch.float32
        )

    cov_t, mean_t = buffers(text_items)
    cov_m, mean_m = buffers(mf_items)
    # one alpha, or one per history-length bucket (the bucket: how many edges <= the number of
    # history items in history_mask, as HybridRecommender.user_alpha counts them)
    edges = torch.as_tensor(model.edges, dtype=torch.float32)
    alphas = torch.as_tensor(np.atleast_1d(model.alpha), dtype=torch.float32)
    scalar_alpha = float(np.atleast_1d(model.alpha)[0])
    by_length = len(model.edges) > 0

    class UserTower(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.register_buffer("cov_t", cov_t)
            self.register_buffer("cov_m", cov_m)

        def forward(self, profile_emb, history_emb, history_mask, user_factors):
            u = self.net.user_tower(profile_emb, history_emb, history_mask)  # (B, dim)
            alpha = scalar_alpha
            if by_length:
                n = history_mask.sum(1, keepdim=True)  # (B, 1)
                alpha = alphas[(n >= edges).sum(1)][:, None]  # (B, 1)
            s_t = torch.sqrt(torch.einsum("bf,fg,bg->b", u, self.cov_t, u) + EPS)  # (B,)
            p = user_factors  # (B, f)
            s_m = torch.sqrt(torch.einsum("bf,fg,bg->b", p, self.cov_m, p) + EPS)
            return torch.cat([alpha * u / s_t[:, None], (1 - alpha) * p / s_m[:, None]], dim=-1)

    class Scorer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.user = UserTower()
            self.register_buffer("mean_t", mean_t)
            self.register_buffer("mean_m", mean_m)

        def forward(
            self, profile_emb, history_emb, history_mask, user_factors, item_emb, item_factors
        ):
            user = self.user(profile_emb, history_emb, history_mask, user_factors)  # (B, D)
            v = self.user.net.item_tower(item_emb) - self.mean_t  # (N, dim)
            items = torch.cat([v, item_factors - self.mean_m], dim=-1)  # (N, D)
            return user @ items.T  # (B, N)

    return UserTower().eval(), Scorer().eval()


def _ordered_history(ctx, interactions) -> dict[str, np.ndarray]:
    """Each user's positives (clicks; shown-but-not-clicked ads are neither history nor seen)
    oldest first, and the liked subset the profile text quotes."""
    interactions = interactions[positive_mask(interactions)]
    users, items = ctx.index(interactions)
    ts = interactions["timestamp"].to_numpy()
    ratings = interactions["rating"].to_numpy()
    order = np.lexsort((ts, users))  # oldest first, as the attention history is built
    out: dict[str, np.ndarray] = {}
    for name, keep in (
        ("history", np.ones(len(order), bool)),
        ("positive", ctx.liked(ratings[order])),
    ):
        u, i = users[order][keep], items[order][keep]
        out[f"{name}_indptr"] = np.searchsorted(u, np.arange(ctx.n_users + 1)).astype(np.int64)
        out[f"{name}_items"] = ctx.item_ids[i].astype(np.int64)
    return out


def _inputs(model: HybridRecommender, users: np.ndarray) -> dict[str, np.ndarray]:
    att = model.attention
    padded = np.concatenate([att.item_emb, np.zeros((1, att.item_emb.shape[1]), np.float32)])
    hist = att.history[users]
    return {
        "profile_emb": att.profile_emb[users],
        "history_emb": padded[hist].astype(np.float32),
        "history_mask": (hist >= 0).astype(np.float32),
        "user_factors": model.mf.P[users],
    }


def export_onnx(model: HybridRecommender, out: Path) -> dict[str, float]:
    """Write user_tower.onnx and scorer.onnx; return the max abs difference per output."""
    import onnxruntime as ort
    import torch

    tower, scorer = build_modules(model)
    users = np.arange(min(8, len(model.mf.P)))
    feeds = _inputs(model, users)
    items = {"item_emb": model.attention.item_emb[:50], "item_factors": model.mf.Q[:50]}
    axes_user = {
        "profile_emb": {0: "batch_size"},
        "history_emb": {0: "batch_size", 1: "history_len"},
        "history_mask": {0: "batch_size", 1: "history_len"},
        "user_factors": {0: "batch_size"},
    }
    args = tuple(torch.as_tensor(v) for v in feeds.values())
    torch.onnx.export(
        tower,
        args,
        out / "user_tower.onnx",
        input_names=list(feeds),
        output_names=["user_vector"],
        opset_version=OPSET,
        dynamo=False,
        dynamic_axes={**axes_user, "user_vector": {0: "batch_size"}},
    )
    item_args = tuple(torch.as_tensor(v) for v in items.values())
    torch.onnx.export(
        scorer,
        args + item_args,
        out / "scorer.onnx",
        input_names=[*feeds, *items],
        output_names=["scores"],
        opset_version=OPSET,
        dynamo=False,
        dynamic_axes={
            **axes_user,
            "item_emb": {0: "num_candidates"},
            "item_factors": {0: "num_candidates"},
            "scores": {0: "batch_size", 1: "num_candidates"},
        },
    )
    user_vec, item_vec = model.vectors()
    expect_user = user_vec[users]
    expect_scores = expect_user @ item_vec[:50].T
    got_user = ort.InferenceSession(str(out / "user_tower.onnx")).run(None, feeds)[0]
    got_scores = ort.InferenceSession(str(out / "scorer.onnx")).run(None, feeds | items)[0]
    diffs = {
        "user_vector": float(np.abs(got_user - expect_user).max()),
        "scores": float(np.abs(got_scores - expect_scores).max()),
    }
    for name, diff in diffs.items():
        if diff > PARITY_TOL:
            raise GateFailed("scorer", f"max_abs_diff[{name}]", diff, PARITY_TOL)
    return diffs


def export_scorer(artifacts_dir: Path, cfg: TrainConfig | None = None) -> Path:
    """Build artifacts/onnx/scorer from the served hybrid (artifacts/models/serving/hybrid)."""
    artifacts_dir = Path(artifacts_dir)
    cfg = cfg or load_config(artifacts_dir / "train_config.json")
    model = Recommender.load(artifacts_dir / "models" / "serving" / "hybrid")
    assert isinstance(model, HybridRecommender)
    ctx = build_context(cfg)
    state = json.loads((artifacts_dir / "models" / "state.json").read_text())
    texts = json.loads((artifacts_dir / "texts.json").read_text())
    final = artifacts_dir / "onnx" / "scorer"
    with staging(final) as tmp:  # all or nothing, across a kill -9 too
        diffs = export_onnx(model, tmp)
        _, item_vec = model.vectors()
        interactions = ctx.dataset.interactions
        clicks = interactions[positive_mask(interactions)]
        arrays = {
            "item_ids": ctx.item_ids.astype(np.int64),
            "item_emb": model.attention.item_emb.astype(np.float32),
            "item_factors": model.mf.Q.astype(np.float32),
            "item_vectors": item_vec,
            "item_popularity": np.bincount(ctx.index(clicks)[1], minlength=ctx.n_items),
            "user_ids": ctx.user_ids.astype(np.int64),
            "user_factors": model.mf.P.astype(np.float32),
            **_ordered_history(ctx, interactions),
        }
        np.savez(tmp / "arrays.npz", **arrays)
        items = [
            {
                "item_id": int(ctx.item_ids[i]),
                "title": info.title,
                "year": info.year,
                "genres": info.genres,
                "text": ctx.item_texts[i],
            }
            for i, info in ctx.items.items()
        ]
        users = [
            {
                "user_id": int(ctx.user_ids[u]),
                "age": p.age,
                "gender": p.gender,
                "occupation": p.occupation,
                "profile_text": texts["users"][u],
            }
            for u, p in enumerate(ctx.demographics)
        ]
        (tmp / "catalog.json").write_text(json.dumps({"items": items, "users": users}))
        a, b = state["calibration"]["hybrid"]
        config = {
            "model": "hybrid",
            "embedding_dim": int(arrays["item_emb"].shape[1]),
            "factors": int(model.mf.Q.shape[1]),
            "user_dim": int(item_vec.shape[1]),
            "max_history": int(model.attention.history.shape[1]),
            "alpha": model.alpha,
            "calibration": {"a": a, "b": b},
            "foldin_reg": FOLDIN_REG,
            "max_length": cfg.encoder.max_length,
            "opset": OPSET,
            "parity_max_abs_diff": diffs,
            "metrics": json.loads((artifacts_dir / "metrics.json").read_text())["protocols"]
            .get("recommenders", {})
            .get("hybrid", {}),
        }
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
    return final
