"""Hypothesis-generated ModelInfer requests over a real gRPC channel to the session's server:
wrong dtypes and shapes, empty and oversized tensors, unknown models and inputs, garbage raw
bytes, non-UTF-8 text. None may be answered UNKNOWN or INTERNAL (an unhandled error), and the
server keeps serving afterwards."""

from __future__ import annotations

import struct
from collections import Counter

import grpc
import pytest
from harness import MIB, Service
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc

from rec_models.serving.oip.codecs import CONTENTS_FIELD, DATATYPES

BUGS = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
MODELS = ["encoder", "recommender", "scorer"]
INPUTS = ["TEXT", "USER_ID", "PROFILE", "K", "ITEM_IDS"]
TIMEOUT_S = 60
SEEN: Counter[str] = Counter()  # status codes the generated requests got (checked at the end)


@pytest.fixture(scope="module")
def stub(service: Service):
    options = [("grpc.max_send_message_length", 64 * MIB)]
    with grpc.insecure_channel(service.grpc, options=options) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def length_prefixed(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(b)) + b for b in items)


non_utf8 = st.sampled_from([b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"ok\x80"])
texts = st.one_of(st.binary(max_size=40), non_utf8, st.text(max_size=40).map(str.encode))
raw = st.one_of(
    st.binary(max_size=64),  # garbage
    st.lists(texts, max_size=5).map(length_prefixed),  # BYTES, maybe not UTF-8 or JSON
    st.integers(-(2**63), 2**63 - 1).map(lambda v: struct.pack("<q", v)),
    st.just(b""),
)
dims = st.integers(-3, 6) | st.integers(-(2**63), 2**63 - 1)
shapes = st.lists(dims, max_size=3)


@st.composite
def tensors(draw: st.DrawFn) -> pb.ModelInferRequest.InferInputTensor:
    name = draw(st.sampled_from(INPUTS) | st.text(max_size=8))
    datatype = draw(st.sampled_from(sorted(DATATYPES)) | st.text(max_size=6))
    tensor = pb.ModelInferRequest.InferInputTensor(name=name, datatype=datatype)
    tensor.shape.extend(draw(shapes))
    field = CONTENTS_FIELD.get(draw(st.sampled_from(sorted(CONTENTS_FIELD))))
    values = {
        "bool_contents": st.lists(st.booleans(), max_size=4),
        "int_contents": st.lists(st.integers(-(2**31), 2**31 - 1), max_size=4),
        "int64_contents": st.lists(st.integers(-(2**63), 2**63 - 1), max_size=4),
        "uint_contents": st.lists(st.integers(0, 2**32 - 1), max_size=4),
        "uint64_contents": st.lists(st.integers(0, 2**64 - 1), max_size=4),
        "fp32_contents": st.lists(st.floats(width=32), max_size=4),
        "fp64_contents": st.lists(st.floats(), max_size=4),
        "bytes_contents": st.lists(texts, max_size=4),
    }[field]
    getattr(tensor.contents, field).extend(draw(values))
    return tensor


@st.composite
def requests(draw: st.DrawFn) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(
        model_name=draw(st.sampled_from(MODELS) | st.text(max_size=10)),
        model_version=draw(st.sampled_from(["", "1", "latest"]) | st.text(max_size=6)),
        id=draw(st.text(max_size=8)),
    )
    inputs = draw(st.lists(tensors(), max_size=4))
    request.inputs.extend(inputs)
    if draw(st.booleans()):  # raw contents: as many as inputs, or a mismatching count
        count = draw(st.sampled_from([len(inputs), len(inputs) + 1, max(0, len(inputs) - 1)]))
        request.raw_input_contents.extend(draw(st.lists(raw, min_size=count, max_size=count)))
        for t in request.inputs:
            t.ClearField("contents")
    for name in draw(st.lists(st.sampled_from(["EMBEDDING", "ITEM_IDS", "X"]), max_size=2)):
        request.outputs.add(name=name)
    return request


@settings(
    max_examples=150, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)  # fmt: skip
@given(request=requests())
def test_generated_requests_never_answer_unknown_or_internal(stub, request):
    try:
        stub.ModelInfer(request, timeout=TIMEOUT_S)
    except grpc.RpcError as err:
        SEEN[err.code().name] += 1
        assert err.code() not in BUGS, (err.code(), err.details(), request)
    else:
        SEEN["OK"] += 1


def test_oversized_and_edge_tensors(stub, service: Service):
    def call(request: pb.ModelInferRequest) -> grpc.StatusCode:
        try:
            stub.ModelInfer(request, timeout=TIMEOUT_S)
        except grpc.RpcError as err:
            return err.code()
        return grpc.StatusCode.OK

    def text_request(raw_text: bytes, shape: list[int]) -> pb.ModelInferRequest:
        request = pb.ModelInferRequest(model_name="encoder")
        request.inputs.add(name="TEXT", datatype="BYTES", shape=shape)
        request.raw_input_contents.append(raw_text)
        return request

    # Over the 4 MiB message limit (the session's server): INVALID_ARGUMENT naming the input;
    # over twice the limit: refused by gRPC itself before it is read.
    assert call(text_request(length_prefixed([b"a" * (5 * MIB)]), [1])) in {
        grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}  # fmt: skip
    assert call(text_request(b"x" * (9 * MIB), [1])) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert call(text_request(b"", [0])) == grpc.StatusCode.INVALID_ARGUMENT  # empty tensor
    many = length_prefixed([b"a"] * 10_000)  # more texts than a request may carry
    assert call(text_request(many, [10_000])) == grpc.StatusCode.INVALID_ARGUMENT
    assert call(text_request(length_prefixed([b"\xff\xfe"]), [1])) == (
        grpc.StatusCode.INVALID_ARGUMENT)  # fmt: skip


def test_the_server_keeps_serving_after_the_fuzz(stub, service: Service):
    # The generated requests reached the model lookup, the tensor checks and inference.
    assert {"NOT_FOUND", "INVALID_ARGUMENT"} <= set(SEEN), SEEN
    assert "ModelInfer failed" not in service.log.read_text(errors="replace")
    assert stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live
    request = pb.ModelInferRequest(model_name="encoder")
    request.inputs.add(name="TEXT", datatype="BYTES", shape=[1])
    request.raw_input_contents.append(length_prefixed([b"a space opera"]))
    response = stub.ModelInfer(request, timeout=TIMEOUT_S)
    assert response.outputs[0].name == "EMBEDDING" and response.outputs[0].shape[0] == 1
