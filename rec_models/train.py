"""`make train`: fit MF, attention and hybrid under every protocol, evaluate, write artifacts/.

python -m rec_models.train [--dataset movielens|obd|synthetic] [--config my.toml]
    [--artifacts artifacts]

Bad data or configuration ends it with one line on stderr (file, row, column; or the key) and
exit status 2, no traceback.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rec_models.artifact_publish import JOURNAL, publish, recover, staging_dir
from rec_models.config import ConfigError, TrainConfig, config_dict, load_config
from rec_models.data import DEFAULT_PATHS, DataValidationError
from rec_models.data.events import has_impressions
from rec_models.data.logged_split import logged_rows, split_with_logged
from rec_models.data.splits import Split, time_split
from rec_models.evaluation import metrics as M
from rec_models.evaluation.plots import reliability_plot
from rec_models.evaluation.report import print_summary, write_report
from rec_models.evaluation.tail import tail_items, tail_relevant
from rec_models.fitting import (
    LEARNED,
    beyond_accuracy,
    candidates_of,
    ctr_examples,
    evaluate_ranking,
    fit_all,
    pair_scores,
    rank,
    relevant_lists,
)
from rec_models.models.base import Recommender, TrainData
from rec_models.models.hybrid import HybridRecommender
from rec_models.pipeline import Context, Embedder, build_context, torch_embedder
from rec_models.protocols import plan
from rec_models.train_tuning import apply_blend, split_embedder, tune_on_validation

TEXT_MODELS = ("attention", "hybrid")
# `--dataset NAME` (make train DATASET=NAME): the built-in dataset's source, folder and reading.
PRESETS: dict[str, dict[str, Any]] = {
    "movielens": {"source": "movielens", "path": DEFAULT_PATHS["movielens"]},
    "obd": {"source": "obd", "path": DEFAULT_PATHS["obd"]},
    "synthetic": {"source": "synthetic", "path": DEFAULT_PATHS["synthetic"],
                  "positive_threshold": 1.0},  # rating 1 = clicked, 0 = shown
}  # fmt: skip


def run_protocol(
    cfg: TrainConfig,
    ctx: Context,
    emb: Embedder,
    split: Split,
    alpha: float,
    out: Path,
    log: dict,
    blend: dict[str, Any],
) -> tuple[dict[str, Recommender], dict[str, dict[str, float]], dict[str, np.ndarray], TrainData]:
    emb = split_embedder(cfg, emb, split.train, out / f"encoder-{split.name}", log)
    data = emb.train_data(split.train)
    models = fit_all(cfg, data, alpha)
    apply_blend(models["hybrid"], blend)
    allowed = candidates_of(ctx, split, data)
    metrics, tops = evaluate_ranking(models, ctx, split.test, allowed, cfg.k)
    if split.name in ("recommenders", "temporal"):  # among the items outside the 20% most popular
        tail = tail_items(data.item_counts())
        relevant = tail_relevant(relevant_lists(ctx, split.test), tail)
        for name, model in models.items():
            top = rank(model, ctx, allowed & tail, cfg.k)
            metrics[name][f"tail_ndcg@{cfg.k}"] = M.ranking_metrics(top, relevant, cfg.k)[
                f"ndcg@{cfg.k}"
            ]
    if split.name in ("cold_start", "cold_user"):  # text is the only signal; NDCG and recall
        keep = (f"ndcg@{cfg.k}", f"recall@{cfg.k}", f"hr@{cfg.k}")
        metrics = {m: {k: v for k, v in r.items() if k in keep} for m, r in metrics.items()}
    elif split.name == "temporal":
        keep = (f"ndcg@{cfg.k}", f"hr@{cfg.k}", f"recall@{cfg.k}", f"tail_ndcg@{cfg.k}")
        metrics = {m: {k: v for k, v in r.items() if k in keep} for m, r in metrics.items()}
    for name in LEARNED:
        models[name].save(out / "models" / split.name / name)
    return models, metrics, tops, data


def click_view(
    cfg: TrainConfig, ctx: Context, emb: Embedder, alpha: float, out: Path, log: dict
) -> tuple[dict[str, Any], dict[str, tuple[float, float]]]:
    """The time-ordered CTR / CVR / impression-ranking view of an impression log."""
    from rec_models.clicks import evaluate_impressions

    inter = ctx.dataset.interactions
    emb = split_embedder(cfg, emb, time_split(inter, 0.2)[0], out / "encoder-time", log)
    return evaluate_impressions(cfg, ctx, emb, inter, alpha)


def evaluate(
    cfg: TrainConfig, ctx: Context, emb: Embedder, tmp: Path, tuned: dict
) -> tuple[dict[str, Any], float, dict[str, tuple[float, float]], dict[str, Any]]:
    """Every applicable protocol: (report, alpha, served calibration, tuning meta)."""
    interactions = ctx.dataset.interactions
    protocols, notes, skipped = plan(cfg, ctx)
    n_logged = logged_rows(cfg, interactions)
    splits = {p: split_with_logged(cfg, p, interactions, n_logged) for p in protocols}
    base = splits.get("recommenders") or next(iter(splits.values()))
    alpha, calib, meta = tune_on_validation(cfg, ctx, emb, base.train, tmp, tuned)
    meta["calibration_fitted_on"] = "validation split, liked vs other rows and sampled items"
    report: dict[str, Any] = {"dataset": ctx.dataset.name, "rows": ctx.rows, "protocols": {},
                              "ctr": {}, "beyond_accuracy": {}}  # fmt: skip
    if n_logged:  # the log trains the served model only (rec_models/data/logged_split.py)
        report["logged_split"] = {"logged_rows": n_logged, "in_protocol_training": 0}
    impressions = has_impressions(interactions)
    for name, split in splits.items():
        models, metrics, tops, data = run_protocol(cfg, ctx, emb, split, alpha, tmp, tuned, meta)
        report["protocols"][name] = metrics
        if split is base:
            if not impressions:
                u, i, y = ctr_examples(ctx, data, split.test, cfg.data.seed + 2)
                report["reliability"] = {}
                for m in LEARNED:
                    probs = M.apply_platt(pair_scores(models[m], u, i), *calib[m])
                    report["ctr"][m] = M.ctr_metrics(y, probs)
                    report["reliability"][m] = M.reliability_bins(y, probs, quantile=True)
            report["beyond_accuracy"] = beyond_accuracy(tops, data, emb.item_emb())
    if impressions:
        clicks, click_calib = click_view(cfg, ctx, emb, alpha, tmp, tuned)
        skipped |= clicks.pop("skipped")
        report |= clicks
        if click_calib:  # the served model's probabilities: calibrated on real impressions
            calib = {m: click_calib[m] for m in LEARNED}
            meta["calibration_fitted_on"] = "validation impressions of the time-ordered split"
    report["evaluations"] = {k: v for k, v in notes.items() if k not in skipped}
    report["skipped"] = skipped
    return report, alpha, calib, meta


def train(cfg: TrainConfig) -> dict[str, Any]:
    t0 = time.perf_counter()
    final = Path(cfg.artifacts_dir)
    recover(final)  # a publish a killed run committed to is finished first
    tmp = staging_dir(final)
    try:
        ctx = build_context(cfg)
        emb = torch_embedder(ctx)
        interactions = ctx.dataset.interactions
        tuned: dict[str, Any] = {}  # encoder fine-tuning summaries, by folder
        report, alpha, calib, tune_meta = evaluate(cfg, ctx, emb, tmp, tuned)
        for scratch in tmp.glob("encoder-*"):  # per-split encoders: only their metrics stay
            shutil.rmtree(scratch)
        served_cfg = config_dict(cfg)
        if cfg.encoder.finetune:  # the served encoder, for export and serving
            emb = split_embedder(cfg, emb, interactions, tmp / "encoder", tuned)
            served_cfg["encoder"]["model_path"] = str(final / "encoder")
        serving = emb.train_data(interactions)  # the served model sees every interaction
        served = fit_all(cfg, serving, alpha)["hybrid"]
        apply_blend(served, tune_meta)
        served.save(tmp / "models" / "serving" / "hybrid")
        state = {
            "alpha": alpha,
            "calibration": {m: list(c) for m, c in calib.items()},
            "protocols": list(report["protocols"]),
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
        if report.get("reliability"):
            title = f"{ctx.dataset.name}: CTR reliability (held-out)"
            reliability_plot(report["reliability"], tmp / "reliability.png", title)
        report["meta"] = {
            "alpha": alpha,
            "train_seconds": round(time.perf_counter() - t0, 1),
            "config": config_dict(cfg),
            **tune_meta,
            "encoder_finetune": tuned or None,
            "calibration": state["calibration"],
        }
        write_report(report, tmp)
        # all at once, even across a kill -9 (rec_models/artifact_publish.py); a fine-tuned
        # encoder of an earlier run is stale once this run publishes without one
        publish(tmp, final, remove=() if cfg.encoder.finetune else ("encoder",))
    finally:
        if not (final / JOURNAL).is_file():  # past the commit point, recover() needs it
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
    n_logged = logged_rows(cfg, ctx.dataset.interactions)
    for protocol, key in (("recommenders", "ndcg@10"), ("cold_start", "cold_start_ndcg@10")):
        split = split_with_logged(cfg, protocol, ctx.dataset.interactions, n_logged)
        data = emb.train_data(split.train)
        model = Recommender.load(Path(artifacts_dir) / "models" / protocol / "hybrid")
        assert isinstance(model, HybridRecommender)
        model.attention.set_item_emb(emb.item_emb())
        model.attention.set_users(
            data.encode_profiles(data.users, data.items, data.ratings, data.timestamps),
            model.attention.history,
        )
        top = rank(model, ctx, candidates_of(ctx, split, data), 10)
        out[key] = M.ranking_metrics(top, relevant_lists(ctx, split.test), 10)["ndcg@10"]
    return out


def apply_dataset(cfg: TrainConfig, name: str) -> None:
    """Point `cfg.data` at a built-in dataset (PRESETS)."""
    if name not in PRESETS:
        raise ConfigError(f"--dataset '{name}': choose one of {', '.join(PRESETS)}")
    for key, value in PRESETS[name].items():
        setattr(cfg.data, key, value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", help="TOML file overriding rec_models/config.py's defaults")
    parser.add_argument("--dataset", help=f"a built-in dataset: {', '.join(PRESETS)}")
    parser.add_argument("--artifacts", help="output folder (default: artifacts)")
    parser.add_argument(
        "--finetune-encoder",
        action="store_true",
        help="contrastive fine-tuning of the encoder per split (encoder.finetune = true)",
    )
    args = parser.parse_args(argv)
    # SIGTERM (Ctrl-C's sibling) unwinds like an exception, so the temp folder is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        source = PRESETS[args.dataset]["source"] if args.dataset in PRESETS else None
        cfg = load_config(args.config, source)
        if args.dataset:
            apply_dataset(cfg, args.dataset)
        if args.artifacts:
            cfg.artifacts_dir = args.artifacts
        if args.finetune_encoder:
            cfg.encoder.finetune = True
        report = train(cfg)
    except (DataValidationError, ConfigError, FileNotFoundError) as exc:
        # a user's mistake, not a bug: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print_summary(report)
    print(
        f"wrote {cfg.artifacts_dir}/metrics.json and report.md "
        f"in {report['meta']['train_seconds']} s"
    )


if __name__ == "__main__":
    main()
