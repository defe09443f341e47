"""The parts of make retrain that need no training: the gate, the hold-out metrics and cut,
the all-or-nothing promotion, logged rows in a dataset, and [ab] beside training's tables."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rec_models.abtest.config import load_ab
from rec_models.config import ConfigError, RetrainConfig, load_config
from rec_models.data.logged import canonical_logged, logged_frame, read_logged, with_logged
from rec_models.data.schema import Dataset, DataValidationError
from rec_models.retrain.gate import judge, recorded_metrics, refusal_line
from rec_models.retrain.holdout import holdout_metrics, response_ndcg
from rec_models.retrain.publish import REPLACED, promote_and_publish
from rec_models.retrain.snapshot import Snapshot


def test_response_ndcg_by_hand():
    # response a: items 1 (clicked), 2; the model puts 2 first -> DCG 1/log2(3), IDCG 1
    # response b: items 3, 4 (clicked); the model puts 4 first -> 1.0
    # response c: every item clicked -> not counted (every order scores the same)
    req = np.array(["a", "a", "b", "b", "c"])
    items = np.array([1, 2, 3, 4, 5])
    clicked = np.array([True, False, False, True, True])
    scores = np.array([0.1, 0.9, 0.2, 0.8, 0.5])
    ndcg, n = response_ndcg(req, items, clicked, scores, 10)
    assert n == 2
    assert ndcg == pytest.approx((1 / math.log2(3) + 1.0) / 2)


def test_holdout_metrics_auc_by_hand():
    req = np.array(["a", "a", "b", "b"])
    clicked = np.array([True, False, False, True])
    scores = np.array([0.9, 0.1, 0.8, 0.2])  # pairs (click, non-click): 0.9>0.1, 0.9>0.8,
    # 0.2>0.1, 0.2<0.8 -> AUC 3/4
    out = holdout_metrics(req, np.array([1, 2, 3, 4]), clicked, scores, 10)
    assert out["auc"] == pytest.approx(0.75) and out["clicks"] == 2


def _holdout(new_auc: float, cur_auc: float, new_ndcg: float, cur_ndcg: float, clicks=50):
    m = lambda auc, ndcg: {"auc": auc, "ndcg@10": ndcg, "clicks": clicks}  # noqa: E731
    return {"new": m(new_auc, new_ndcg), "current": m(cur_auc, cur_ndcg)}


def test_gate_refuses_a_fall_beyond_the_margin_and_names_it():
    cfg = RetrainConfig(ndcg_margin=0.01, auc_margin=0.02)
    recorded = {"ndcg@10": 0.40, "protocol": "recommenders"}
    ok = judge(recorded, recorded, _holdout(0.70, 0.71, 0.50, 0.505), cfg, 10)
    assert ok.passed and len(ok.comparisons) == 3  # two hold-out, one recorded
    bad = judge(recorded, recorded, _holdout(0.66, 0.70, 0.50, 0.50), cfg, 10)
    assert not bad.passed and [c.name for c in bad.failed] == ["holdout auc"]
    line = refusal_line(bad, "adrec-scorer:3")
    assert "adrec-scorer:3" in line and "holdout auc 0.7000 -> 0.6600" in line
    assert "\n" not in line


def test_gate_skips_what_cannot_be_compared():
    cfg = RetrainConfig(min_holdout_clicks=20)
    new = {"ndcg@10": 0.3, "protocol": "recommenders", "ctr_auc": 0.7, "ctr_view": "impressions"}
    old = {"ndcg@10": 0.3, "ctr_auc": 0.8, "ctr_view": "sampled"}
    verdict = judge(new, old, _holdout(0.1, 0.9, 0.1, 0.9, clicks=5), cfg, 10)
    assert verdict.passed  # the hold-out has too few clicks; the AUCs are different views
    assert "min_holdout_clicks" in verdict.skipped["holdout"]
    assert "different views" in verdict.skipped["recorded auc"]


def test_recorded_metrics_name_protocol_and_ctr_view():
    report = {
        "protocols": {"recommenders": {"hybrid": {"ndcg@10": 0.4}}},
        "ctr": {"hybrid": {"auc": 0.8}},
        "evaluations": {"ctr_sampled": "..."},
    }
    rec = recorded_metrics(report, 10)
    expected = {"ndcg@10": 0.4, "protocol": "recommenders", "ctr_auc": 0.8, "ctr_view": "sampled"}
    assert rec == expected


def test_holdout_is_the_latest_share_in_whole_responses():
    ts = np.repeat(np.arange(10.0), 10)  # 10 responses of 10 items, one second apart
    req = np.repeat([f"r{i}" for i in range(10)], 10)
    frame = logged_frame(np.ones(100), np.arange(100), ts, np.zeros(100), np.zeros(100), 1.0)
    snap = Snapshot(Path("x"), frame, req, ts, 0)
    mask = snap.holdout_mask(0.15)  # 15 rows -> the cut moves to the next response boundary
    assert set(req[mask]) == {"r9"} and mask.sum() == 10
    assert set(req[snap.holdout_mask(0.2)]) == {"r8", "r9"}


def _dataset() -> Dataset:
    users = pd.DataFrame({"user_id": [1, 2]})
    items = pd.DataFrame({"item_id": [10, 20], "title": ["Red shoes", "Blue hat"]})
    inter = pd.DataFrame({"user_id": [1], "item_id": [10], "rating": [5.0], "timestamp": [0]})
    return Dataset("shop", users, items, inter)


def test_logged_rows_join_the_interactions_as_impressions(tmp_path):
    frame = logged_frame([1, 2], [20, 10], [5.5, 6.0], [True, False], [False, False], 4.0)
    path = tmp_path / "logged.csv"
    frame.to_csv(path, index=False)
    ds = with_logged(_dataset(), read_logged(path))
    inter = ds.interactions
    assert len(inter) == 3 and inter["click"].tolist() == [True, True, False]
    assert inter["rating"].tolist() == [5.0, 4.0, 0.0]  # a click is liked at the threshold
    assert inter["timestamp"].tolist() == [0, 5, 6]
    assert canonical_logged(frame)["click"].tolist() == [True, False]


def test_logged_row_with_an_unknown_item_names_file_row_and_column():
    frame = canonical_logged(logged_frame([1, 2], [20, 99], [5, 6], [1, 0], [0, 0], 4.0))
    with pytest.raises(DataValidationError, match=r"logged.csv.*row 2.*item_id.*unknown id 99"):
        with_logged(_dataset(), frame)


def test_ab_table_lives_in_the_training_config(tmp_path):
    path = tmp_path / "cfg.toml"
    path.write_text(
        '[mf]\nfactors = 8\n[retrain]\nndcg_margin = 0.02\n[ab]\nexperiment = "v2"\n'
        '[[ab.variants]]\nname = "A"\nshare = 0.5\nmodel_version = "1"\n'
        '[[ab.variants]]\nname = "B"\nshare = 0.5\nmodel_version = "2"\n'
    )
    cfg = load_config(path)
    assert cfg.mf.factors == 8 and cfg.retrain.ndcg_margin == 0.02
    experiment, _ = load_ab(path)
    assert experiment is not None and [a.model_version for a in experiment.arms] == ["1", "2"]
    path.write_text('[ab]\n[[ab.variants]]\nname = "A"\nshare = 0.7\n')
    with pytest.raises(ConfigError, match="shares must sum to 1"):
        load_config(path)
    path.write_text("[retrain]\nmargin = 1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'retrain\.margin'"):
        load_config(path)


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _fill(folder: Path, tag: str) -> None:
    for rel in REPLACED[:-1]:  # every replaced artifact but onnx/scorer, which stays absent
        if rel == "models":
            (folder / rel).mkdir(parents=True, exist_ok=True)
            (folder / rel / "w.bin").write_text(tag)
        else:
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(tag)


def test_failed_publish_puts_artifacts_back(tmp_path):
    art, staging = tmp_path / "artifacts", tmp_path / "artifacts" / ".retrain-x"
    _fill(art, "old")
    _fill(staging, "new")
    (art / "events").mkdir()
    (art / "events" / "events.sqlite").write_text("log")
    before = {k: v for k, v in _tree(art).items() if not k.startswith(".retrain-x")}

    def fail() -> str:
        assert (art / "metrics.json").read_text() == "new"  # swapped in when publish runs
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        promote_and_publish(staging, art, fail)
    after = {k: v for k, v in _tree(art).items() if not k.startswith(".retrain-x")}
    assert after == before
    _fill(staging, "new")
    assert promote_and_publish(staging, art, lambda: "tag") == "tag"
    assert (art / "models" / "w.bin").read_text() == "new"
    assert (art / "events" / "events.sqlite").read_text() == "log"
    assert [p.name for p in art.iterdir() if p.name.startswith(".retrain-old")] == []
