"""The OIP protocol layer and the v2 REST app over a stub runtime (no models, no servers)."""

from __future__ import annotations

import asyncio
import json
import struct
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pytest

from rec_models.serving.errors import (
    BadRequestError,
    InvalidArgumentError,
    NotFoundError,
    NotReadyError,
    UnknownIdError,
)
from rec_models.serving.oip.codecs import (
    InputTensor,
    check_request_size,
    decode_bytes,
    encode_bytes,
)
from rec_models.serving.oip.protocol import InferenceProtocol
from rec_models.serving.oip.rest import create_app
from rec_models.serving.runtime import Recommendation
from rec_models.text.profiles import Profile

KNOWN_USERS, KNOWN_ITEMS = (1, 2), (10, 20, 30)


class StubRuntime:
    """The RecommenderRuntime methods the protocol calls, with the runtime's error types."""

    def __init__(self) -> None:
        self.bundle = SimpleNamespace(config={"embedding_dim": 3, "model": "hybrid"})
        self.ready = True

    def query_text(self, user: int | Profile) -> str | None:
        if isinstance(user, Profile):
            bad = [p for p, i in enumerate(user.history) if i not in KNOWN_ITEMS]
            if bad:
                raise UnknownIdError("history", [user.history[p] for p in bad], bad)
            return user.text or "empty"
        return None

    def recommend(
        self, user: int | Profile, k: int = 10, embedding: np.ndarray | None = None
    ) -> list[Recommendation]:
        if not 1 <= k <= 100:
            raise BadRequestError("k", f"must be an integer between 1 and 100, got {k}")
        if isinstance(user, Profile):  # cold: the item ranked first is the text's length
            assert embedding is not None and embedding.shape == (1, 3)
            return [Recommendation(int(embedding[0, 0]), "t", 0.5)]
        if user not in KNOWN_USERS:
            raise UnknownIdError("user_id", user)
        if user == 2:
            raise NotReadyError()
        return [Recommendation(i, "t", 1.0 / n) for n, i in enumerate(KNOWN_ITEMS[:k], start=1)]

    def score(self, user: int, item_ids: list[int]) -> np.ndarray:
        if user not in KNOWN_USERS:
            raise UnknownIdError("user_id", user)
        bad = [p for p, i in enumerate(item_ids) if i not in KNOWN_ITEMS]
        if bad:
            raise UnknownIdError("item_ids", [item_ids[p] for p in bad], bad)
        return np.asarray(item_ids, np.float64) / 100


@pytest.fixture(scope="module")
def protocol() -> InferenceProtocol:
    async def embed(texts: list[str]) -> np.ndarray:
        return np.array([[len(t), 0, 0] for t in texts], np.float32)

    return InferenceProtocol(StubRuntime(), embed, "int8-v1", "hybrid-v2", max_message_bytes=4096)


def infer(protocol: InferenceProtocol, model: str, *inputs: InputTensor) -> dict[str, np.ndarray]:
    return asyncio.run(protocol.infer(model, "", list(inputs)))[1]


def int64(name: str, values: list[int]) -> InputTensor:
    return InputTensor(name, "INT64", [len(values)], raw=np.array(values, "<i8").tobytes())


def text(*values: str | bytes) -> InputTensor:
    raw = encode_bytes(np.array(values, dtype=object))
    return InputTensor("TEXT", "BYTES", [len(values)], raw=raw)


def test_bytes_codec_round_trip_and_truncation() -> None:
    values = np.array([b"", "wörld".encode(), b"x" * 300], dtype=object)
    raw = encode_bytes(values)
    assert raw[:4] == struct.pack("<I", 0) and decode_bytes(raw, "TEXT") == list(values)
    with pytest.raises(InvalidArgumentError, match="input 'TEXT': BYTES element 2 overruns"):
        decode_bytes(raw[:-1], "TEXT")
    with pytest.raises(InvalidArgumentError, match="input 'TEXT': truncated"):
        decode_bytes(raw + b"\x01", "TEXT")


DECODE_ERRORS = [
    (InputTensor("A", "INT64", [3], data=[1, 2]), r"input 'A': shape \[3\] needs 3"),
    (InputTensor("A", "INT64", [1], data=[1.5]), "input 'A': 1.5 is not a valid INT64"),
    (InputTensor("A", "INT64", [1], data=[True]), "input 'A': True is not a valid INT64"),
    (InputTensor("A", "INT64", [1], data=[2**70]), "input 'A': a value is out of"),
    (InputTensor("A", "INT64", [2], data=[[1], [2, 3]]), "input 'A': the data is not"),
    (InputTensor("A", "INT64", [1], raw=b"123"), "input 'A': 3 bytes is not a whole"),
    (InputTensor("A", "FOO", [1], data=[1]), "input 'A': unknown datatype 'FOO'"),
    (InputTensor("T", "BYTES", [1], data=[5]), "input 'T': 5 is not a valid BYTES"),
]


