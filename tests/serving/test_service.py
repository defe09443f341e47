"""The real server over HTTP: every API, the batching, and every bad input answered 4xx."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from rec_models.serving.bundle import ScorerBundle


def batch_histogram(metrics: str) -> tuple[dict[float, float], float]:
    """(cumulative bucket counts by upper bound, number of batches) of the encoder's batch size
    histogram `adrec_encoder_batch_size`, summed over workers."""
    buckets: dict[float, float] = {}
    count = 0.0
    for line in metrics.splitlines():
        if line.startswith("#"):
            continue
        value = float(line.rsplit(" ", 1)[1]) if " " in line else 0.0
        if line.startswith("adrec_encoder_batch_size_bucket"):
            le = re.search(r'le="([^"]+)"', line).group(1)
            bound = float("inf") if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + value
        elif line.startswith("adrec_encoder_batch_size_count"):
            count += value
    return buckets, count


def known_user(bundle: ScorerBundle) -> tuple[int, set[int]]:
    """A user with a history, and the item ids of that history (the seen set)."""
    for row, uid in enumerate(bundle.user_map.ids.tolist()):
        seen = set(bundle.history(row).tolist())
        if len(seen) >= 20:
            return int(uid), seen
    raise AssertionError("no user with a history")


def test_probes_and_info(client):
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200
    info = client.get("/info").json()
    assert info["ready"] and info["error"] is None
    assert (info["provider"], info["variant"]) in {
        ("CPUExecutionProvider", "int8"),
        ("CPUExecutionProvider", "distilled_int8"),
        ("CUDAExecutionProvider", "fp16"),  # onnxruntime-gpu and a GPU
    }
    assert info["encoder"]["sha256_verified"] and info["bundle"]["sha256_verified"]
    assert info["catalog"]["items"] > 1000 and info["index"]["kind"] in ("exact", "ann")
    assert info["batching"]["max_batch_size"] == 64
    assert {"bentoml", "onnxruntime", "numpy"} <= set(info["versions"])
    metrics = client.get("/metrics").text
    assert "bentoml_service_request_total" in metrics
    for series in ("batch_size_bucket", "queue_depth", "queue_wait_seconds_bucket"):
        assert f"adrec_encoder_{series}" in metrics, series
    assert info["settings"]["workers"] >= 1 and info["settings"]["threads"] >= 1


def test_recommend_known_user(client, bundle):
    uid, seen = known_user(bundle)
    body = client.post("/recommend", json={"user_id": uid, "k": 10}).json()
    items = body["items"]
    assert body["user"] == "known" and body["variant"] and len(items) == 10
    scores = [it["score"] for it in items]
    assert scores == sorted(scores, reverse=True)
    assert not {it["item_id"] for it in items} & seen  # exclude_seen defaults to true
    assert all(0 < it["probability"] < 1 and it["title"] for it in items)
    # The same items scored by /score get the same calibrated probabilities, in input order.
    ids = [it["item_id"] for it in items][::-1]
    scored = client.post("/score", json={"user_id": uid, "item_ids": ids}).json()["items"]
    assert [s["item_id"] for s in scored] == ids
    want = {it["item_id"]: it["probability"] for it in items}
    assert all(abs(s["probability"] - want[s["item_id"]]) < 1e-6 for s in scored)
    # exclude_seen=false may return seen items; candidate_ids restricts the ranking.
    ranked = client.post("/recommend", json={"user_id": uid, "k": 100, "exclude_seen": False})
    assert {it["item_id"] for it in ranked.json()["items"]} & seen
    cands = sorted(seen)[:3] + [it["item_id"] for it in items[:2]]
    sub = client.post("/recommend", json={"user_id": uid, "k": 5, "candidate_ids": cands}).json()
    assert {it["item_id"] for it in sub["items"]} == set(cands) - seen


def test_recommend_cold_profiles(client, bundle):
    history = bundle.item_map.ids[:5].tolist()
    full = {"age": 28, "gender": "F", "occupation": "engineer", "history": history,
            "text": "Loves science fiction and space adventures."}  # fmt: skip
    for profile in (full, {"text": "animated films for children"}, {"history": history[:1]}):
        resp = client.post("/recommend", json={**profile, "k": 7})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["user"] == "cold" and len(body["items"]) == 7
        assert not {it["item_id"] for it in body["items"]} & set(profile.get("history", []))
    probs = client.post("/score", json={**full, "item_ids": history}).json()["items"]
    assert [p["item_id"] for p in probs] == history


def test_similar_items_and_embed(client, bundle):
    item = int(bundle.item_map.ids[0])
    items = client.post("/similar_items", json={"item_id": item, "k": 5}).json()["items"]
    assert len(items) == 5 and item not in {it["item_id"] for it in items}
    assert all(-1 <= it["score"] <= 1 for it in items)
    by_text = client.post("/similar_items", json={"text": bundle.titles[0], "k": 3}).json()
    assert by_text["items"][0]["item_id"] == item  # an item's own title finds it first
    texts = ["a space opera", "a romantic comedy in Paris", "a space opera"]
    emb = client.post("/embed", json={"texts": texts}).json()
    vectors = np.array(emb["embeddings"])
    assert vectors.shape == (3, emb["dim"]) and emb["dim"] == 384
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    assert vectors[0] @ vectors[2] > 0.99 and vectors[0] @ vectors[1] < 0.9


def test_concurrent_requests_are_batched(client, server):
    before, n_before = batch_histogram(client.get("/metrics").text)
    texts = [f"an advertisement for product number {i}" for i in range(64)]
    with httpx.Client(base_url=server.url, timeout=60) as shared, ThreadPoolExecutor(64) as pool:
        resps = list(pool.map(lambda t: shared.post("/embed", json={"texts": [t]}), texts))
    assert [r.status_code for r in resps] == [200] * 64
    after, n_after = batch_histogram(client.get("/metrics").text)
    batches = n_after - n_before
    singles = after.get(1.0, 0) - before.get(1.0, 0)
    assert 0 < batches < 64, "64 concurrent requests should share batches"
    assert batches - singles > 0, "no batch held more than one request"
    # One bad request never disturbs the good ones batched around it.
    bodies = [{"texts": [t]} for t in texts[:24]] + [{"texts": ["   "]}] * 8
    with httpx.Client(base_url=server.url, timeout=60) as shared, ThreadPoolExecutor(32) as pool:
        resps = list(pool.map(lambda b: shared.post("/embed", json=b), bodies))
    assert [r.status_code for r in resps] == [200] * 24 + [400] * 8
    alone = np.array(client.post("/embed", json={"texts": texts[:1]}).json()["embeddings"][0])
    assert np.array(resps[0].json()["embeddings"][0]) @ alone > 0.99


def test_concurrent_cold_profiles(server):
    bodies = [{"text": f"enjoys films about topic {i}", "k": 5} for i in range(32)]
    with httpx.Client(base_url=server.url, timeout=60) as shared, ThreadPoolExecutor(32) as pool:
        resps = list(pool.map(lambda b: shared.post("/recommend", json=b), bodies))
    assert [r.status_code for r in resps] == [200] * 32


UNKNOWN = 987_654_321
BAD_REQUESTS = [
    # (path, JSON body, status, loc of the first error)
    ("/recommend", {"user_id": UNKNOWN}, 404, ["user_id"]),
    ("/recommend", {"user_id": 1, "k": 0}, 400, ["k"]),
    ("/recommend", {"user_id": 1, "k": 101}, 400, ["k"]),
    ("/recommend", {"user_id": "one"}, 400, ["user_id"]),
    ("/recommend", {"user_id": 1, "age": 30}, 400, ["user_id"]),
    ("/recommend", {}, 400, ["profile"]),
    ("/recommend", {"text": "   "}, 400, ["profile"]),
    ("/recommend", {"history": [UNKNOWN]}, 404, ["history", 0]),
    ("/recommend", {"user_id": 1, "candidate_ids": [1, UNKNOWN]}, 404, ["candidate_ids", 1]),
    ("/recommend", {"user_id": 1, "candidate_ids": []}, 400, ["candidate_ids"]),
    ("/recommend", {"user": 1}, 400, ["user"]),
    ("/recommend", {"age": 30, "text": "x" * 2001}, 400, ["text"]),
    ("/recommend", [1, 2], 400, ["body"]),  # a whole-body error, located as 413s are
    ("/score", {"user_id": 1, "item_ids": [1, UNKNOWN]}, 404, ["item_ids", 1]),
    ("/score", {"user_id": 1, "item_ids": list(range(1, 1002))}, 400, ["item_ids"]),
    ("/score", {"user_id": 1}, 400, ["item_ids"]),
    ("/similar_items", {"item_id": UNKNOWN}, 404, ["item_id"]),
    ("/similar_items", {}, 400, ["item_id"]),
    ("/similar_items", {"item_id": 1, "k": 1000}, 400, ["k"]),
    ("/embed", {"texts": []}, 400, ["texts"]),
    ("/embed", {"texts": "one text"}, 400, ["texts"]),
    ("/embed", {"texts": ["x"] * 257}, 400, ["texts"]),
    ("/embed", {"texts": ["ok", "y" * 2001]}, 400, ["texts", 1]),
    ("/embed", {"texts": ["ok", 3]}, 400, ["texts", 1]),
]


@pytest.mark.parametrize(("path", "body", "status", "loc"), BAD_REQUESTS)
def test_bad_requests_are_4xx_naming_the_field(client, path, body, status, loc):
    resp = client.post(path, json=body)
    assert resp.status_code == status, resp.text
    err = resp.json()
    assert isinstance(err, dict) and err["error"], err
    assert err["detail"][0]["loc"] == loc, err


def test_malformed_and_oversized_bodies(client):
    resp = client.post(
        "/recommend", content=b'{"user_id": 1,', headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400 and resp.json()["detail"][0]["type"] == "json_invalid"
    big = json.dumps({"texts": ["x" * 2000] * 600}).encode()  # 1.2 MB > 1 MiB
    resp = client.post("/embed", content=big, headers={"content-type": "application/json"})
    assert resp.status_code == 413 and resp.json()["detail"][0]["loc"] == ["body"]
    assert client.post("/recommend", json={"user_id": 1}).status_code in (200, 404)  # still serving
