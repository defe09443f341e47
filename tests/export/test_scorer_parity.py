"""The exported scoring head matches the PyTorch/numpy hybrid it was exported from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from rec_models.models.base import Recommender
from rec_models.models.hybrid import HybridRecommender

ARTIFACTS = Path("artifacts")
SCORER = ARTIFACTS / "onnx" / "scorer"


@pytest.fixture(scope="module")
def model() -> HybridRecommender:
    if not (SCORER / "scorer.onnx").is_file():
        pytest.fail("artifacts/onnx/scorer missing: run `make export` (make test does)")
    m = Recommender.load(ARTIFACTS / "models" / "serving" / "hybrid")
    assert isinstance(m, HybridRecommender)
    return m


def feeds(model: HybridRecommender, users: np.ndarray) -> dict[str, np.ndarray]:
    att = model.attention
    padded = np.concatenate([att.item_emb, np.zeros((1, att.item_emb.shape[1]), np.float32)])
    return {
        "profile_emb": att.profile_emb[users],
        "history_emb": padded[att.history[users]],
        "history_mask": (att.history[users] >= 0).astype(np.float32),
        "user_factors": model.mf.P[users],
    }


def test_user_tower_and_scorer_match_the_model(model):
    users = np.arange(0, len(model.mf.P), 37)  # a spread of known users, batch > 1
    user_vec, item_vec = model.vectors()
    with np.load(SCORER / "arrays.npz", allow_pickle=False) as z:
        np.testing.assert_allclose(z["item_vectors"], item_vec, atol=1e-5)
        item_emb, item_factors = z["item_emb"], z["item_factors"]
    tower = ort.InferenceSession(str(SCORER / "user_tower.onnx"))
    got = tower.run(None, feeds(model, users))[0]
    assert np.abs(got - user_vec[users]).max() <= 1e-4
    scorer = ort.InferenceSession(str(SCORER / "scorer.onnx"))
    cand = np.array([5, 0, 1681, 77])  # any candidates, any order: num_candidates is dynamic
    scores = scorer.run(
        None, feeds(model, users) | {"item_emb": item_emb[cand], "item_factors": item_factors[cand]}
    )[0]
    assert scores.shape == (len(users), len(cand))
    assert np.abs(scores - model.score(users)[:, cand]).max() <= 1e-4


def test_bundle_config_and_catalog_agree_with_arrays():
    config = json.loads((SCORER / "config.json").read_text())
    catalog = json.loads((SCORER / "catalog.json").read_text())
    with np.load(SCORER / "arrays.npz", allow_pickle=False) as z:
        assert [it["item_id"] for it in catalog["items"]] == z["item_ids"].tolist()
        assert [u["user_id"] for u in catalog["users"]] == z["user_ids"].tolist()
        assert z["item_vectors"].shape[1] == config["user_dim"]
        assert z["history_indptr"][-1] == len(z["history_items"])
    assert 0.0 <= config["alpha"] <= 1.0
    assert max(config["parity_max_abs_diff"].values()) <= 1e-4