def test_input_decoding_raw_and_lists() -> None:
    nested = InputTensor("A", "INT32", [2, 2], data=[[1, 2], [3, 4]]).decode()
    assert nested.tolist() == [[1, 2], [3, 4]] and nested.dtype == np.int32
    assert InputTensor("T", "BYTES", [2], data=["a", "b"]).decode().tolist() == [b"a", b"b"]
    raw = np.array([1.5, 2.5], "<f4").tobytes()
    assert InputTensor("F", "FP32", [2], raw=raw).decode().tolist() == [1.5, 2.5]
    for tensor, message in DECODE_ERRORS:
        with pytest.raises(InvalidArgumentError, match=message):
            tensor.decode()


def test_models_answer(protocol: InferenceProtocol) -> None:
    assert infer(protocol, "encoder", text("ab", "abcd"))["EMBEDDING"][:, 0].tolist() == [2, 4]
    k = InputTensor("K", "INT32", [1], data=[5])
    out = infer(protocol, "recommender", int64("USER_ID", [1, 1]), k)
    assert out["ITEM_IDS"].tolist() == [[10, 20, 30, -1, -1]] * 2  # padded: 3 items only
    assert np.isnan(out["SCORES"][:, 3:]).all() and out["SCORES"].dtype == np.float32
    out = infer(protocol, "scorer", int64("USER_ID", [1]), int64("ITEM_IDS", [30, 10]))
    assert out["PROBABILITY"].tolist() == pytest.approx([0.3, 0.1])
    profiles = profile({"text": "abc", "history": [10]}, {"age": 30, "text": "abcdefg"})
    out = infer(protocol, "recommender", profiles, InputTensor("K", "INT32", [1], data=[2]))
    assert out["ITEM_IDS"].tolist() == [[3, -1], [7, -1]]  # each profile's own embedding


def profile(*bodies: dict[str, Any]) -> InputTensor:
    data = [json.dumps(b) for b in bodies]
    return InputTensor("PROFILE", "BYTES", [len(data)], data=data)


USER, ITEM = int64("USER_ID", [1]), int64("ITEM_IDS", [10])
FP32_ITEM = InputTensor("ITEM_IDS", "FP32", [1], data=[1.0])
K0 = InputTensor("K", "INT32", [1], data=[0])
INFER_ERRORS = [  # model, inputs, error, message
    ("nope", [], NotFoundError, "model 'nope' not found"),
    ("scorer", [USER], InvalidArgumentError, "input 'ITEM_IDS': required"),
    ("scorer", [USER, FP32_ITEM], InvalidArgumentError,
     "input 'ITEM_IDS': wrong datatype FP32, expected INT64"),
    ("scorer", [int64("USER_ID", [1, 2]), ITEM], InvalidArgumentError,
     r"input 'USER_ID': wrong shape \[2\], expected \[1\]"),
    ("scorer", [int64("USER_ID", [7]), ITEM], NotFoundError, "input 'USER_ID': unknown user_id 7"),
    ("scorer", [USER, int64("ITEM_IDS", [10, 99])], NotFoundError,
     "input 'ITEM_IDS': element 1: unknown item_id 99"),
    ("recommender", [int64("USER_ID", [1, 7])], NotFoundError,
     "input 'USER_ID': element 1: unknown user_id 7"),
    ("recommender", [USER, K0], InvalidArgumentError, "input 'K': must be an integer between 1"),
    ("recommender", [int64("USER_ID", [2])], NotReadyError, "still loading"),
    ("recommender", [int64("USER_ID", [])], InvalidArgumentError, "input 'USER_ID': wrong shape"),
    ("recommender", [USER, profile({"age": 3})], InvalidArgumentError,
     "input 'USER_ID': give exactly one of USER_ID or PROFILE"),
    ("recommender", [profile({"age": "old"})], InvalidArgumentError,
     "input 'PROFILE': element 0: age: Input should be a valid integer"),
    ("recommender", [profile({"user_id": 1})], InvalidArgumentError,
     "input 'PROFILE': element 0: user_id: a known user goes in USER_ID"),
    ("recommender", [profile({"age": 3}, {"history": [10, 99]})], NotFoundError,
     r"input 'PROFILE': element 1: history\[1\]: unknown item_id 99"),
    ("encoder", [text("a", " ")], InvalidArgumentError,
     "input 'TEXT': element 1: must be a non-empty string"),
    ("encoder", [text(b"\xff")], InvalidArgumentError, "input 'TEXT': element 0 is not UTF-8"),
    ("encoder", [text("a"), text("b")], InvalidArgumentError, "input 'TEXT': given more than once"),
    ("encoder", [InputTensor("X", "BYTES", [1], data=["a"])], InvalidArgumentError,
     "input 'X': model 'encoder' has no such input"),
    ("encoder", [text(*["a"] * 257)], InvalidArgumentError, "input 'TEXT': at most 256 elements"),
    ("encoder", [text("a" * 2001)], InvalidArgumentError,
     "input 'TEXT': element 0: at most 2000 characters, got 2001"),
    ("recommender", [int64("USER_ID", [1] * 256), InputTensor("K", "INT32", [1], data=[100])],
     InvalidArgumentError, "output 'ITEM_IDS': the response would be 317440 bytes"),
    ("scorer", [USER, int64("ITEM_IDS", [10] * 1001)], InvalidArgumentError,
     "input 'ITEM_IDS': at most 1000 elements, got 1001"),
]  # fmt: skip


