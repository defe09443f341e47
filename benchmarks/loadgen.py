"""Closed-loop asyncio load: `concurrency` clients, each sending its next request as soon as the
previous one answered (saturation), or after a think time (exponential, mean `think_s`: that
many users each sending about one request per think time), bounded by time and request count.
HTTP via httpx.AsyncClient, gRPC via tritonclient.grpc.aio (Open Inference Protocol `encoder`).
"""

from __future__ import annotations

import asyncio
import random
import resource
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from benchmarks.stats import summarize

Send = Callable[[random.Random], Awaitable[None]]  # raises on an error answer


class ErrorAnswer(Exception):
    """A non-2xx answer (its status) or a gRPC error (its code)."""


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def closed_loop(
    send: Send,
    concurrency: int,
    duration_s: float,
    max_requests: int,
    seed: int = 0,
    think_s: float = 0.0,
) -> dict[str, Any]:
    """RPS, latency percentiles of successful requests, error counts, and the load generator's
    own CPU time (it shares the 2 cores with the server)."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    issued = 0
    warm = [send(random.Random(seed + i)) for i in range(min(concurrency, 8))]
    await asyncio.gather(*warm, return_exceptions=True)  # connections, first allocations
    cpu0, t0 = _cpu_s(), time.perf_counter()
    deadline = t0 + duration_s

    async def client(cid: int) -> None:
        nonlocal issued
        rng = random.Random(seed * 1000 + cid)
        if think_s:
            await asyncio.sleep(rng.uniform(0, think_s))  # users do not start in step
        while time.perf_counter() < deadline and issued < max_requests:
            issued += 1
            start = time.perf_counter()
            try:
                await send(rng)
            except ErrorAnswer as exc:
                errors[str(exc)[:80]] += 1
                continue
            except Exception as exc:
                errors[type(exc).__name__] += 1
                continue
            latencies.append((time.perf_counter() - start) * 1e3)
            if think_s:
                await asyncio.sleep(rng.expovariate(1 / think_s))

    await asyncio.gather(*(client(c) for c in range(concurrency)))
    elapsed = time.perf_counter() - t0
    return {
        "concurrency": concurrency,
        "think_s": think_s,
        "requests": issued,
        "ok": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors.most_common(3)),
        "seconds": round(elapsed, 2),
        "rps": round(len(latencies) / elapsed, 1),
        "client_cpu_pct": round(100 * (_cpu_s() - cpu0) / elapsed, 1),
        **summarize(latencies),
    }


def http_sender(client: Any, path: str, body: Callable[[random.Random], dict]) -> Send:
    async def send(rng: random.Random) -> None:
        resp = await client.post(path, json=body(rng))
        if resp.status_code != 200:
            raise ErrorAnswer(f"HTTP {resp.status_code}")
        resp.read()

    return send


def grpc_encoder_sender(clients: Any, texts: Callable[[random.Random], list[str]]) -> Send:
    """`clients`: one tritonclient aio client or several (one channel each: a channel is one
    connection, so one server worker; several spread the load like independent clients do)."""
    pool = clients if isinstance(clients, list) else [clients]
    from tritonclient.grpc import InferInput, InferRequestedOutput
    from tritonclient.utils import InferenceServerException

    outputs = [InferRequestedOutput("EMBEDDING")]

    async def send(rng: random.Random) -> None:
        batch = texts(rng)
        data = np.array([t.encode() for t in batch], dtype=np.object_)
        inp = InferInput("TEXT", [len(batch)], "BYTES")
        inp.set_data_from_numpy(data)
        try:
            client = pool[rng.randrange(len(pool))]
            result = await client.infer("encoder", [inp], outputs=outputs, client_timeout=60)
        except InferenceServerException as exc:
            raise ErrorAnswer(f"gRPC {exc.status()}") from None
        if result.as_numpy("EMBEDDING").shape[0] != len(batch):
            raise ErrorAnswer("gRPC wrong row count")

    return send


class Requests:
    """Request bodies drawn from the served catalog and the real texts."""

    def __init__(self, catalog: dict[str, Any], texts: list[str]) -> None:
        self.user_ids = [int(u["user_id"]) for u in catalog["users"]]
        self.item_ids = [int(i["item_id"]) for i in catalog["items"]]
        self.occupations = sorted({u.get("occupation") or "other" for u in catalog["users"]})
        self.texts = texts

    def known(self, rng: random.Random) -> dict:
        return {"user_id": rng.choice(self.user_ids), "k": 10}

    def cold(self, rng: random.Random) -> dict:
        return {
            "age": rng.randint(18, 70),
            "gender": rng.choice("FM"),
            "occupation": rng.choice(self.occupations),
            "history": rng.sample(self.item_ids, 5),
            "text": rng.choice(self.texts)[:300],
            "k": 10,
        }

    def score(self, rng: random.Random, n: int = 100) -> dict:
        return {"user_id": rng.choice(self.user_ids), "item_ids": rng.sample(self.item_ids, n)}

    def embed_texts(self, n: int) -> Callable[[random.Random], list[str]]:
        return lambda rng: rng.sample(self.texts, n)

    def embed(self, n: int) -> Callable[[random.Random], dict]:
        pick = self.embed_texts(n)
        return lambda rng: {"texts": pick(rng)}
