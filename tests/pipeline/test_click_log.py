"""An impression log with a known click model (rec_models.data.synthetic): topics in the ad copy,
interests in the users, impressions at random, clicks by interest. The models must learn what is
clicked, not what is shown: the text model reaches cold-ad NDCG@10 >= 3x random and CTR AUC >=
0.70 on held-out impressions, and MF beats popularity on warm ads. Fitting every shown row as a
positive (what the models did before events were first-class) fails the same bar."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rec_models.config import DataConfig, TrainConfig
from rec_models.data.splits import time_split
from rec_models.data.synthetic import generate, write_files
from rec_models.evaluation import metrics as M
from rec_models.fitting import pair_scores
from rec_models.models.mf import MFRecommender
from rec_models.pipeline import Embedder, build_context
from rec_models.train import train

ADS, USERS, IMPRESSIONS = 240, 300, 150


def config(root: Path, conversions: bool = False) -> TrainConfig:
    ds, _ = generate(ADS, USERS, IMPRESSIONS, conversions=conversions, seed=0)
    cfg = TrainConfig(artifacts_dir=str(root / "artifacts"))
    cfg.data = DataConfig(source="synthetic", path=str(write_files(root / "data", ds)))
    cfg.data.positive_threshold = 1.0  # rating 1 = clicked, 0 = shown, as the log
    cfg.protocols = ["recommenders", "cold_start"]
    cfg.mf.factors, cfg.mf.epochs = 32, 6
    cfg.attention.dim, cfg.attention.folds = 64, 2
    cfg.hybrid.alphas = [0.0, 0.5, 1.0]
    return cfg


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[TrainConfig, dict]:
    cfg = config(tmp_path_factory.mktemp("clicks"), conversions=True)
    return cfg, train(cfg)


def test_text_model_learns_clicks_on_cold_ads(run) -> None:
    cold = run[1]["protocols"]["cold_start"]
    assert cold["attention"]["ndcg@10"] >= 3 * cold["random"]["ndcg@10"], cold


def test_ctr_on_held_out_impressions(run) -> None:
    ctr = run[1]["ctr"]
    assert ctr["attention"]["auc"] >= 0.70 and ctr["hybrid"]["auc"] >= 0.70, ctr
    lo, hi = ctr["attention"]["auc_ci95"]
    assert lo <= ctr["attention"]["auc"] <= hi
    # calibrated on real validation impressions: the predicted CTR is near the observed one
    assert abs(ctr["hybrid"]["mean_predicted_ctr"] - ctr["hybrid"]["observed_ctr"]) < 0.03
    assert 0.05 < ctr["hybrid"]["observed_ctr"] < 0.2  # ~10% of impressions clicked
    assert {"auc", "logloss", "ece", "l2"} <= set(ctr["logistic_regression"])


def test_mf_beats_popularity_on_warm_ads(run) -> None:
    warm = run[1]["protocols"]["recommenders"]
    assert warm["mf"]["ndcg@10"] > warm["popularity"]["ndcg@10"], warm


def test_report_names_what_ran_and_what_was_skipped(run) -> None:
    cfg, report = run
    out = Path(cfg.artifacts_dir)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["rows"] == "impressions"
    assert {"ctr_impressions", "impression_ranking", "cvr"} <= set(saved["evaluations"])
    assert "ctr_sampled" in saved["skipped"] and "cold_user" in saved["skipped"]
    assert set(saved["cvr"]) == {"popularity", "mf", "attention", "hybrid"}
    imp = saved["impression_ranking"]
    assert imp["attention"]["ndcg@10"] > imp["random"]["ndcg@10"]
    assert (out / "reliability.png").stat().st_size > 1000
    bins = saved["reliability"]["hybrid"]
    assert sum(b["count"] for b in bins) == saved["sizes"]["test"]
    assert "Skipped" in (out / "report.md").read_text()
    served = json.loads((out / "models" / "state.json").read_text())["calibration"]["hybrid"]
    assert served == report["meta"]["calibration"]["hybrid"]
    assert report["meta"]["calibration_fitted_on"].startswith("validation impressions")


def test_fitting_every_impression_fails_the_bar(run) -> None:
    """The same log read the old way: every shown row a positive. MF fitted on it predicts the
    held-out clicks no better than chance; fitted on the clicks it clears the bar."""
    cfg, report = run
    ctx = build_context(cfg)
    emb = Embedder(ctx, lambda texts: np.zeros((len(texts), 4), np.float32))  # MF reads no text
    train_df, test_df = time_split(ctx.dataset.interactions, 0.2)
    everything = train_df.assign(click=True)  # what the models were fitted on before
    model = MFRecommender(cfg.mf).fit(emb.train_data(everything), progress=False)
    users, items = ctx.index(test_df)
    old_auc = M.auc(test_df["click"].to_numpy(float), pair_scores(model, users, items))
    assert old_auc < 0.6 and report["ctr"]["mf"]["auc"] >= 0.7, (old_auc, report["ctr"]["mf"])
