"""Bounded admission, deadlines and draining, on a real one-worker server with small limits
(2 requests in flight, 2 queued): past them 429 + Retry-After / RESOURCE_EXHAUSTED, answered
at once; a request past its X-Request-Timeout is dropped before the encoder (408); SIGTERM lets
the requests in flight finish."""

from __future__ import annotations

import asyncio
import signal
import struct
import time

import grpc
import httpx
import pytest
from harness import Service, have_models, own_home, port_open, start_service, stop_service
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc

pytestmark = pytest.mark.skipif(not have_models(), reason="no models: run `make export` first")

SLOW = {"texts": [f"text {i}: " + "a fairly long sentence about films " * 12 for i in range(64)]}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Service:
    folder = tmp_path_factory.mktemp("overload")
    svc = start_service(
        folder / "serve.log", BENTOML_HOME=own_home(folder), ADREC_WORKERS="1",
        ADREC_MAX_CONCURRENT_REQUESTS="2", ADREC_MAX_QUEUED_REQUESTS="2",
        # the counts alone: the wait bound (tests/reliability/test_admission_unit.py) would
        # refuse the queued ones here, each behind a batch of 64 long texts
        ADREC_MAX_QUEUE_WAIT_MS="0", ADREC_BATCH_MAX_LATENCY_MS="60000",
    )  # fmt: skip
    yield svc
    stop_service(svc)


async def burst(url: str, n: int, body: dict, headers: dict | None = None) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=n)) as c:
        calls = [c.post(f"{url}/embed", json=body, headers=headers) for _ in range(n)]
        return await asyncio.gather(*calls)


def test_past_the_limits_http_answers_429_with_retry_after(small):
    responses = asyncio.run(burst(small.url, 16, SLOW))
    codes = sorted(r.status_code for r in responses)
    assert set(codes) == {200, 429}, codes
    assert codes.count(200) >= 4  # 2 in flight + 2 queued, at least
    for r in responses:
        if r.status_code == 429:
            assert r.headers["retry-after"] == "1"
            assert r.json()["detail"][0]["type"] == "too_many_requests"
            assert r.elapsed.total_seconds() < 5  # refused at once, not after the queue


def test_past_the_limits_grpc_answers_resource_exhausted(small):
    with grpc.insecure_channel(small.grpc) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = pb.ModelInferRequest(model_name="encoder")
        request.inputs.add(name="TEXT", datatype="BYTES", shape=[len(SLOW["texts"])])
        raw = b"".join(struct.pack("<I", len(t)) + t.encode() for t in SLOW["texts"])
        request.raw_input_contents.append(raw)
        calls = [stub.ModelInfer.future(request, timeout=120) for _ in range(16)]
        codes = []
        for call in calls:
            try:
                call.result()
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as err:
                codes.append(err.code())
    assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, codes


def test_a_request_past_its_deadline_is_dropped_before_the_encoder(small):
    with httpx.Client(base_url=small.url, timeout=120) as c:
        bad = c.post("/embed", json={"texts": ["a"]}, headers={"x-request-timeout": "soon"})
        assert bad.status_code == 400
        assert bad.json()["detail"][0]["loc"] == ["header", "x-request-timeout"]
        texts_before = c.get("/info").json()["batching"]["texts"]

    async def slow_then_hurried() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=small.url, timeout=120) as c:
            slow = asyncio.create_task(c.post("/embed", json=SLOW))
            await asyncio.sleep(0.05)  # the slow batch is running
            hurried = await c.post("/embed", json={"texts": ["in a hurry"]},
                                   headers={"x-request-timeout": "0.01"})  # fmt: skip
            return [await slow, hurried]

    slow, hurried = asyncio.run(slow_then_hurried())
    assert slow.status_code == 200
    assert hurried.status_code == 408, hurried.text
    assert hurried.json()["detail"][0]["type"] == "deadline_exceeded"
    texts_after = httpx.get(f"{small.url}/info", timeout=30).json()["batching"]["texts"]
    assert texts_after - texts_before == len(SLOW["texts"])  # the hurried text never ran


def test_sigterm_drains_the_requests_in_flight(small):
    done_at: list[float] = []

    async def post(c: httpx.AsyncClient) -> httpx.Response:
        r = await c.post("/embed", json=SLOW)
        done_at.append(time.monotonic())
        return r

    async def in_flight_then_sigterm() -> tuple[list[httpx.Response], float]:
        async with httpx.AsyncClient(base_url=small.url, timeout=120) as c:
            calls = [asyncio.create_task(post(c)) for _ in range(4)]  # 2 running, 2 queued
            await asyncio.sleep(0.3)
            sent = time.monotonic()
            small.proc.send_signal(signal.SIGTERM)
            return await asyncio.gather(*calls), sent

    responses, sigterm_at = asyncio.run(in_flight_then_sigterm())
    assert [r.status_code for r in responses] == [200] * 4, [r.text for r in responses]
    assert max(done_at) > sigterm_at  # some were still in flight when SIGTERM came
    small.proc.wait(60)
    assert small.proc.returncode == 0 and not port_open(small.port)
