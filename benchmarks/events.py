"""Event log: SQLiteSink throughput, commit latency and behaviour under overload.

    python -m benchmarks.events [--full]

- closed loop: C asyncio clients in one process (as in the service), each logging a response's
  10 impressions and then awaiting the commit of one click on it; feedback events/s committed,
  rows/s committed, ack latency p50/p99 (submit -> commit), rows per commit (group commit at
  work), for synchronous=FULL and NORMAL, repeats interleaved, medians reported;
- impressions alone: how fast log_impressions returns and how fast the writer commits rows;
- overload: the writer stalled for real (another connection holds SQLite's write lock) while
  impressions are offered at full speed and feedback keeps trying: impressions accepted up to
  the queue bound then dropped and counted, feedback refused at once (SinkOverloaded), how long
  those calls take, and how long the writer needs to drain after the stall.

The log lives under .cache/benchmarks/events/ (a real disk: fsync costs what it costs).
Writes benchmarks/results/events.json, events.md and events_latency.png.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from benchmarks.machine import RESULTS, ROOT, Run
from benchmarks.stats import summarize
from rec_models.events import (
    EventKind,
    EventLogSettings,
    Feedback,
    Impressions,
    SinkOverloaded,
    SQLiteSink,
)

WORK = ROOT / ".cache" / "benchmarks" / "events"
QUICK = {"clients": (1, 8, 32, 128), "repeats": 3, "seconds": 2.0, "requests": 20_000}
FULL = {"clients": (1, 4, 8, 16, 32, 64, 128, 256), "repeats": 5, "seconds": 5.0,
        "requests": 100_000}  # fmt: skip
ITEMS = tuple(range(1, 11))


def response(request_id: str) -> Impressions:
    ranked = [(item, 1.0 / item, 0.05) for item in ITEMS]
    return Impressions.ranked(request_id, ranked, model_version="1", variant="A",
                              encoder_variant="int8", timestamp=time.time(), user_id=1)  # fmt: skip


def fresh(name: str, **settings: Any) -> SQLiteSink:
    path = WORK / name / "events.sqlite"
    shutil.rmtree(path.parent, ignore_errors=True)
    return SQLiteSink(path, EventLogSettings(**settings))


async def _closed_loop(sink: SQLiteSink, clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    shed = 0
    end = time.monotonic() + seconds

    async def client(c: int) -> None:
        nonlocal shed
        n = 0
        while time.monotonic() < end:
            rid, n = f"c{c}-{n}", n + 1
            sink.log_impressions(response(rid))
            t0 = time.perf_counter()
            try:
                await sink.record_feedback(Feedback(rid, 3, EventKind.CLICK))
            except SinkOverloaded:
                shed += 1
                await asyncio.sleep(0.01)
                continue
            latencies.append((time.perf_counter() - t0) * 1000)

    before, t0 = sink.counters(), time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    sink.flush(60)
    wall, after = time.perf_counter() - t0, sink.counters()
    rows = (after.impressions_written - before.impressions_written) + (
        after.feedback_written - before.feedback_written
    )
    commits = max(1, after.commits - before.commits)
    return {
        "feedback_per_s": len(latencies) / wall,
        "rows_per_s": rows / wall,
        "rows_per_commit": rows / commits,
        "ack_ms": summarize(latencies),
        "shed": shed,
    }


def closed_loop(grid: dict[str, Any]) -> list[dict[str, Any]]:
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    plan = [(r, c, s) for r in range(grid["repeats"]) for c in grid["clients"]
            for s in ("FULL", "NORMAL")]  # fmt: skip
    for _, clients, sync in tqdm(plan, desc="closed loop"):  # interleaved repeats
        sink = fresh("closed", synchronous=sync, max_lag_s=30.0)
        try:
            runs.setdefault((sync, clients), []).append(
                asyncio.run(_closed_loop(sink, clients, grid["seconds"]))
            )
        finally:
            sink.close(60)
    out = []
    for (sync, clients), reps in sorted(runs.items()):
        med = statistics.median
        out.append({
            "synchronous": sync, "clients": clients, "repeats": len(reps),
            "feedback_per_s": round(med(r["feedback_per_s"] for r in reps), 1),
            "rows_per_s": round(med(r["rows_per_s"] for r in reps), 1),
            "rows_per_commit": round(med(r["rows_per_commit"] for r in reps), 1),
            "ack_p50_ms": round(med(r["ack_ms"]["median_ms"] for r in reps), 3),
            "ack_p99_ms": round(med(r["ack_ms"]["p99_ms"] for r in reps), 3),
            "shed": sum(r["shed"] for r in reps),
        })  # fmt: skip
    return out


def impressions_only(requests: int) -> dict[str, Any]:
    sink = fresh("impressions", max_queue_rows=requests * len(ITEMS))
    try:
        calls: list[float] = []
        t0 = time.perf_counter()
        for i in range(requests):
            imp = response(f"r{i}")
            t1 = time.perf_counter()
            sink.log_impressions(imp)
            calls.append((time.perf_counter() - t1) * 1e6)
        offered = time.perf_counter() - t0
        assert sink.flush(600)
        wall = time.perf_counter() - t0
        c = sink.counters()
    finally:
        sink.close(60)
    return {
        "requests": requests, "rows": c.impressions_written,
        "rows_per_s": round(c.impressions_written / wall, 1),
        "rows_per_commit": round(c.impressions_written / max(1, c.commits), 1),
        "offer_seconds": round(offered, 3), "seconds": round(wall, 3),
        "log_call_us": _us(calls),
    }  # fmt: skip


def _us(samples_us: list[float]) -> dict[str, Any]:
    s = summarize([v / 1000 for v in samples_us])  # summarize speaks ms
    return {"n": s["n"], "p50_us": round(s["median_ms"] * 1000, 2),
            "p99_us": round(s["p99_ms"] * 1000, 2)}  # fmt: skip


def overload(stall_s: float) -> dict[str, Any]:
    settings = EventLogSettings()  # the defaults, as a service runs them
    sink = fresh("overload")
    path = sink.path
    held, go = threading.Event(), threading.Event()

    def hold_lock() -> None:
        conn = sqlite3.connect(path, isolation_level=None, timeout=60)
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        go.wait()
        conn.execute("ROLLBACK")
        conn.close()

    locker = threading.Thread(target=hold_lock)
    locker.start()
    held.wait()
    logged, refused, log_us, refuse_us, n = 0, 0, [], [], 0
    end = time.monotonic() + stall_s
    try:
        while time.monotonic() < end:
            imp, click = response(f"o{n}"), Feedback(f"o{n}", 3, EventKind.CLICK)
            t0 = time.perf_counter()  # the sink's calls alone, as a service would make them
            logged += sink.log_impressions(imp)
            log_us.append((time.perf_counter() - t0) * 1e6)
            if n % 10 == 0:
                t0 = time.perf_counter()
                try:
                    sink.submit_feedback(click)
                except SinkOverloaded:
                    refused += 1
                    refuse_us.append((time.perf_counter() - t0) * 1e6)
            n += 1
        c = sink.counters()
    finally:
        go.set()
        locker.join()
    t0 = time.perf_counter()
    assert sink.flush(600)
    drain = time.perf_counter() - t0
    after = sink.counters()
    sink.close(60)
    conn = sqlite3.connect(path)
    stored_dropped = conn.execute("SELECT sum(dropped) FROM counts_total").fetchone()[0]
    conn.close()
    return {
        "stall_seconds": stall_s, "max_queue_rows": settings.max_queue_rows,
        "max_lag_s": settings.max_lag_s, "responses_offered": n, "responses_queued": logged,
        "impression_rows_dropped": c.impressions_dropped,
        "dropped_rows_in_log_counts": stored_dropped,
        "feedback_attempts": (n + 9) // 10, "feedback_refused": refused,
        "log_call_us": _us(log_us), "refusal_us": _us(refuse_us),
        "drain_seconds": round(drain, 3), "rows_written_after_stall": after.impressions_written,
    }  # fmt: skip


def write_md(results: dict[str, Any]) -> Path:
    lines = ["# Event log (SQLiteSink)", "", f"Machine: {results['machine']['cpu']}, "
             f"{results['machine']['cores']} cores; load average "
             f"{results['load_avg_1m']['start']} -> {results['load_avg_1m']['end']}; "
             f"{results['date']}, mode {results['mode']}.", "",
             "| sync | clients | feedback/s | rows/s | rows/commit | ack p50 ms | ack p99 ms |",
             "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in results["closed_loop"]:
        lines.append(f"| {r['synchronous']} | {r['clients']} | {r['feedback_per_s']:.0f} | "
                     f"{r['rows_per_s']:.0f} | {r['rows_per_commit']:.1f} | "
                     f"{r['ack_p50_ms']:.2f} | {r['ack_p99_ms']:.2f} |")  # fmt: skip
    imp, ov = results["impressions_only"], results["overload"]
    lines += ["", f"Impressions alone: {imp['rows']:,} rows in {imp['seconds']} s = "
              f"{imp['rows_per_s']:,.0f} rows/s committed ({imp['rows_per_commit']:,.0f} rows "
              f"per commit); log_impressions p50 {imp['log_call_us']['p50_us']} us, p99 "
              f"{imp['log_call_us']['p99_us']} us.", "",
              f"Overload (writer stalled {ov['stall_seconds']} s by a held write lock, default "
              f"settings): {ov['responses_offered']:,} responses offered, "
              f"{ov['responses_queued']:,} queued, {ov['impression_rows_dropped']:,} impression "
              f"rows dropped and counted (the log's counts say {ov['dropped_rows_in_log_counts']:,}"
              f"); {ov['feedback_refused']:,} of {ov['feedback_attempts']:,} feedback calls "
              f"refused with 503, each in p50 {ov['refusal_us']['p50_us']} us / p99 "
              f"{ov['refusal_us']['p99_us']} us; log_impressions p99 {ov['log_call_us']['p99_us']}"
              f" us throughout; drained in {ov['drain_seconds']} s after the stall."]  # fmt: skip
    path = RESULTS / "events.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def plot(rows: list[dict[str, Any]]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for sync, colour in (("FULL", "C0"), ("NORMAL", "C1")):
        mine = [r for r in rows if r["synchronous"] == sync]
        xs = [r["clients"] for r in mine]
        left.plot(xs, [r["feedback_per_s"] for r in mine], marker="o", color=colour, label=sync)
        right.plot(xs, [r["ack_p99_ms"] for r in mine], marker="o", color=colour,
                   label=f"{sync} p99")  # fmt: skip
        right.plot(xs, [r["ack_p50_ms"] for r in mine], marker=".", ls="--", color=colour,
                   label=f"{sync} p50")  # fmt: skip
    for ax, title in ((left, "feedback events committed / s"), (right, "ack latency (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    right.set_yscale("log")
    fig.tight_layout()
    path = RESULTS / "events_latency.png"
    fig.savefig(path, dpi=110)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="more clients, repeats and time")
    args = parser.parse_args()
    grid = FULL if args.full else QUICK
    run = Run("events", args.full)
    results = {
        "grid": grid,
        "closed_loop": closed_loop(grid),
        "impressions_only": impressions_only(grid["requests"]),
        "overload": overload(stall_s=3.0),
    }
    saved = run.save(results)
    full = run.header() | results
    print(saved, write_md(full), plot(results["closed_loop"]), sep="\n")
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
