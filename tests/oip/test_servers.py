"""The Open Inference Protocol end to end: `make serve`'s two servers, driven by tritonclient.

One launcher (`python -m rec_models.serving.launch`, as `make serve` runs it) starts the BentoML
HTTP service (native JSON API + v2 REST routes) and the gRPC server on free loopback ports,
over the real model store. The same input must give the same answer over gRPC, v2 HTTP and the
native JSON API; bad input must give the right status and name the tensor.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.grpc.aio as tgrpc_aio
import tritonclient.http as thttp
from tritonclient.utils import InferenceServerException

from rec_models.config import ROOT

pytestmark = pytest.mark.slow

STORE = Path(os.environ.get("BENTOML_HOME", ROOT / "bentoml_home"))
START_TIMEOUT_S = 300  # both servers encode every known user profile at start-up
TEXTS = ["A space opera with rebels and an evil empire.", "A quiet romance in a Paris bookshop."]
UNKNOWN_ID = 999_999
MIB = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_ready(proc: subprocess.Popen[bytes], http: str, grpc_url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    grpc_client = tgrpc.InferenceServerClient(grpc_url)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"launcher exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            http_ready = httpx.get(f"{http}/readyz", timeout=1).status_code == 200
            if http_ready and grpc_client.is_server_ready():
                return
        except (httpx.HTTPError, InferenceServerException):
            pass
        time.sleep(0.5)
    pytest.fail(f"servers not ready after {START_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not (STORE / "models" / "adrec-scorer").is_dir():
        pytest.skip(f"no adrec-scorer in the model store {STORE}: run `make export` first")
    import psutil

    http_port, grpc_port = free_port(), free_port()
    log = tmp_path_factory.mktemp("oip") / "serve.log"
    env = {**os.environ, "BENTOML_HOME": str(STORE), "ADREC_MAX_MESSAGE_BYTES": str(4 * MIB)}
    command = [sys.executable, "-m", "rec_models.serving.launch", "--port", str(http_port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, "--grpc-port", str(grpc_port)], cwd=ROOT, env=env, stdout=out, stderr=out
        )
    http, grpc_url = f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}"
    try:
        wait_ready(proc, http, grpc_url, log)
        yield {"http": http, "v2": f"127.0.0.1:{http_port}", "grpc": grpc_url, "log": log}
    finally:
        family = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
        proc.send_signal(signal.SIGTERM)  # Ctrl-C / SIGTERM to the launcher stops both servers
        try:
            proc.wait(60)
        finally:
            leftovers = [p for p in family if p.is_running()]
            for p in leftovers:
                p.kill()
    assert not leftovers, f"still running after SIGTERM: {leftovers}"
    assert not port_open(http_port) and not port_open(grpc_port)


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
            {"USER_ID": ("INT64", [-1]), "K": ("INT32", [1])},
            {"ITEM_IDS": ("INT64", [-1, -1]), "SCORES": ("FP32", [-1, -1])},
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
        if transport == "grpc":  # its own process: dynamic int8 may differ in the last bits
            assert (got * expected).sum(axis=1).min() > 0.999
        else:
            np.testing.assert_allclose(got, expected, atol=1e-6)


# gRPC runs its own copy of the models in another process. The known users' profile embeddings
# come from the dynamic-int8 encoder, whose numbers depend on the batch a text was encoded in
# (the HTTP service batches them across requests), so its scores may differ by a few 1e-2 and
# near-tied items may swap: it must agree within these bounds, v2 HTTP (same process) exactly.
GRPC_PROB_ATOL, GRPC_SCORE_ATOL = 0.03, 0.1


def native_probabilities(servers: dict[str, Any], user: int, items: list[int]) -> np.ndarray:
    body = {"user_id": user, "item_ids": items}
    native = httpx.post(f"{servers['http']}/score", json=body).json()["items"]
    return np.array([it["probability"] for it in native], dtype=np.float32)


def test_recommender_same_answer_everywhere(servers: dict[str, Any]) -> None:
    users, k = [1, 2, 3], 5
    native = [
        httpx.post(f"{servers['http']}/recommend", json={"user_id": u, "k": k}).json()["items"]
        for u in users
    ]
    ids = np.array([[it["item_id"] for it in items] for items in native])  # (3, k)
    scores = np.array([[it["score"] for it in items] for items in native], dtype=np.float32)
    probs = np.array([[it["probability"] for it in items] for items in native])
    for transport in ("http", "json"):
        got = infer(servers, transport, "recommender", USER_ID=(users, "INT64"), K=([k], "INT32"))
        assert got["ITEM_IDS"].tolist() == ids.tolist(), transport
        np.testing.assert_allclose(got["SCORES"], scores, atol=1e-5)
    got = infer(servers, "grpc", "recommender", USER_ID=(users, "INT64"), K=([k], "INT32"))
    assert got["ITEM_IDS"].shape == (3, k) and got["SCORES"].dtype == np.float32
    np.testing.assert_allclose(got["SCORES"], scores, atol=GRPC_SCORE_ATOL)
    for row, user in enumerate(users):  # gRPC's top k are native near-ties of the native top k
        theirs = native_probabilities(servers, user, got["ITEM_IDS"][row].tolist())
        assert theirs.min() >= probs[row].min() - GRPC_PROB_ATOL
    default_k = infer(servers, "grpc", "recommender", USER_ID=([1], "INT64"))["ITEM_IDS"]
    assert default_k.shape == (1, 10)


def test_scorer_same_answer_everywhere(servers: dict[str, Any]) -> None:
    items = [50, 1, 181, 100]
    expected = native_probabilities(servers, 1, items)
    for transport in ("grpc", "http", "json"):
        got = infer(servers, transport, "scorer", USER_ID=([1], "INT64"), ITEM_IDS=(items, "INT64"))
        atol = GRPC_PROB_ATOL if transport == "grpc" else 1e-6
        np.testing.assert_allclose(got["PROBABILITY"], expected, atol=atol)


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
    """32 concurrent one-text requests share encoder batches (ModelStatistics.batch_stats)."""

    def batch_counts() -> dict[int, int]:
        stats = client(servers, "grpc").get_inference_statistics("encoder", as_json=True)
        batches = stats["model_stats"][0].get("batch_stats", [])
        return {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in batches}

    async def burst() -> list[np.ndarray]:
        async with tgrpc_aio.InferenceServerClient(servers["grpc"]) as c:

            async def one(i: int) -> np.ndarray:
                t = tgrpc.InferInput("TEXT", [1], "BYTES")
                t.set_data_from_numpy(np.array([f"request {i}: {TEXTS[i % 2]}"], dtype=object))
                return (await c.infer("encoder", [t])).as_numpy("EMBEDDING")

            return await asyncio.gather(*(one(i) for i in range(32)))

    before = batch_counts()
    outputs = asyncio.run(burst())
    after = batch_counts()
    assert all(o.shape == (1, 384) for o in outputs)
    new = {size: n - before.get(size, 0) for size, n in after.items() if n > before.get(size, 0)}
    assert sum(size * n for size, n in new.items()) == 32
    assert max(new) > 1, f"no batch held more than one request: {new}"
