"""Which model changes earn their place on MovieLens-100K, decided on validation only.

    python -m benchmarks.quality_sweep [--phase mf|attention|blend|all] [--cold]

The validation split is the one `make train` tunes alpha on: the `recommenders` protocol's
training rows (seed 42), 20% of each user's held out (seed 43). Every candidate is a set of
config overrides on top of `make train`'s defaults (BASELINE: the settings before this sweep),
fitted on the remaining 80% and scored on the held-out 20%: NDCG@10 among the training catalog,
and tail NDCG@10 (among the items outside the 20% most popular; rec_models/evaluation/tail.py).
`--cold` adds a validation cold-start split for attention candidates (20% of the training
items of the `cold_start` protocol held out, seed 43). Hybrids blend the best MF found with
each attention candidate, alpha on the same validation grid as training. The test split is never
read here: the chosen settings become defaults and `make train` reports their test numbers.

Results accumulate in benchmarks/results/quality_sweep.json (a candidate already there is not
refitted; delete the file to start over) with the load average at each fit, and are rendered
to quality_sweep.md and quality_sweep.png.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np

from benchmarks.machine import RESULTS, describe_machine
from rec_models.config import TrainConfig
from rec_models.data.splits import cold_start_split, make_split, validation_split
from rec_models.evaluation import metrics as M
from rec_models.evaluation.tail import tail_items, tail_relevant
from rec_models.fitting import rank, relevant_lists
from rec_models.models.attention import AttentionRecommender
from rec_models.models.hybrid import HybridRecommender, bucket_of
from rec_models.models.mf import MFRecommender
from rec_models.pipeline import build_context, torch_embedder

K = 10
OUT = RESULTS / "quality_sweep.json"
# The settings before this sweep (what `make train` ran when issue 10 was filed).
BASELINE: dict[str, dict[str, Any]] = {
    "mf": {"factors": 200, "reg": 50.0, "alpha": 10.0, "unobserved": 1.0},
    "attention": {"max_history": 50, "tower": "bilinear", "epochs": 6, "pop_correction": 0.0,
                  "positives_only": False, "item_ids": False, "dim": 128, "hidden": 0,
                  "temperature": 0.1},
}  # fmt: skip
# MF: coordinate search from the baseline, one knob at a time, keeping each improvement.
MF_GRID: list[tuple[str, list[Any]]] = [
    ("reg", [10.0, 25.0, 100.0, 200.0]),
    ("alpha", [2.0, 5.0, 20.0]),
    ("unobserved", [0.3, 3.0]),
    ("factors", [64, 128, 400]),
    ("reg", [35.0, 70.0]),  # a second, finer pass around the best
    ("alpha", [3.0, 7.5]),
]
# Attention: one direction at a time against the baseline (name, direction, overrides).
ATTENTION: list[tuple[str, str, dict[str, Any]]] = [
    ("baseline", "-", {}),
    ("history100", "longer history", {"max_history": 100}),
    ("history200", "longer history", {"max_history": 200}),
    ("positives", "positives only (rated >= 4 as targets)", {"positives_only": True}),
    ("popcorr0.5", "popularity-corrected softmax (beta 0.5)", {"pop_correction": 0.5}),
    ("selfattn1", "self-attention user tower (1 block)", {"tower": "self_attention"}),
    ("selfattn2", "self-attention user tower (2 blocks)", {"tower": "self_attention",
                                                           "layers": 2}),
    ("item_ids", "item ID embeddings beside the text", {"item_ids": True}),
    ("epochs12", "longer training (12 epochs)", {"epochs": 12}),
    ("wide", "wider towers (hidden 1024, dim 256)", {"hidden": 1024, "dim": 256}),
]  # fmt: skip
EDGES: list[list[int]] = [[], [10], [20], [30], [10, 30], [10, 20, 40]]


def load() -> dict[str, Any]:
    return json.loads(OUT.read_text()) if OUT.is_file() else {"mf": {}, "attention": {}}


def save(results: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))


def config(mf: dict[str, Any], att: dict[str, Any]) -> TrainConfig:
    cfg = TrainConfig()
    cfg.attention.threads = 1  # one core: the machine is shared
    for section, over in (("mf", mf), ("attention", att)):
        for key, value in (BASELINE[section] | over).items():
            setattr(getattr(cfg, section), key, value)
    return cfg


class Validation:
    """The validation split, its embeddings, and the scores of one fitted model on it."""

    def __init__(self, cold: bool) -> None:
        self.cfg = TrainConfig()
        self.ctx = build_context(self.cfg)
        self.emb = torch_embedder(self.ctx)
        inter = self.ctx.dataset.interactions
        train = make_split("recommenders", inter, seed=self.cfg.data.seed).train
        fit_df, val_df = validation_split(train, ratio=0.2, seed=self.cfg.data.seed + 1)
        self.data = self.emb.train_data(fit_df)
        self.relevant = relevant_lists(self.ctx, val_df)
        self.warm = self.data.warm_items()
        self.tail = tail_items(self.data.item_counts())
        self.cold = None
        if cold:
            cs_train = make_split("cold_start", inter, seed=self.cfg.data.seed).train
            c_fit, c_val, c_items = cold_start_split(cs_train, 0.2, seed=self.cfg.data.seed + 1)
            self.cold = (self.emb.train_data(c_fit), relevant_lists(self.ctx, c_val),
                         np.isin(self.ctx.item_ids, c_items))  # fmt: skip

    def scores(self, model: Any) -> dict[str, float]:
        top = rank(model, self.ctx, self.warm, K)
        tail_top = rank(model, self.ctx, self.warm & self.tail, K)
        tail_rel = tail_relevant(self.relevant, self.tail)
        return {
            "ndcg@10": M.ranking_metrics(top, self.relevant, K)["ndcg@10"],
            "tail_ndcg@10": M.ranking_metrics(tail_top, tail_rel, K)["ndcg@10"],
        }

    def best_alpha(self, mf: Any, att: Any, edges: list[int]) -> tuple[list[float], dict]:
        """Per history-length bucket, the alpha of the grid with the best validation NDCG@10."""
        hybrid = HybridRecommender(mf, att, 0.5)
        n_hist = (att.history >= 0).sum(1)
        bucket = bucket_of(n_hist, edges)
        alphas = []
        for b in range(len(edges) + 1):
            users = np.nonzero(bucket == b)[0]
            rel = [self.relevant[u] for u in users]
            best = (-1.0, 0.5)
            for a in self.cfg.hybrid.alphas:
                hybrid.alpha = a
                top = hybrid.recommend(users, K, exclude_seen=True, candidates=self.warm)
                best = max(best, (M.ranking_metrics(top, rel, K)["ndcg@10"], a))
            alphas.append(best[1])
        hybrid.alpha, hybrid.edges = (alphas[0], []) if not edges else (alphas, edges)
        return alphas, self.scores(hybrid)


def fit_mf(val: Validation, over: dict[str, Any]) -> MFRecommender:
    return MFRecommender(config(over, {}).mf).fit(val.data, progress=False)


def fit_att(val: Validation, over: dict[str, Any], data: Any = None) -> AttentionRecommender:
    return AttentionRecommender(config({}, over).attention).fit(data or val.data, progress=False)


def stamp(t0: float) -> dict[str, float]:
    return {"seconds": round(time.perf_counter() - t0, 1), "load1": round(os.getloadavg()[0], 2)}


def run_mf(val: Validation, results: dict[str, Any]) -> dict[str, Any]:
    """Coordinate search from the baseline, one knob at a time; returns the best overrides."""

    def measured(over: dict[str, Any]) -> float:
        key = json.dumps(over, sort_keys=True)
        if key not in results["mf"]:
            t0 = time.perf_counter()
            results["mf"][key] = val.scores(fit_mf(val, over)) | stamp(t0)
            save(results)
            print(f"mf {key}: {results['mf'][key]}", flush=True)
        return results["mf"][key]["ndcg@10"]

    from tqdm.auto import tqdm

    best_over: dict[str, Any] = {}
    for knob, values in tqdm(MF_GRID, desc="mf knobs", unit="knob"):
        for value in values:
            over = best_over | {knob: value}
            if measured(over) > measured(best_over):
                best_over = over
    results["mf_best"] = best_over
    save(results)
    return best_over


def run_attention(val: Validation, results: dict[str, Any], names: list[str] | None) -> None:
    """Each candidate once; with --cold, the cold-start part of candidates that lack it."""
    from tqdm.auto import tqdm

    mf = None
    todo = [c for c in ATTENTION if not names or c[0] in names]
    for name, direction, over in tqdm(todo, desc="attention candidates", unit="fit"):
        row = results["attention"].get(name)
        if row is None:
            t0 = time.perf_counter()
            mf = mf or fit_mf(val, results.get("mf_best", {}))
            att = fit_att(val, over)
            row = {"direction": direction, "overrides": over, "attention": val.scores(att)}
            alphas, hybrid = val.best_alpha(mf, att, [])
            row |= {"hybrid": hybrid, "alpha": alphas[0]} | stamp(t0)
        if val.cold is not None and "cold_ndcg@10" not in row:
            t0 = time.perf_counter()
            data, rel, cand = val.cold
            top = rank(fit_att(val, over, data), val.ctx, cand, K)
            row["cold_ndcg@10"] = M.ranking_metrics(top, rel, K)["ndcg@10"]
            row["cold_seconds"] = stamp(t0)["seconds"]
        results["attention"][name] = row
        save(results)
        print(f"attention {name}: {row}", flush=True)


def run_blend(val: Validation, results: dict[str, Any], name: str) -> None:
    """Per-user alpha by history-length bucket, for the attention candidate `name`."""
    mf = fit_mf(val, results.get("mf_best", {}))
    over = dict(next(o for n, _, o in ATTENTION if n == name))
    att = fit_att(val, over)
    blend = results.setdefault("blend", {})
    for edges in EDGES:
        alphas, scores = val.best_alpha(mf, att, edges)
        blend[f"{name} edges={edges}"] = {"edges": edges, "alphas": alphas, **scores}
        print(f"blend {name} {edges}: {alphas} {scores}", flush=True)
    save(results)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--phase", default="all", choices=["mf", "attention", "blend", "all"])
    parser.add_argument("--only", help="comma-separated attention candidate names")
    parser.add_argument("--cold", action="store_true", help="validation cold-start too")
    parser.add_argument("--blend-of", default="baseline", help="attention candidate to blend")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # one core: the machine is shared
    results = load()
    results["machine"] = describe_machine()
    val = Validation(args.cold)
    if val.cold is not None and "cold_random_ndcg@10" not in results:
        from rec_models.models.baselines import RandomRecommender

        data, rel, cand = val.cold
        top = rank(RandomRecommender(val.cfg.data.seed).fit(data), val.ctx, cand, K)
        results["cold_random_ndcg@10"] = M.ranking_metrics(top, rel, K)["ndcg@10"]
    if args.phase in ("mf", "all"):
        run_mf(val, results)
    if args.phase in ("attention", "all"):
        run_attention(val, results, args.only.split(",") if args.only else None)
    if args.phase in ("blend", "all"):
        run_blend(val, results, args.blend_of)
    from benchmarks.quality_sweep_report import render

    render(results, RESULTS)


if __name__ == "__main__":
    main()
