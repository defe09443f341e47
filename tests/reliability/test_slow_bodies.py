"""Slow-loris bodies against a real one-worker server, over raw sockets: a body trickled at a
few bytes a second, or stalled midway, is answered 408 in the error shape once the body deadline
(ADREC_BODY_TIMEOUT_MS, 1 s here) passes, and the connection closed; 60 such clients at once
take no admission slot (4 here), so normal requests keep being served, and memory stays flat."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from harness import MIB, Service, have_models, own_home, start_service, stop_service, tree_rss

pytestmark = pytest.mark.skipif(not have_models(), reason="no models: run `make export` first")

BODY = json.dumps({"user_id": 1, "k": 5}).encode()
TIMEOUT_S = 1.0
SLOTS = 4  # admission slots; the slow clients outnumber them 15 to 1
RESET = -1  # the connection was reset after the server closed it (see slow_client)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Service:
    folder = tmp_path_factory.mktemp("slow-bodies")
    svc = start_service(
        folder / "serve.log", BENTOML_HOME=own_home(folder), ADREC_WORKERS="1",
        ADREC_BODY_TIMEOUT_MS=str(int(TIMEOUT_S * 1000)),
        ADREC_MAX_CONCURRENT_REQUESTS=str(SLOTS), ADREC_MAX_QUEUED_REQUESTS="1",
        ADREC_BATCH_MAX_LATENCY_MS="30000",
    )  # fmt: skip
    yield svc
    stop_service(svc)


async def slow_client(port: int, gap_s: float, stall_after: int | None = None) -> dict:
    """POST /recommend with a Content-Length, then the body one byte every `gap_s` (or
    `stall_after` bytes and then nothing); the status, the body and when the answer came."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /recommend HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    )
    t0 = time.monotonic()
    writer.write(head.encode())
    await writer.drain()

    async def trickle() -> None:
        for i, byte in enumerate(BODY):
            if stall_after is not None and i >= stall_after:
                await asyncio.sleep(3600)
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(gap_s)

    sender = asyncio.create_task(trickle())
    chunks: list[bytes] = []

    async def read_all() -> None:
        while chunk := await reader.read(65536):  # until the server closes
            chunks.append(chunk)

    try:
        await asyncio.wait_for(read_all(), timeout=30)
        answer = b"".join(chunks)
    except ConnectionResetError:
        # The server closed with the rest of the body unread and the client kept sending: the
        # kernel answers RST, which can drop the 408 before this client (one of many on a busy
        # loop) read it. Chunks read before the RST still count; none read: cut off all the same.
        answer = b"".join(chunks) or b"RESET"
    finally:
        sender.cancel()
        writer.close()
    took = time.monotonic() - t0
    head_part, _, body = answer.partition(b"\r\n\r\n")
    status = RESET if answer == b"RESET" else int(head_part.split()[1]) if head_part else 0
    return {"status": status, "head": head_part.decode().lower(), "body": body, "took": took}


def test_a_trickled_body_gets_408_at_the_deadline(server: Service):
    got = asyncio.run(slow_client(server.port, gap_s=0.25))  # 4 bytes/s: 6 s for this body
    assert got["status"] == 408, got
    assert "connection: close" in got["head"]
    payload = json.loads(got["body"])
    assert payload["detail"][0]["loc"] == ["body"]
    assert payload["detail"][0]["type"] == "body_timeout"
    assert TIMEOUT_S * 0.9 < got["took"] < TIMEOUT_S + 5  # at the deadline (+ a busy machine)


def test_a_body_stalled_midway_gets_408_at_the_deadline(server: Service):
    got = asyncio.run(slow_client(server.port, gap_s=0.0, stall_after=len(BODY) // 2))
    assert got["status"] == 408, got
    assert f"({len(BODY) // 2} bytes received)" in json.loads(got["body"])["error"]
    assert got["took"] < TIMEOUT_S + 5


async def crowd_and_normal(url: str, port: int, n_slow: int, n_normal: int) -> tuple:
    """`n_slow` slow clients mid-body, then `n_normal` requests one after another; the slow
    clients' answers, the normal responses and when the first normal one was answered."""
    slow = [asyncio.create_task(slow_client(port, gap_s=1.0)) for _ in range(n_slow)]
    await asyncio.sleep(0.3)  # every slow client is mid-body (1 byte/s)
    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        normal = [await c.post("/recommend", json={"user_id": 1, "k": 5})]
        first_at = time.monotonic()
        for i in range(1, n_normal):
            normal.append(await c.post("/recommend", json={"user_id": 1 + i, "k": 5}))
    return await asyncio.gather(*slow), normal, first_at


def test_many_slow_clients_do_not_stop_normal_requests(server: Service):
    before = None
    for i in range(4):
        if i == 1:  # after a first round: whatever allocates once has
            before = tree_rss(server.proc.pid)
        t0 = time.monotonic()
        slow, normal, first_at = asyncio.run(
            crowd_and_normal(server.url, server.port, n_slow=60, n_normal=20)
        )
        # 60 clients mid-body and 4 slots: had they held slots, these would be 429
        assert [r.status_code for r in normal] == [200] * 20, [r.text for r in normal]
        statuses = [s["status"] for s in slow]  # every one cut off, none served or left open
        assert set(statuses) <= {408, RESET} and 408 in statuses, statuses
        # the first normal answer came while every slow client was still connected
        assert first_at - t0 < min(s["took"] for s in slow)
        assert max(s["took"] for s in slow) < TIMEOUT_S + 10  # all cut off, none left hanging
    after = tree_rss(server.proc.pid)
    assert after - before < 30 * MIB, (before / MIB, after / MIB)
    assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