@pytest.mark.parametrize(("model", "inputs", "error", "message"), INFER_ERRORS)
def test_errors_name_the_tensor(protocol, model, inputs, error, message) -> None:
    with pytest.raises(error, match=message):
        infer(protocol, model, *inputs)


def test_versions_and_request_size(protocol: InferenceProtocol) -> None:
    assert protocol.model("encoder", "int8-v1").metadata()["versions"] == ["int8-v1"]
    with pytest.raises(NotFoundError, match="model 'scorer' has no version 'v9'"):
        protocol.model("scorer", "v9")
    with pytest.raises(InvalidArgumentError, match="input 'TEXT': request of 5000 bytes is over"):
        check_request_size({"TEXT": 4900, "K": 4}, 5000, 4096)


class Client:
    """A synchronous face on httpx's ASGI transport (no server, no thread)."""

    def __init__(self, app: Any) -> None:
        self.transport = httpx.ASGITransport(app=app)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            async with httpx.AsyncClient(transport=self.transport, base_url="http://t") as c:
                return await c.request(method, url, **kwargs)

        return asyncio.run(call())


def test_v2_rest_app_json_binary_and_errors(protocol: InferenceProtocol) -> None:
    client = Client(create_app(lambda: protocol))
    assert client.request("GET", "/v2/health/ready").json() == {"ready": True}
    assert client.request("GET", "/v2/models/scorer/versions/hybrid-v2/ready").json()["ready"]
    assert client.request("GET", "/v2/models/nope").status_code == 404
    body: dict[str, Any] = {
        "id": "7",
        "inputs": [
            {"name": "USER_ID", "datatype": "INT64", "shape": [1], "data": [1]},
            {"name": "ITEM_IDS", "datatype": "INT64", "shape": [2],
             "parameters": {"binary_data_size": 16}},
        ],
        "outputs": [{"name": "PROBABILITY", "parameters": {"binary_data": True}}],
    }  # fmt: skip
    header = json.dumps(body).encode()
    resp = client.request(
        "POST",
        "/v2/models/scorer/infer",
        content=header + np.array([30, 10], "<i8").tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert resp.status_code == 200, resp.text
    size = int(resp.headers["inference-header-content-length"])
    meta = json.loads(resp.content[:size])
    assert meta["id"] == "7" and meta["outputs"][0]["parameters"] == {"binary_data_size": 8}
    assert np.frombuffer(resp.content[size:], "<f4").tolist() == pytest.approx([0.3, 0.1])

    body["inputs"][1] = {"name": "ITEM_IDS", "datatype": "INT64", "shape": [1], "data": [99]}
    body["outputs"] = []
    resp = client.request("POST", "/v2/models/scorer/infer", json=body)
    assert resp.status_code == 404
    assert resp.json() == {"error": "input 'ITEM_IDS': element 0: unknown item_id 99"}

    for bad, message in [
        (b"{", "request body: not a JSON inference request"),
        (b"[]", "expected an object with an 'inputs' list"),
        (b'{"inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [1]}]}', "no 'data'"),
        (b"x" * 9000, "more than twice the 4096-byte message limit"),
    ]:
        resp = client.request("POST", "/v2/models/encoder/infer", content=bad)
        assert resp.status_code == 400 and message in resp.json()["error"], resp.text
