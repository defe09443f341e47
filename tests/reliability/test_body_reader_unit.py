"""The body reader in front of admission (rec_models/serving/body.py), driven over ASGI without a
server: a trickled or stalled body is 408 once the body deadline passes, and while it trickles
it holds no admission slot; a complete body is replayed to the route unchanged."""

from __future__ import annotations

import asyncio
import json
import time

from rec_models.serving.admission import Admission, AdmissionMiddleware
from rec_models.serving.body import BodyReader

SCOPE = {"type": "http", "method": "POST", "path": "/embed", "headers": []}


async def echo(scope, receive, send) -> None:
    """A route that reads its whole body and answers its size."""
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = json.dumps({"bytes": size}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def trickle(chunks: list[bytes], gap_s: float, stall: bool = False):
    """receive(): one chunk every `gap_s`; with `stall`, nothing after the chunks (a client
    that stopped sending mid-body)."""
    queue = list(chunks)

    async def receive():
        if not queue:
            await asyncio.sleep(3600 if stall else 0)
            return {"type": "http.disconnect"}
        await asyncio.sleep(gap_s)
        chunk = queue.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(queue) or stall}

    return receive


async def call(app, receive, headers=()) -> tuple[int, dict, dict, float]:
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    t0 = time.monotonic()
    await app({**SCOPE, "headers": list(headers)}, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), json.loads(body), time.monotonic() - t0


def test_a_trickled_body_is_408_at_the_deadline_in_the_error_shape():
    app = BodyReader(echo, max_bytes=1 << 20, timeout_s=0.3)
    receive = trickle([b"x"] * 100, gap_s=0.05)  # 1 byte per 50 ms: 5 s for the whole body
    status, headers, body, took = asyncio.run(call(app, receive))
    assert status == 408 and headers[b"connection"] == b"close"
    assert body["detail"][0] == {
        "loc": ["body"],
        "msg": body["detail"][0]["msg"],
        "type": "body_timeout",
    }
    assert "within 0.3 s" in body["error"]
    assert 0.25 < took < 2.0  # at the deadline, not after the body


def test_a_stalled_body_is_408_at_the_deadline():
    app = BodyReader(echo, max_bytes=1 << 20, timeout_s=0.2)
    status, _, body, took = asyncio.run(call(app, trickle([b'{"texts": '], 0.0, stall=True)))
    assert status == 408 and "(10 bytes received)" in body["error"]
    assert took < 2.0


def test_a_complete_body_is_replayed_and_limits_hold():
    app = BodyReader(echo, max_bytes=100, timeout_s=5)
    assert asyncio.run(call(app, trickle([b"x" * 30] * 3, 0.01)))[2] == {"bytes": 90}
    status, _, body, _ = asyncio.run(call(app, trickle([b"x" * 30] * 4, 0.0)))
    assert status == 413 and body["detail"][0]["type"] == "payload_too_large"
    declared = [(b"content-length", b"101")]
    status, _, body, _ = asyncio.run(call(app, trickle([b"x" * 101], 0.0), declared))
    assert status == 413 and "(101 bytes;" in body["error"]


def test_an_exempt_route_gets_its_large_body_to_refuse_itself():
    app = BodyReader(echo, max_bytes=10, timeout_s=5, exempt=("/embed",), exempt_ceiling=50)
    assert asyncio.run(call(app, trickle([b"x" * 30] * 3, 0.0)))[2] == {"bytes": 90}


def test_a_trickling_client_holds_no_admission_slot():
    """One slot, no queue: with the body read first, a normal request is served while a slow
    one trickles; with admission first (the old order) it would be refused 429."""
    admission = Admission(max_concurrent=1, max_queued=0)
    app = BodyReader(AdmissionMiddleware(echo, admission), max_bytes=1 << 20, timeout_s=0.5)

    async def both():
        slow = asyncio.create_task(call(app, trickle([b"x"] * 100, gap_s=0.05)))
        await asyncio.sleep(0.1)  # the slow body is arriving
        fast = await call(app, trickle([b"x" * 10], 0.0))
        return await slow, fast, admission.active

    slow, fast, active_after = asyncio.run(both())
    assert fast[0] == 200 and fast[2] == {"bytes": 10}
    assert slow[0] == 408 and active_after == 0

    old_order = AdmissionMiddleware(BodyReader(echo, 1 << 20, 0.5), Admission(1, 0))

    async def both_old():
        slow = asyncio.create_task(call(old_order, trickle([b"x"] * 100, gap_s=0.05)))
        await asyncio.sleep(0.1)
        fast = await call(old_order, trickle([b"x" * 10], 0.0))
        await slow
        return fast

    assert asyncio.run(both_old())[0] == 429  # the check above can fail
