"""The Open Inference Protocol end to end: `make serve`'s one process tree, driven by tritonclient.

The session's service (tests/conftest.py: `bentoml serve service:Recommender`, as `make serve`
runs it) answers the native JSON API, the v2 REST routes and gRPC from the same BentoML workers
over one serving core. The same input must give the same answer over all three (same ids, same
order, scores equal to float32 rounding), for known users and cold profiles; bad input must give
the right status and name the tensor; gRPC must be served by the workers themselves.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.grpc.aio as tgrpc_aio
import tritonclient.http as thttp
from harness import MIB, Service
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.slow

TEXTS = ["A space opera with rebels and an evil empire.", "A quiet romance in a Paris bookshop."]
UNKNOWN_ID = 999_999


@pytest.fixture(scope="module")
def servers(service: Service) -> dict[str, Any]:
    return {"http": service.url, "v2": service.v2, "grpc": service.grpc, "service": service}


def client(servers: dict[str, Any], transport: str) -> Any:
    if transport == "grpc":
        return tgrpc.InferenceServerClient(servers["grpc"])
    return thttp.InferenceServerClient(servers["v2"])


def tensor(transport: str, name: str, values: Any, datatype: str, binary: bool = True) -> Any:
    module = tgrpc if transport == "grpc" else thttp
    arr = np.asarray(values, dtype=object if datatype == "BYTES" else None)
    if datatype != "BYTES":
        arr = arr.astype({"INT64": np.int64, "INT32": np.int32, "FP32": np.float32}[datatype])
    t = module.InferInput(name, list(arr.shape), datatype)
    if transport == "grpc":
        return t.set_data_from_numpy(arr)
    return t.set_data_from_numpy(arr, binary_data=binary)


TRANSPORTS = ["grpc", "http"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_health_and_server_metadata(servers: dict[str, Any], transport: str) -> None:
    c = client(servers, transport)
    assert c.is_server_live() and c.is_server_ready()
    for model in ("encoder", "recommender", "scorer"):
        assert c.is_model_ready(model)
    meta = c.get_server_metadata(as_json=True) if transport == "grpc" else c.get_server_metadata()
    assert meta["name"] == "lm-adrec" and meta["extensions"]


def test_model_metadata_is_the_same_over_both(servers: dict[str, Any]) -> None:
    info = httpx.get(f"{servers['http']}/info").json()
    grpc_client, http_client = client(servers, "grpc"), client(servers, "http")
    expect = {
        "encoder": ({"TEXT": ("BYTES", [-1])}, {"EMBEDDING": ("FP32", [-1, 384])}),
        "recommender": (
            {"USER_ID": ("INT64", [-1]), "PROFILE": ("BYTES", [-1]), "K": ("INT32", [1])},
            {
                "ITEM_IDS": ("INT64", [-1, -1]),
                "SCORES": ("FP32", [-1, -1]),
                "REQUEST_ID": ("BYTES", [-1]),
                "ARM": ("BYTES", [-1]),
            },
        ),
        "scorer": (
            {"USER_ID": ("INT64", [1]), "ITEM_IDS": ("INT64", [-1])},
            {"PROBABILITY": ("FP32", [-1])},
        ),
    }
    for model, (inputs, outputs) in expect.items():
        over_http = http_client.get_model_metadata(model)
        over_grpc = grpc_client.get_model_metadata(model, as_json=True)
        for t in over_grpc["inputs"] + over_grpc["outputs"]:
            t["shape"] = [int(d) for d in t["shape"]]  # protobuf's JSON writes int64 as strings
        assert over_grpc == over_http
        assert over_http["platform"] == "onnxruntime_onnx"
        assert {t["name"]: (t["datatype"], t["shape"]) for t in over_http["inputs"]} == inputs
        assert {t["name"]: (t["datatype"], t["shape"]) for t in over_http["outputs"]} == outputs
        variant = info["variant"] if model == "encoder" else "hybrid"
        assert over_http["versions"][0].startswith(f"{variant}-")


def infer(servers: dict[str, Any], transport: str, model: str, **inputs: Any) -> Any:
    """{output: array} over gRPC, v2 HTTP binary ("http") or v2 HTTP JSON ("json")."""
    kind = "grpc" if transport == "grpc" else "http"
    tensors = [
        tensor(kind, name, *spec, binary=transport != "json") for name, spec in inputs.items()
    ]
    outputs = None
    if transport == "json":
        meta = client(servers, "http").get_model_metadata(model)
        outputs = [
            thttp.InferRequestedOutput(o["name"], binary_data=False) for o in meta["outputs"]
        ]
    result = client(servers, kind).infer(model, tensors, outputs=outputs)
    names = {"encoder": ["EMBEDDING"], "recommender": ["ITEM_IDS", "SCORES"]}
    return {n: result.as_numpy(n) for n in names.get(model, ["PROBABILITY"])}


def test_encoder_same_answer_everywhere(servers: dict[str, Any]) -> None:
    native = httpx.post(f"{servers['http']}/embed", json={"texts": TEXTS}).json()
    expected = np.asarray(native["embeddings"], dtype=np.float32)
    for transport in ("grpc", "http", "json"):
        got = infer(servers, transport, "encoder", TEXT=(TEXTS, "BYTES"))["EMBEDDING"]
        assert got.dtype == np.float32 and got.shape == (2, 384)
        np.testing.assert_array_equal(got, expected)  # one core, one batch of two: exactly


def native_probabilities(servers: dict[str, Any], user: int, items: list[int]) -> np.ndarray:
    body = {"user_id": user, "item_ids": items}
    native = httpx.post(f"{servers['http']}/score", json=body).json()["items"]
    return np.array([it["probability"] for it in native], dtype=np.float32)


def native_top_k(servers: dict[str, Any], body: dict[str, Any]) -> tuple[list[int], np.ndarray]:
    resp = httpx.post(f"{servers['http']}/recommend", json=body, timeout=60)
    assert resp.status_code == 200, resp.text
    items = resp.json()["items"]
    return [it["item_id"] for it in items], np.array([it["score"] for it in items], np.float32)


def test_recommender_same_answer_everywhere(servers: dict[str, Any]) -> None:
    """Known users: the same ids in the same order, scores equal to float32 rounding (the JSON
    API sends float64 of the same float32 numbers), over native HTTP, v2 (binary and JSON) and
    gRPC. One request per user, so each is answered by whichever worker takes it."""
    users, k = [1, 2, 3, 50], 10
    native = [native_top_k(servers, {"user_id": u, "k": k}) for u in users]
    ids = [n[0] for n in native]
    scores = np.stack([n[1] for n in native])
    for transport in ("grpc", "http", "json"):
        got = infer(servers, transport, "recommender", USER_ID=(users, "INT64"), K=([k], "INT32"))
        assert got["ITEM_IDS"].tolist() == ids, transport
        assert got["SCORES"].dtype == np.float32
        np.testing.assert_array_equal(got["SCORES"], scores)
    default_k = infer(servers, "grpc", "recommender", USER_ID=([1], "INT64"))["ITEM_IDS"]
    assert default_k.shape == (1, 10)


COLD = [
    {"age": 28, "gender": "F", "occupation": "engineer", "history": [50, 181, 1],
     "text": "Loves science fiction and space adventures."},
    {"text": "animated films for children"},
    {"history": [100]},
]  # fmt: skip


@pytest.mark.parametrize("profile", COLD, ids=["full", "text", "history"])
def test_cold_profiles_same_answer_everywhere(servers: dict[str, Any], profile: dict) -> None:
    """A cold profile encoded alone (no concurrent requests: a batch of one) gives the same
    top k over every transport; PROFILE elements are the JSON bodies /recommend takes."""
    ids, scores = native_top_k(servers, {**profile, "k": 10})
    for transport in ("grpc", "http", "json"):
        got = infer(servers, transport, "recommender", PROFILE=([json.dumps(profile)], "BYTES"))
        assert got["ITEM_IDS"].tolist() == [ids], transport
        np.testing.assert_array_equal(got["SCORES"][0], scores)


def test_scorer_same_answer_everywhere(servers: dict[str, Any]) -> None:
    items = [50, 1, 181, 100]
    expected = native_probabilities(servers, 1, items)
    for transport in ("grpc", "http", "json"):
        got = infer(servers, transport, "scorer", USER_ID=([1], "INT64"), ITEM_IDS=(items, "INT64"))
        np.testing.assert_array_equal(got["PROBABILITY"], expected)


BAD_INPUTS = {  # case: (model, {input: (values, datatype)}, code, message)
    "wrong dtype": ("scorer", {"USER_ID": ([1], "INT32"), "ITEM_IDS": ([1], "INT64")},
                    "INVALID_ARGUMENT", "input 'USER_ID': wrong datatype INT32, expected INT64"),
    "wrong shape": ("scorer", {"USER_ID": ([1, 2], "INT64"), "ITEM_IDS": ([1], "INT64")},
                    "INVALID_ARGUMENT", "input 'USER_ID': wrong shape [2], expected [1]"),
    "missing input": ("scorer", {"USER_ID": ([1], "INT64")},
                      "INVALID_ARGUMENT", "input 'ITEM_IDS': required"),
    "unknown model": ("nope", {"USER_ID": ([1], "INT64")}, "NOT_FOUND", "model 'nope' not found"),
    "unknown user": ("recommender", {"USER_ID": ([1, UNKNOWN_ID], "INT64")},
                     "NOT_FOUND", f"input 'USER_ID': element 1: unknown user_id {UNKNOWN_ID}"),
    "unknown item": ("scorer", {"USER_ID": ([1], "INT64"), "ITEM_IDS": ([1, UNKNOWN_ID], "INT64")},
                     "NOT_FOUND", f"input 'ITEM_IDS': element 1: unknown item_id {UNKNOWN_ID}"),
    "bad k": ("recommender", {"USER_ID": ([1], "INT64"), "K": ([0], "INT32")},
              "INVALID_ARGUMENT", "input 'K': must be an integer between 1 and 100"),
    "blank text": ("encoder", {"TEXT": (["ok", " "], "BYTES")},
                   "INVALID_ARGUMENT", "input 'TEXT': element 1: must be a non-empty string"),
    "oversize": ("encoder", {"TEXT": (["x" * (5 * MIB)], "BYTES")},
                 "INVALID_ARGUMENT", "input 'TEXT': request of "),
}  # fmt: skip
HTTP_STATUS = {"INVALID_ARGUMENT": "400", "NOT_FOUND": "404"}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_names_the_tensor(servers: dict[str, Any], transport: str, case: str) -> None:
    model, inputs, code, message = BAD_INPUTS[case]
    tensors = [tensor(transport, name, *spec) for name, spec in inputs.items()]
    with pytest.raises(InferenceServerException) as err:
        client(servers, transport).infer(model, tensors)
    status = f"StatusCode.{code}" if transport == "grpc" else HTTP_STATUS[code]
    assert err.value.status() == status, err.value.message()
    assert message in err.value.message()


def test_grpc_batches_concurrent_requests(servers: dict[str, Any]) -> None:
    """32 concurrent one-text requests share encoder batches (ModelStatistics.batch_stats of the
    worker behind this channel: one gRPC channel is one connection, so one worker)."""

    def batch_counts(stats: dict[str, Any]) -> dict[int, int]:
        batches = stats["model_stats"][0].get("batch_stats", [])
        return {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in batches}

    async def burst() -> tuple[dict[int, int], list[np.ndarray], dict[int, int]]:
        async with tgrpc_aio.InferenceServerClient(servers["grpc"]) as c:

            async def one(i: int) -> np.ndarray:
                t = tgrpc.InferInput("TEXT", [1], "BYTES")
                t.set_data_from_numpy(np.array([f"request {i}: {TEXTS[i % 2]}"], dtype=object))
                return (await c.infer("encoder", [t])).as_numpy("EMBEDDING")

            before = batch_counts(await c.get_inference_statistics("encoder", as_json=True))
            outputs = await asyncio.gather(*(one(i) for i in range(32)))
            after = batch_counts(await c.get_inference_statistics("encoder", as_json=True))
            return before, outputs, after

    before, outputs, after = asyncio.run(burst())
    assert all(o.shape == (1, 384) for o in outputs)
    new = {size: n - before.get(size, 0) for size, n in after.items() if n > before.get(size, 0)}
    assert sum(size * n for size, n in new.items()) == 32
    assert max(new) > 1, f"no batch held more than one request: {new}"


def test_grpc_is_served_by_the_bentoml_workers(servers: dict[str, Any]) -> None:
    """One process tree: the gRPC port is held by the BentoML worker processes (children of
    `bentoml serve`), not by the supervisor nor by any sibling server."""
    import psutil

    svc: Service = servers["service"]
    root = psutil.Process(svc.proc.pid)
    workers = root.children(recursive=True)
    assert workers, "bentoml serve started no worker"

    def listens(p: psutil.Process, port: int) -> bool:
        conns = p.net_connections(kind="tcp")
        return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in conns)

    grpc_owners = [p.pid for p in workers if listens(p, svc.grpc_port)]
    assert grpc_owners, f"no worker listens on the gRPC port {svc.grpc_port}"
    assert not listens(root, svc.grpc_port)
    info = httpx.get(f"{svc.url}/info").json()
    assert len(grpc_owners) == info["settings"]["workers"]  # every worker, one shared port
    cmdlines = [" ".join(p.cmdline()) for p in workers]
    assert not any("grpc_server" in c or "launch" in c for c in cmdlines), cmdlines


def test_a_full_encoder_queue_sheds_fast_over_both_transports(servers: dict[str, Any]) -> None:
    """Bursts of 256-text requests overflow the encoder queue (512 texts a worker): what does not
    fit is refused at once, 503 + Retry-After over HTTP and RESOURCE_EXHAUSTED over gRPC, never
    a hang or another error; the server keeps serving. One burst per transport, one after the
    other: sent together, whichever transport reached the queue first filled it, and the other
    saw only refusals (the full suite's ordering did that)."""
    texts = [f"advertisement number {i} for a product" for i in range(256)]

    async def burst() -> tuple[list[int], list[str]]:
        async with httpx.AsyncClient(base_url=servers["http"], timeout=120) as http:
            resps = await asyncio.gather(*(http.post("/embed", json={"texts": texts})
                                           for _ in range(12)))  # fmt: skip
        for r in resps:
            if r.status_code == 503:
                assert r.headers["retry-after"] == "1" and "queue is full" in r.json()["error"]
        async with tgrpc_aio.InferenceServerClient(servers["grpc"]) as grpc_client:

            async def one() -> str:
                t = tgrpc.InferInput("TEXT", [len(texts)], "BYTES")
                t.set_data_from_numpy(np.array(texts, dtype=object))
                try:
                    await grpc_client.infer("encoder", [t], client_timeout=120)
                except InferenceServerException as exc:
                    return str(exc.status())
                return "OK"

            codes = await asyncio.gather(*(one() for _ in range(6)))
        return [r.status_code for r in resps], list(codes)

    statuses, codes = asyncio.run(burst())
    assert set(statuses) <= {200, 503} and 503 in statuses and 200 in statuses, statuses
    assert set(codes) <= {"OK", "StatusCode.RESOURCE_EXHAUSTED"} and len(set(codes)) == 2, codes
    ok = httpx.post(f"{servers['http']}/embed", json={"texts": TEXTS}, timeout=60)
    assert ok.status_code == 200
