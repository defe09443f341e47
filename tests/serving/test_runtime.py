"""RecommenderRuntime in-process over the real store models (no server): ranking, scores, errors,
and the bundle's contract and sha256 checks."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rec_models.serving.bundle import IdMap, ScorerBundle
from rec_models.serving.errors import BadRequestError, BundleError, UnknownIdError
from rec_models.serving.runtime import RecommenderRuntime
from rec_models.text.profiles import Profile

from .support import BENTOML_HOME, have_models, store_model_path

VARIANT = "int8"


def first_users(bundle: ScorerBundle, n: int) -> ScorerBundle:
    """The real bundle with its first n users only: prepare() encodes n profiles, not all."""
    a = dict(bundle.arrays)
    for name in ("history", "positive"):
        a[f"{name}_indptr"] = a[f"{name}_indptr"][: n + 1]
        a[f"{name}_items"] = a[f"{name}_items"][: a[f"{name}_indptr"][-1]]
    a["user_ids"], a["user_factors"] = a["user_ids"][:n], a["user_factors"][:n]
    return replace(bundle, arrays=a, users=bundle.users[:n], user_map=IdMap(a["user_ids"]))


@pytest.fixture(scope="module")
def runtime() -> RecommenderRuntime:
    if not have_models():
        pytest.skip(f"no adrec models in {BENTOML_HOME}: run `make export` first")
    from rec_models.serving.onnx_encoder import OnnxEncoder

    encoder = OnnxEncoder(store_model_path(f"adrec-encoder-{VARIANT}"))
    bundle = first_users(ScorerBundle.load(store_model_path("adrec-scorer")), 40)
    rt = RecommenderRuntime(bundle, encoder.encode, encoder.count_tokens)
    rt.prepare()
    return rt


def test_recommend_is_the_exact_top_k_of_user_vector_dot_item_vectors(runtime):
    bundle = runtime.bundle
    for row in (0, 10, len(bundle.users) - 1):
        uid = int(bundle.user_map.ids[row])
        recs = runtime.recommend(uid, k=20)
        scores = runtime.item_vectors @ runtime.user_vectors[row]
        seen_rows, _ = bundle.item_map.rows(bundle.history(row))
        scores[seen_rows] = -np.inf
        want = np.argsort(-scores, kind="stable")[:20]
        assert [r.item_id for r in recs] == runtime.item_ids[want].tolist()
        np.testing.assert_allclose([r.score for r in recs], scores[want], rtol=1e-5)
        probs = runtime.score(uid, [r.item_id for r in recs])
        np.testing.assert_allclose(probs, runtime.calibrate([r.score for r in recs]), rtol=1e-6)
        assert np.all(np.diff(probs) <= 1e-9)  # calibration is monotone


def test_cold_profiles(runtime):
    ids = runtime.item_ids[:3].tolist()
    for profile in (
        Profile(age=30),
        Profile(gender="F"),
        Profile(history=ids),
        Profile(text="noir"),
    ):
        recs = runtime.recommend(profile, k=5)
        assert len(recs) == 5 and not {r.item_id for r in recs} & set(profile.history)
    # A cold profile rebuilt from a known user's data lands near that user.
    user = runtime.bundle.users[0]
    history = runtime.bundle.history(0, positive=True).tolist()
    cold = Profile(user["age"], user["gender"], user["occupation"], history)
    vector, _ = runtime._user(cold)
    cos = (
        vector
        @ runtime.user_vectors[0]
        / np.linalg.norm(vector)
        / np.linalg.norm(runtime.user_vectors[0])
    )
    assert cos > 0.5


def test_errors_name_the_field(runtime):
    with pytest.raises(UnknownIdError) as err:
        runtime.recommend(-5)
    assert err.value.field == "user_id"
    with pytest.raises(BadRequestError, match="empty profile"):
        runtime.recommend(Profile())
    with pytest.raises(UnknownIdError) as err:
        runtime.score(Profile(age=3), [int(runtime.item_ids[0]), -1, -2])
    assert [e[0] for e in err.value.errors] == [("item_ids", 1), ("item_ids", 2)]
    with pytest.raises(BadRequestError) as err:
        runtime.recommend(int(runtime.bundle.user_map.ids[0]), k=0)
    assert err.value.field == "k"
    with pytest.raises(BadRequestError):
        runtime.embed(["ok", " "])
    with pytest.raises(UnknownIdError):
        runtime.similar_items(-1)


def test_similar_items(runtime):
    item = int(runtime.item_ids[0])
    recs = runtime.similar_items(item, k=5)
    assert len(recs) == 5 and item not in [r.item_id for r in recs]
    assert runtime.similar_items(runtime.titles[0], k=1)[0].item_id == item


def test_bundle_contract_and_sha256(runtime, tmp_path: Path):
    src = store_model_path("adrec-scorer")
    copy = tmp_path / "scorer"
    shutil.copytree(src, copy)
    meta = json.loads(_metadata_sha256(src))
    RecommenderRuntime.from_folder(copy, runtime.encode, sha256=meta)  # verifies
    with open(copy / "catalog.json", "a") as fh:
        fh.write(" ")  # still valid JSON, but not the exported file
    with pytest.raises(Exception, match=r"catalog\.json"):
        RecommenderRuntime.from_folder(copy, runtime.encode, sha256=meta)
    (copy / "scorer.onnx").unlink()
    with pytest.raises(BundleError, match=r"scorer\.onnx"):
        ScorerBundle.load(copy)


def _metadata_sha256(folder: Path) -> str:
    import bentoml

    tag = f"adrec-scorer:{folder.name}"
    return json.dumps(bentoml.models.get(tag).info.metadata["sha256"])
