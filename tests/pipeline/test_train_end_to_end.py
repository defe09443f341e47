"""A small end-to-end run of `make train`'s code on a MovieLens subset given as custom files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from subsets import movielens_subset

from rec_models.config import DataConfig, TrainConfig
from rec_models.data.custom import save_canonical
from rec_models.train import train

N_USERS, N_ITEMS = 120, 300
# The fine-tuning run checks which encoders are fitted and where they go, not their quality: a
# smaller subset (each of its four fine-tunings re-encodes every text) does the same.
FT_USERS, FT_ITEMS = 60, 150


@pytest.fixture(scope="module")
def subset_config(tmp_path_factory) -> TrainConfig:
    root = tmp_path_factory.mktemp("e2e")
    save_canonical(movielens_subset(N_USERS, N_ITEMS), root / "data")
    cfg = TrainConfig(artifacts_dir=str(root / "artifacts"))
    # a ratings log: every rating an interaction, rated >= 4 liked (MovieLens' own reading)
    cfg.data = DataConfig(source="custom", path=str(root / "data"), rows="interactions")
    cfg.mf.factors, cfg.mf.epochs = 32, 4
    cfg.attention.epochs, cfg.attention.dim = 2, 32
    cfg.hybrid.alphas = [0.0, 0.5, 1.0]
    return cfg


@pytest.fixture(scope="module")
def report(subset_config) -> dict:
    return train(subset_config)


def test_writes_metrics_report_models_and_texts(report, subset_config):
    out = Path(subset_config.artifacts_dir)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["dataset"] == "data"  # a custom dataset is named after its folder
    assert set(saved["protocols"]) == {"recommenders", "temporal", "cold_start"}
    for model in ("random", "popularity", "mf", "attention", "hybrid"):
        assert 0.0 <= saved["protocols"]["recommenders"][model]["ndcg@10"] <= 1.0
    assert set(saved["ctr"]) == {"mf", "attention", "hybrid"}
    assert 0.5 < saved["ctr"]["hybrid"]["auc"] <= 1.0
    assert saved["rows"] == "interactions" and "ctr_sampled" in saved["evaluations"]
    assert saved["skipped"]["cvr"] and saved["skipped"]["cold_user"] == "not in train.protocols"
    assert (out / "reliability.png").is_file()
    assert {"coverage", "diversity", "novelty"} <= set(saved["beyond_accuracy"]["hybrid"])
    assert "| hybrid |" in (out / "report.md").read_text()
    for protocol in ("recommenders", "temporal", "cold_start", "serving"):
        assert (out / "models" / protocol / "hybrid" / "weights.safetensors").is_file()
    texts = json.loads((out / "texts.json").read_text())
    assert len(texts["items"]) == N_ITEMS and len(texts["users"]) == N_USERS
    assert not list(out.glob(".train-*")), "temporary folder left behind"


def test_learned_models_beat_random(report):
    rec = report["protocols"]["recommenders"]
    assert rec["hybrid"]["ndcg@10"] > rec["random"]["ndcg@10"]
    assert rec["mf"]["ndcg@10"] > rec["random"]["ndcg@10"]
    cold = report["protocols"]["cold_start"]
    assert cold["attention"]["ndcg@10"] > cold["random"]["ndcg@10"]


def test_alpha_is_chosen_on_validation(report):
    curve = report["meta"]["alpha_curve_val_ndcg"]
    assert report["meta"]["alpha"] == float(max(curve, key=curve.get))


def test_finetuned_encoder_is_fitted_per_split_and_served(subset_config, tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    save_canonical(movielens_subset(FT_USERS, FT_ITEMS), root / "data")
    cfg = copy.deepcopy(subset_config)
    cfg.data.path, cfg.artifacts_dir = str(root / "data"), str(root / "artifacts")
    cfg.protocols = ["recommenders", "cold_start"]
    cfg.encoder.finetune, cfg.encoder.finetune_epochs = True, 1
    report = train(cfg)
    out = Path(cfg.artifacts_dir)
    tuned = report["meta"]["encoder_finetune"]
    # one encoder per training split, none of which saw that split's held-out interactions
    assert set(tuned) == {
        "encoder-validation",
        "encoder-recommenders",
        "encoder-cold_start",
        "encoder",
    }
    served = json.loads((out / "train_config.json").read_text())["encoder"]["model_path"]
    assert Path(served) == out / "encoder" and (out / "encoder" / "config.json").is_file()
    assert not list(out.glob("encoder-*")), "per-split encoders are scratch"
    assert 0.0 <= report["protocols"]["cold_start"]["hybrid"]["ndcg@10"] <= 1.0
