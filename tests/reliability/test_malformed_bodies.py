"""Malformed bodies of every kind get a 4xx, quickly, in the one error shape, and leave the
server's memory flat: truncated JSON, the wrong content type, deep nesting, integers past int64,
NaN / Infinity, 10 MB bodies with and without a Content-Length."""

from __future__ import annotations

import time

import httpx
import pytest
from harness import MIB, Service, tree_rss

JSON = {"content-type": "application/json"}
BIG_INT = "1" + "0" * 400
MALFORMED = [
    ("/recommend", b'{"user_id": 1', JSON),
    ("/recommend", b'<user id="1"/>', {"content-type": "application/xml"}),
    ("/recommend", b"[" * 100_000, JSON),
    ("/recommend", b'{"history": ' + b"[" * 5000 + b"]" * 5000 + b"}", JSON),
    ("/recommend", f'{{"user_id": {BIG_INT}}}'.encode(), JSON),
    ("/recommend", b'{"history": [99999999999999999999999]}', JSON),
    ("/similar_items", b'{"item_id": 99999999999999999999}', JSON),
    ("/score", b'{"user_id": -9223372036854775809, "item_ids": [1]}', JSON),
    ("/recommend", b'{"user_id": NaN}', JSON),
    ("/recommend", b'{"age": Infinity}', JSON),
    ("/recommend", b'{"user_id": 1, "k": 1e400}', JSON),
    ("/embed", b'{"texts": ["\\ud800"]}', JSON),  # a lone surrogate
    ("/embed", b'{"texts": ["\xff\xfe"]}', JSON),  # not UTF-8
    ("/embed", b"", JSON),
]


@pytest.mark.parametrize(("path", "body", "headers"), MALFORMED)
def test_malformed_bodies_get_a_4xx_in_the_one_shape(service: Service, path, body, headers):
    r = httpx.post(f"{service.url}{path}", content=body, headers=headers, timeout=30)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    payload = r.json()
    assert set(payload) == {"error", "detail"} and payload["detail"][0]["loc"], payload


def test_ten_megabyte_bodies_are_refused_fast_and_memory_stays_flat(service: Service):
    body = b'{"texts": ["' + b"x" * (10 * MIB) + b'"]}'

    def chunks():
        for i in range(0, len(body), MIB):
            yield body[i : i + MIB]

    with httpx.Client(base_url=service.url, timeout=60) as c:
        c.post("/embed", content=body, headers=JSON)  # warm whatever allocates once
        before = tree_rss(service.proc.pid)
        for _ in range(10):
            t0 = time.monotonic()
            assert c.post("/embed", content=body, headers=JSON).status_code == 413
            assert c.post("/embed", content=chunks(), headers=JSON).status_code == 413
            assert time.monotonic() - t0 < 10
        after = tree_rss(service.proc.pid)
        assert c.post("/embed", json={"texts": ["still serving"]}).status_code == 200
    assert after - before < 50 * MIB, (before / MIB, after / MIB)
