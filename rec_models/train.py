"""`make train`: fit MF, attention and hybrid under every protocol, evaluate, write artifacts/.

python -m rec_models.train [--config my.toml] [--artifacts artifacts]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rec_models.config import TrainConfig, config_dict, load_config
from rec_models.data.splits import Split, make_split, validation_split
from rec_models.evaluation import metrics as M
from rec_models.evaluation.report import print_summary, write_report
from rec_models.models.attention import AttentionRecommender
from rec_models.models.base import Recommender, TrainData
from rec_models.models.baselines import PopularityRecommender, RandomRecommender
from rec_models.models.hybrid import HybridRecommender
from rec_models.models.mf import MFRecommender
from rec_models.pipeline import Context, Embedder, build_context, finetune_pairs, torch_embedder

TEXT_MODELS = ("attention", "hybrid")


def fit_all(cfg: TrainConfig, data: TrainData, alpha: float) -> dict[str, Recommender]:
    mf = MFRecommender(cfg.mf).fit(data)
    att = AttentionRecommender(cfg.attention).fit(data)
    return {
        "random": RandomRecommender(cfg.data.seed).fit(data),
        "popularity": PopularityRecommender().fit(data),
        "mf": mf,
        "attention": att,
        "hybrid": HybridRecommender(mf, att, alpha),
    }


def relevant_lists(ctx: Context, test: pd.DataFrame) -> list[np.ndarray]:
    users, items = ctx.index(test)
    return [items[users == u] for u in range(ctx.n_users)]


def rank(model: Recommender, ctx: Context, candidates: np.ndarray, k: int) -> np.ndarray:
    users = np.arange(ctx.n_users)
    return model.recommend(users, k, exclude_seen=True, candidates=candidates)


def evaluate_ranking(
    models: dict[str, Recommender],
    ctx: Context,
    data: TrainData,
    test: pd.DataFrame,
    candidates: np.ndarray,
    k: int,
) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    relevant = relevant_lists(ctx, test)
    out, tops = {}, {}
    for name, model in models.items():
        tops[name] = rank(model, ctx, candidates, k)
        out[name] = M.ranking_metrics(tops[name], relevant, k)
    return out, tops


def ctr_examples(ctx: Context, data: TrainData, test: pd.DataFrame, seed: int) -> tuple:
    """Rated >= threshold: click; rated lower: non-click; plus as many sampled unseen non-clicks."""
    users, items = ctx.index(test)
    labels = (test["rating"].to_numpy() >= ctx.cfg.data.positive_threshold).astype(np.float64)
    rng = np.random.default_rng(seed)
    seen = set(zip(data.users.tolist(), data.items.tolist(), strict=True))
    seen |= set(zip(users.tolist(), items.tolist(), strict=True))
    neg_u, neg_i = [], []
    while len(neg_u) < len(users):
        u, i = int(rng.integers(ctx.n_users)), int(rng.integers(ctx.n_items))
        if (u, i) not in seen:
            seen.add((u, i))
            neg_u.append(u)
            neg_i.append(i)
    u_all = np.concatenate([users, neg_u])
    i_all = np.concatenate([items, neg_i])
    return u_all, i_all, np.concatenate([labels, np.zeros(len(neg_u))])


def pair_scores(model: Recommender, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    full = model.score(np.arange(int(users.max()) + 1))
    return full[users, items].astype(np.float64)


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
    """alpha and per-model Platt calibration, from a validation split carved out of `train`."""
    fit_df, val_df = validation_split(train, ratio=cfg.hybrid.val_ratio, seed=cfg.data.seed + 1)
    emb = split_embedder(cfg, emb, fit_df, scratch / "encoder-validation", log)
    data = emb.train_data(fit_df)
    models = fit_all(cfg, data, alpha=0.5)
    hybrid = models["hybrid"]
    assert isinstance(hybrid, HybridRecommender)
    candidates = data.item_counts() > 0
    relevant = relevant_lists(ctx, val_df)
    curve = {}
    for alpha in cfg.hybrid.alphas:
        hybrid.alpha = alpha
        curve[alpha] = M.ranking_metrics(rank(hybrid, ctx, candidates, cfg.k), relevant, cfg.k)[
            f"ndcg@{cfg.k}"
        ]
    best = max(curve, key=lambda a: curve[a])
    hybrid.alpha = best
    u, i, y = ctr_examples(ctx, data, val_df, cfg.data.seed)
    calib = {n: M.fit_platt(pair_scores(models[n], u, i), y) for n in ("mf", "attention", "hybrid")}
    return best, calib, {"alpha_curve_val_ndcg": {str(a): v for a, v in curve.items()}}


def beyond_accuracy(
    tops: dict[str, np.ndarray], data: TrainData, item_emb: np.ndarray
) -> dict[str, dict[str, float]]:
    counts = data.item_counts()
    return {
        name: {
            "coverage": M.catalog_coverage(top, data.n_items),
            "diversity": M.intra_list_diversity(top, item_emb),
            "novelty": M.novelty(top, counts, data.n_users),
        }
        for name, top in tops.items()
    }


def run_protocol(
    cfg: TrainConfig, ctx: Context, emb: Embedder, split: Split, alpha: float, out: Path, log: dict
) -> tuple[dict[str, Recommender], dict[str, dict[str, float]], dict[str, np.ndarray], TrainData]:
    emb = split_embedder(cfg, emb, split.train, out / f"encoder-{split.name}", log)
    data = emb.train_data(split.train)
    models = fit_all(cfg, data, alpha)
    if split.cold_items is not None:
        candidates = np.isin(ctx.item_ids, split.cold_items)
    else:
        candidates = data.item_counts() > 0
    metrics, tops = evaluate_ranking(models, ctx, data, split.test, candidates, cfg.k)
    if split.name == "cold_start":  # text is the only signal; report NDCG and recall
        keep = (f"ndcg@{cfg.k}", f"recall@{cfg.k}", f"hr@{cfg.k}")
        metrics = {m: {k: v for k, v in r.items() if k in keep} for m, r in metrics.items()}
    elif split.name == "temporal":
        keep = (f"ndcg@{cfg.k}", f"hr@{cfg.k}", f"recall@{cfg.k}")
        metrics = {m: {k: v for k, v in r.items() if k in keep} for m, r in metrics.items()}
    for name in ("mf", "attention", "hybrid"):
        models[name].save(out / "models" / split.name / name)
    return models, metrics, tops, data


def train(cfg: TrainConfig) -> dict[str, Any]:
    t0 = time.perf_counter()
    final = Path(cfg.artifacts_dir)
    final.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".train-", dir=final))
    try:
        ctx = build_context(cfg)
        emb = torch_embedder(ctx)
        interactions = ctx.dataset.interactions
        splits = {p: make_split(p, interactions, seed=cfg.data.seed) for p in cfg.protocols}
        base = splits.get("recommenders") or next(iter(splits.values()))
        tuned: dict[str, Any] = {}  # encoder fine-tuning summaries, by folder
        alpha, calib, tune_meta = tune_on_validation(cfg, ctx, emb, base.train, tmp, tuned)
        report: dict[str, Any] = {
            "dataset": ctx.dataset.name,
            "protocols": {},
            "ctr": {},
            "beyond_accuracy": {},
        }
        for name, split in splits.items():
            models, metrics, tops, data = run_protocol(cfg, ctx, emb, split, alpha, tmp, tuned)
            report["protocols"][name] = metrics
            if split is base:
                u, i, y = ctr_examples(ctx, data, split.test, cfg.data.seed + 2)
                for m in ("mf", "attention", "hybrid"):
                    probs = M.apply_platt(pair_scores(models[m], u, i), *calib[m])
                    report["ctr"][m] = M.ctr_metrics(y, probs)
                report["beyond_accuracy"] = beyond_accuracy(tops, data, emb.item_emb())
        for scratch in tmp.glob("encoder-*"):  # per-split encoders: only their metrics stay
            shutil.rmtree(scratch)
        served_cfg = config_dict(cfg)
        if cfg.encoder.finetune:  # the served encoder, for export and serving
            emb = split_embedder(cfg, emb, interactions, tmp / "encoder", tuned)
            served_cfg["encoder"]["model_path"] = str(final / "encoder")
        serving = emb.train_data(interactions)  # the served model sees every interaction
        served = fit_all(cfg, serving, alpha)["hybrid"]
        served.save(tmp / "models" / "serving" / "hybrid")
        state = {
            "alpha": alpha,
            "calibration": {m: list(c) for m, c in calib.items()},
            "splits": {n: s.name for n, s in splits.items()},
        }
        (tmp / "models" / "state.json").write_text(json.dumps(state, indent=2))
        texts = {
            "items": ctx.item_texts,
            "users": emb.profile_texts(
                serving.users, serving.items, serving.ratings, serving.timestamps
            ),
        }
        (tmp / "texts.json").write_text(json.dumps(texts))
        (tmp / "train_config.json").write_text(json.dumps(served_cfg, indent=2))
        report["meta"] = {
            "alpha": alpha,
            "train_seconds": round(time.perf_counter() - t0, 1),
            "config": config_dict(cfg),
            **tune_meta,
            "encoder_finetune": tuned or None,
            "calibration": state["calibration"],
        }
        write_report(report, tmp)
        for child in tmp.iterdir():  # publish: replace each artifact as a whole
            dest = final / child.name
            if dest.is_dir():
                shutil.rmtree(dest)
            os.replace(child, dest)
        if not cfg.encoder.finetune:  # a fine-tuned encoder of an earlier run is stale now
            shutil.rmtree(final / "encoder", ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def evaluate_with_encoder(
    artifacts_dir: Path,
    encode: Callable[[list[str]], np.ndarray],
    count_tokens=None,
    config: TrainConfig | None = None,
) -> dict[str, float]:
    """NDCG@10 of the trained hybrid on `recommenders` and `cold_start` with texts embedded by
    `encode` (an exported encoder variant) instead of the PyTorch teacher."""
    cfg = config or load_config(Path(artifacts_dir) / "train_config.json")
    ctx = build_context(cfg)
    emb = Embedder(ctx, encode, count_tokens, cfg.encoder.max_length)
    out = {}
    for protocol, key in (("recommenders", "ndcg@10"), ("cold_start", "cold_start_ndcg@10")):
        split = make_split(protocol, ctx.dataset.interactions, seed=cfg.data.seed)
        data = emb.train_data(split.train)
        model = Recommender.load(Path(artifacts_dir) / "models" / protocol / "hybrid")
        assert isinstance(model, HybridRecommender)
        model.attention.set_item_emb(emb.item_emb())
        model.attention.set_users(
            data.encode_profiles(data.users, data.items, data.ratings, data.timestamps),
            model.attention.history,
        )
        if split.cold_items is not None:
            candidates = np.isin(ctx.item_ids, split.cold_items)
        else:
            candidates = data.item_counts() > 0
        top = rank(model, ctx, candidates, 10)
        out[key] = M.ranking_metrics(top, relevant_lists(ctx, split.test), 10)["ndcg@10"]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", help="TOML file overriding rec_models/config.py's defaults")
    parser.add_argument("--artifacts", help="output folder (default: artifacts)")
    parser.add_argument(
        "--finetune-encoder",
        action="store_true",
        help="contrastive fine-tuning of the encoder per split (encoder.finetune = true)",
    )
    args = parser.parse_args(argv)
    # SIGTERM (Ctrl-C's sibling) unwinds like an exception, so the temp folder is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cfg = load_config(args.config)
    if args.artifacts:
        cfg.artifacts_dir = args.artifacts
    if args.finetune_encoder:
        cfg.encoder.finetune = True
    report = train(cfg)
    print_summary(report)
    print(
        f"wrote {cfg.artifacts_dir}/metrics.json and report.md "
        f"in {report['meta']['train_seconds']} s"
    )


if __name__ == "__main__":
    main()
