"""The feedback loop on the real service: impression-logging overhead, and the hot swap.

0. In the worker, what FeedbackLoop.route + log cost per 10-item answer (a real SQLiteSink).
1. Impression logging overhead: two services run side by side over the same models, one
   logging every /recommend item to its SQLite event log, one with ADREC_EVENT_LOG=0; rounds
   alternate between them (known users, k=10, closed loop at 1 and 32 clients), so both see the
   same machine load. Reported: the medians over rounds and the on/off ratio.
2. Hot swap: the logging service serves scorer version 1 of a two-version store; 32 clients
   run while POST /admin/reload switches to version 2. Reported: requests, failures, p50/p99
   over the whole run and over the swap window (reload sent -> the last answer from version 1).

`python -m benchmarks.feedback_loop [--full]`; writes benchmarks/results/feedback_loop.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.loadgen import Requests, closed_loop, http_sender
from benchmarks.machine import Run, load_average
from benchmarks.server import Service, bentoml_home, catalog
from benchmarks.stats import summarize
from benchmarks.versions_store import two_version_store

KEY = "bench-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}  # the key guards every route but the health probes


async def measure(url: str, concurrency: int, seconds: float, requests: Requests) -> dict:
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=60) as client:
        send = http_sender(client, "/recommend", requests.known)
        return await closed_loop(send, concurrency, seconds, 10**9)


async def swap(url: str, users: list[int], seconds_before: float) -> dict[str, Any]:
    """32 clients; reload after `seconds_before`; stop 2 s after the last version-1 answer."""
    results: list[tuple[float, float, int | str, str | None]] = []  # (sent, latency, status, v)
    stop = asyncio.Event()

    async def client(cid: int) -> None:
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=60) as c:
            i = cid
            while not stop.is_set():
                i += 32
                t0 = time.perf_counter()
                try:
                    r = await c.post("/recommend", json={"user_id": users[i % len(users)]})
                    version = r.json().get("model_version") if r.status_code == 200 else None
                    results.append((t0, time.perf_counter() - t0, r.status_code, version))
                except httpx.HTTPError as exc:
                    results.append((t0, time.perf_counter() - t0, type(exc).__name__, None))

    tasks = [asyncio.create_task(client(c)) for c in range(32)]
    await asyncio.sleep(seconds_before)
    sent = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=60) as c:
        r = await c.post("/admin/reload")
    answer = r.json()
    before = {answer["previous"]}
    deadline = sent + 300
    while time.perf_counter() < deadline:
        recent = [v for t, *_, v in results[-400:] if t > sent]
        if len(recent) >= 200 and set(recent[-200:]) == {answer["version"]}:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(2.0)
    stop.set()
    await asyncio.gather(*tasks)
    # The swap window: from the reload request to the last answer any worker gave from the
    # old version (answers complete out of order: by completion time).
    old = [t + lat for t, lat, _, v in results if v in before]
    window_end = max(max(old), sent) if old else sent
    failed = [r for r in results if r[2] != 200]
    in_window = [lat * 1e3 for t, lat, _, _ in results if sent <= t + lat <= window_end]
    new = [t + lat for t, lat, _, v in results if v == answer["version"]]
    return {
        "reload": answer,
        "requests": len(results),
        "failed": len(failed),
        "failure_kinds": sorted({str(r[2]) for r in failed}),
        "old_version_answers_after_reload": sum(1 for t in old if t > sent),
        "first_new_answer_s": round(min(new) - sent, 2) if new else None,
        "swap_window_s": round(window_end - sent, 2),
        "all": summarize([lat * 1e3 for _, lat, _, _ in results]),
        "during_swap": summarize(in_window),
        "versions_seen": sorted({str(v) for *_, v in results}),
    }


def log_cost(n: int = 3000) -> dict[str, Any]:
    """What impression logging adds to one /recommend inside the worker: FeedbackLoop.route +
    log of a 10-item answer into a real SQLiteSink (the writer thread running), per call."""
    import numpy as np

    from rec_models.events import EventLogSettings, SQLiteSink
    from rec_models.serving.feedback import FeedbackLoop
    from rec_models.serving.runtime import Recommendation

    recs = [Recommendation(i, f"item {i}", 1.0 / i) for i in range(1, 11)]
    probs = np.linspace(0.9, 0.1, 10)
    rt = type("R", (), {"source": {"tag": "adrec-scorer:1"}})()
    with tempfile.TemporaryDirectory() as tmp:
        sink = SQLiteSink(Path(tmp) / "events.sqlite", EventLogSettings())
        loop = FeedbackLoop(sink, None, None, lambda: "int8")
        timings = []
        for i in range(n):
            t0 = time.perf_counter()
            loop.log(loop.route(1 + i % 900, rt), recs, probs)
            timings.append((time.perf_counter() - t0) * 1e3)
        sink.flush(30)
        written = sink.counters().impressions_written
        sink.close()
    return {"calls": n, "rows_written": written, **summarize(timings)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="longer rounds, more of them")
    parser.add_argument("--rounds", type=int, default=0, help="alternating rounds (default 3)")
    args = parser.parse_args()
    rounds = args.rounds or (5 if args.full else 3)
    seconds = 20.0 if args.full else 8.0
    run = Run("feedback_loop", args.full)
    in_process = log_cost()
    print(f"route + log per /recommend, in process: {in_process}", flush=True)
    requests = Requests(catalog(), ["unused"])
    with tempfile.TemporaryDirectory(prefix="adrec-loop-") as tmp:
        home, first = two_version_store(bentoml_home(), Path(tmp))
        common = {"BENTOML_HOME": str(home), "ADREC_SCORER_TAG": f"adrec-scorer:{first}",
                  "ADREC_API_KEY": KEY, "ADREC_RELOAD_POLL_MS": "200"}  # fmt: skip
        on_env = common | {"ADREC_EVENTS_PATH": f"{tmp}/on/events.sqlite"}
        off_env = common | {"ADREC_EVENT_LOG": "0", "ADREC_EVENTS_PATH": f"{tmp}/off/e.sqlite"}
        with Service("loop-on", on_env) as on, Service("loop-off", off_env) as off:
            cells: dict[str, list[dict]] = {}
            for r in range(rounds):
                for c in (1, 32):
                    for name, svc in (("on", on), ("off", off)):
                        res = asyncio.run(measure(svc.http_url, c, seconds, requests))
                        res["load_avg_1m"] = load_average()
                        cells.setdefault(f"{name}@{c}", []).append(res)
                        print(f"round {r + 1} {name:3s} {c:2d} clients: {res['rps']} rps, "
                              f"p50 {res.get('median_ms')} ms, p99 {res.get('p99_ms')} ms, "
                              f"load {res['load_avg_1m']:.1f}", flush=True)  # fmt: skip
            overhead = {}
            for c in (1, 32):
                med = {k: statistics.median(x[m] for x in cells[f"{k}@{c}"] if m in x)
                       for k in ("on", "off") for m in ("median_ms",)}  # fmt: skip
                rps = {k: statistics.median(x["rps"] for x in cells[f"{k}@{c}"])
                       for k in ("on", "off")}  # fmt: skip
                p99 = {k: statistics.median(x["p99_ms"] for x in cells[f"{k}@{c}"])
                       for k in ("on", "off")}  # fmt: skip
                overhead[str(c)] = {
                    "median_ms": med, "p99_ms": p99, "rps": rps,
                    "median_ratio_on_off": round(med["on"] / med["off"], 3),
                    "rps_ratio_on_off": round(rps["on"] / rps["off"], 3),
                }  # fmt: skip
            stats = httpx.get(f"{on.http_url}/stats", headers=AUTH, timeout=30).json()
            users = [int(u["user_id"]) for u in catalog()["users"]]
            print("hot swap under 32 clients ...", flush=True)
            swapped = asyncio.run(swap(on.http_url, users, 3.0))
            print(swapped, flush=True)
    logged = stats["total"]["all_time"] | {"process": stats["process"]}
    path = run.save({"log_cost_in_process": in_process, "overhead": overhead, "cells": cells,
                     "event_log": logged, "swap": swapped})  # fmt: skip
    print(f"overhead: {overhead}\nwrote {path}")
    return 0 if swapped["failed"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
