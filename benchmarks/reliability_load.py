"""Load for the faults benchmark (benchmarks/reliability.py), recorded request by request.

A minimal HTTP/1.1 client over asyncio streams (keep-alive connections from a pool) instead
of httpx: the load generator shares the machine's 2 cores with the server, and at 4x the
saturating rate httpx alone would take a core (benchmarks/results/load.json: client_cpu_pct
~95% at ~300 requests/s). Two drivers: `closed_loop` (N clients, each sending its next request
when the previous one answered) and `open_loop` (Poisson arrivals at a fixed rate, however
the server keeps up: what overload is). Every request is recorded as (start, end, status);
`series` bins them per second: throughput of 200s, p99 of 200s, shed (429 / 503) and failed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Body = Callable[[random.Random], tuple[str, dict]]  # (path, JSON body)
FAILED = 0  # the status recorded for a connection error or a dropped connection
SHED = (429, 503)
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]
MAX_IDLE_S = 1.0  # uvicorn closes a kept-alive connection after 5 s idle


@dataclass
class Record:
    """Every request: when it was due (open loop) or sent, when it ended, and its status."""

    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    not_sent: int = 0  # open loop: arrivals beyond the client's connection cap

    def add(self, start: float, status: int) -> None:
        self.starts.append(start)
        self.ends.append(time.monotonic())
        self.statuses.append(status)


class Client:
    """Keep-alive HTTP/1.1 connections to 127.0.0.1:port, reused from a pool."""

    def __init__(self, port: int, max_age_s: float | None = None) -> None:
        """`max_age_s`: a connection that old is closed after its answer (as connection pools
        and balancers recycle them), so new connections reach a restarted worker too."""
        self.port, self.max_age_s = port, max_age_s
        self.idle: list[tuple[Conn, float]] = []
        self.opened: dict[int, float] = {}  # id(writer) -> when the connection was opened

    async def post(self, path: str, payload: dict) -> int:
        body = json.dumps(payload).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()  # fmt: skip
        # A connection idle for a while may be closed by the server (keep-alive timeout) just
        # as it is reused: open a new one instead. No retries: a failure is a failure.
        conn = None
        while self.idle and conn is None:
            candidate, since = self.idle.pop()
            if time.monotonic() - since < MAX_IDLE_S:
                conn = candidate
            else:
                candidate[1].close()
        if conn is None:
            try:
                conn = await self._open()
            except OSError:
                return FAILED
        return await self._send(conn, head + body)

    async def _send(self, conn: Conn, head_body: bytes) -> int:
        reader, writer = conn
        try:
            writer.write(head_body)
            raw = await reader.readuntil(b"\r\n\r\n")
            status = int(raw.split(b" ", 2)[1])
            headers = raw.lower()
            length = int(headers.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
            writer.close()
            return FAILED
        except asyncio.CancelledError:  # the client gave up: the connection is unusable
            writer.close()
            raise
        opened = self.opened.get(id(writer), 0.0)
        too_old = self.max_age_s is not None and time.monotonic() - opened > self.max_age_s
        if b"connection: close" in headers or too_old:
            self.opened.pop(id(writer), None)
            writer.close()
        else:
            self.idle.append((conn, time.monotonic()))
        return status

    async def _open(self) -> Conn:
        conn = await asyncio.open_connection("127.0.0.1", self.port)
        self.opened[id(conn[1])] = time.monotonic()
        return conn

    def close(self) -> None:
        for (_, writer), _ in self.idle:
            writer.close()
        self.idle.clear()


async def closed_loop(
    client: Client, body: Body, concurrency: int, duration_s: float, record: Record, seed: int = 0
) -> None:
    deadline = time.monotonic() + duration_s

    async def user(uid: int) -> None:
        rng = random.Random(seed * 10_000 + uid)
        while time.monotonic() < deadline:
            path, payload = body(rng)
            start = time.monotonic()
            try:
                status = await client.post(path, payload)
            except OSError:
                status = FAILED
            record.add(start, status)

    await asyncio.gather(*(user(u) for u in range(concurrency)))


async def open_loop(
    client: Client,
    body: Body,
    rate: float,
    duration_s: float,
    record: Record,
    max_outstanding: int = 2000,
    seed: int = 0,
) -> None:
    """Poisson arrivals at `rate` per second for `duration_s`; a request's latency counts from
    when it was due (no coordinated omission). At the end, requests still unanswered are given
    up (their connections closed), as clients with a timeout would."""
    rng = random.Random(seed)
    pending: set[asyncio.Task[None]] = set()

    async def one(due: float, path: str, payload: dict) -> None:
        record.add(due, await client.post(path, payload))

    t0 = time.monotonic()
    due = t0
    while due < t0 + duration_s:
        now = time.monotonic()
        while due <= now:
            if len(pending) < max_outstanding:
                task = asyncio.create_task(one(due, *body(rng)))
                pending.add(task)
                task.add_done_callback(pending.discard)
            else:
                record.not_sent += 1
            due += rng.expovariate(rate)
        await asyncio.sleep(min(0.002, max(0.0, due - time.monotonic())))
    for task in list(pending):
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def series(record: Record, t0: float, t1: float, bin_s: float = 1.0) -> dict[str, list]:
    """Per bin of `bin_s` from t0 to t1, by end time: ok/s, p99 of the ok ones (ms), shed/s,
    failed/s."""
    ends, starts = np.asarray(record.ends), np.asarray(record.starts)
    statuses = np.asarray(record.statuses)
    edges = np.arange(t0, t1 + bin_s, bin_s)
    out: dict[str, list] = {"t_s": [], "ok_per_s": [], "p99_ms": [], "shed_per_s": [],
                            "failed_per_s": []}  # fmt: skip
    for lo, hi in itertools.pairwise(edges):
        inside = (ends >= lo) & (ends < hi)
        ok = inside & (statuses == 200)
        lat = (ends[ok] - starts[ok]) * 1e3
        out["t_s"].append(round(float(hi - t0), 2))
        out["ok_per_s"].append(round(int(ok.sum()) / bin_s, 1))
        out["p99_ms"].append(round(float(np.percentile(lat, 99)), 1) if lat.size else None)
        out["shed_per_s"].append(round(int((inside & np.isin(statuses, SHED)).sum()) / bin_s, 1))
        failed = inside & (statuses != 200) & ~np.isin(statuses, SHED)
        out["failed_per_s"].append(round(int(failed.sum()) / bin_s, 1))
    return out


def summary(record: Record, t0: float, t1: float) -> dict[str, Any]:
    """Counts and latency percentiles (ms) of the accepted (200) requests ending in [t0, t1)."""
    ends, starts = np.asarray(record.ends), np.asarray(record.starts)
    statuses = np.asarray(record.statuses)
    inside = (ends >= t0) & (ends < t1)
    ok = inside & (statuses == 200)
    lat = (ends[ok] - starts[ok]) * 1e3
    n = int(inside.sum())
    shed = int((inside & np.isin(statuses, SHED)).sum())
    pct = {f"p{q}_ms": round(float(np.percentile(lat, q)), 1) if lat.size else None
           for q in (50, 99)}  # fmt: skip
    return {
        "requests": n,
        "ok": int(ok.sum()),
        "shed": shed,
        "failed": n - int(ok.sum()) - shed,
        "statuses": {str(s): int((statuses[inside] == s).sum()) for s in set(statuses[inside])},
        "ok_per_s": round(int(ok.sum()) / (t1 - t0), 1),
        **pct,
    }
