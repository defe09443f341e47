"""The running service under concurrent load, HTTP and gRPC, adaptive batching on and off.

    python -m benchmarks.load [--full]

Starts the service itself (benchmarks/server.py) on loopback, drives closed-loop clients
(benchmarks/loadgen.py) at each concurrency, and stops it. Endpoints: /recommend (known user,
cold profile), /score, /embed (1 text), gRPC `encoder` (1 text). Batching off (a restart, see
server.py for how) only matters where the encoder runs: cold profiles, /embed, gRPC.
Serving overhead: 32-text /embed and gRPC requests, one client (the same batch size), against the
raw in-process OnnxEncoder of the served variant, windows interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from tqdm.auto import tqdm

from benchmarks.loadgen import Requests, closed_loop, grpc_encoder_sender, http_sender
from benchmarks.machine import ARTIFACTS, RESULTS, THREADS, Run
from benchmarks.server import BATCHING_SWITCH, Service, catalog, have_models
from benchmarks.stats import ratio
from benchmarks.texts import load_pool

QUICK = {
    "concurrency": (1, 16, 32, 64),
    "duration_s": 3.0,
    "paced_s": 8.0,
    "max_requests": 3000,
    "rounds": 2,
}
FULL = {
    "concurrency": (1, 4, 16, 32, 64, 128),
    "duration_s": 15.0,
    "paced_s": 30.0,
    "max_requests": 30000,
    "rounds": 3,
}
ON_ENDPOINTS = ("recommend_known", "recommend_cold", "score", "embed", "grpc_encoder")
OFF_ENDPOINTS = ("recommend_cold", "embed", "grpc_encoder")
OVERHEAD_BATCH = 32
P99_TARGETS = {"recommend_known": 10.0, "recommend_cold": 20.0}  # ms at 32 clients
# Closed-loop clients without pauses measure saturation: there p99 >= 32 / RPS (Little's law),
# so the targets are also measured with 32 users each pausing ~1 s between requests.
PACED = {"clients": 32, "think_s": 1.0}
OVERHEAD_TARGET = 0.8
WARMUP_S = 2.0  # per endpoint, 16 clients, before the measured scenarios


def sender(endpoint: str, req: Requests, http: Any, grpc: Any, n_texts: int = 1) -> Any:
    if endpoint == "grpc_encoder":
        return grpc_encoder_sender(grpc, req.embed_texts(n_texts))
    path, body = {
        "recommend_known": ("/recommend", req.known),
        "recommend_cold": ("/recommend", req.cold),
        "score": ("/score", req.score),
        "embed": ("/embed", req.embed(n_texts)),
    }[endpoint]
    return http_sender(http, path, body)


async def scenario(
    svc: Service,
    req: Requests,
    endpoint: str,
    conc: int,
    grid: dict,
    n_texts: int = 1,
    think_s: float = 0.0,
) -> dict:
    import httpx
    import tritonclient.grpc.aio as grpcaio

    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    async with httpx.AsyncClient(base_url=svc.http_url, limits=limits, timeout=60) as http:
        grpc = grpcaio.InferenceServerClient(svc.grpc_url)
        try:
            send = sender(endpoint, req, http, grpc, n_texts)
            duration = grid["paced_s"] if think_s else grid["duration_s"]
            out = await closed_loop(send, conc, duration, grid["max_requests"], think_s=think_s)
        finally:
            await grpc.close()
    return {"endpoint": endpoint, "batching": svc.batching, "texts_per_request": n_texts, **out}


def raw_window(encoder: Any, texts: list[str], seconds: float) -> dict[str, Any]:
    """In-process OnnxEncoder on 32-text batches for `seconds`: the ceiling of serving."""
    import random

    rng, n, t0 = random.Random(0), 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        encoder.encode(rng.sample(texts, OVERHEAD_BATCH))
        n += 1
    elapsed = time.perf_counter() - t0
    return {"endpoint": "raw_onnx", "rps": round(n / elapsed, 2), "requests": n}


def overhead(svc: Service, req: Requests, grid: dict) -> dict[str, Any]:
    from rec_models.serving.onnx_encoder import OnnxEncoder

    variant = svc.info.get("variant") or "int8"
    encoder = OnnxEncoder(ARTIFACTS / "onnx" / variant, threads=THREADS, batch_size=64)
    encoder.encode(req.texts[:OVERHEAD_BATCH])
    windows: dict[str, list[float]] = {"raw_onnx": [], "embed": [], "grpc_encoder": []}
    for _ in tqdm(range(grid["rounds"]), desc="serving overhead", unit="round"):
        windows["raw_onnx"].append(raw_window(encoder, req.texts, grid["duration_s"])["rps"])
        for ep in ("embed", "grpc_encoder"):
            r = asyncio.run(scenario(svc, req, ep, 1, grid, OVERHEAD_BATCH))
            windows[ep].append(r["rps"])
    texts_s = {k: round(OVERHEAD_BATCH * sum(v) / len(v), 1) for k, v in windows.items()}
    return {
        "variant": variant,
        "batch": OVERHEAD_BATCH,
        "texts_per_s": texts_s,
        "windows_rps": windows,
        "http_vs_raw": ratio(texts_s["embed"], texts_s["raw_onnx"]),
        "grpc_vs_raw": ratio(texts_s["grpc_encoder"], texts_s["raw_onnx"]),
    }


def run_service(batching: bool, req: Requests, grid: dict, rows: list) -> dict[str, Any]:
    svc = Service(batching=batching)
    endpoints = ON_ENDPOINTS if batching else OFF_ENDPOINTS
    if svc.grpc_only:
        endpoints = ("grpc_encoder",)
    try:
        svc.__enter__()
    except Exception as exc:  # recorded in the results: the other mode may still run
        return {
            "error": f"{type(exc).__name__}: {str(exc)[:500]}",
            "log": str(svc.log),
            "start_errors": svc.start_errors,
        }
    try:
        # Warm-up, not recorded: the first seconds of load after start-up ran at a third of the
        # steady throughput (known users, 16 clients: 83 RPS first, 254-270 RPS in a rerun).
        for ep in endpoints:
            asyncio.run(scenario(svc, req, ep, 16, {**grid, "duration_s": WARMUP_S}))
        cells = [(ep, c) for ep in endpoints for c in grid["concurrency"]]
        label = f"load (batching {'on' if batching else 'off'})"
        for ep, c in (bar := tqdm(cells, desc=label, unit="scenario")):
            bar.set_postfix(endpoint=ep, clients=c)
            rows.append(asyncio.run(scenario(svc, req, ep, c, grid)))
        if batching:
            for ep in P99_TARGETS:
                paced = scenario(svc, req, ep, PACED["clients"], grid, think_s=PACED["think_s"])
                rows.append(asyncio.run(paced))
        over = overhead(svc, req, grid) if batching else None
    finally:
        svc.stop()
    note = None
    if svc.grpc_only:
        note = (
            "HTTP without batching not measured: BentoML refuses max_batch_size=1 and service.py "
            f"has no {BATCHING_SWITCH} switch; gRPC server alone with --max-batch-size 1"
        )
    return {
        "start_s": svc.start_s,
        "start_errors": svc.start_errors,
        "info": svc.info,
        "overhead": over,
        "grpc_only": svc.grpc_only,
        "note": note,
    }


def targets(rows: list[dict], over: dict | None) -> list[dict[str, Any]]:
    out = []
    for ep, goal in P99_TARGETS.items():

        def find(think: float, ep: str = ep) -> dict:
            match = (ep, True, PACED["clients"], think)
            keys = ("endpoint", "batching", "concurrency", "think_s")
            return next((r for r in rows if tuple(r[k] for k in keys) == match), {})

        got, saturated = find(PACED["think_s"]).get("p99_ms"), find(0.0).get("p99_ms")
        who = f"{PACED['clients']} clients pausing ~{PACED['think_s']:g} s"
        out.append(
            {
                "target": f"/recommend {ep.split('_')[1]} p99 <= {goal} ms at {who}",
                "value": got,
                "met": None if got is None else got <= goal,
                "value_closed_loop": saturated,
            }
        )
    for key, name in (("http_vs_raw", "HTTP /embed"), ("grpc_vs_raw", "gRPC encoder")):
        got = over.get(key) if over else None
        out.append(
            {
                "target": f"{name} >= {OVERHEAD_TARGET:.0%} of raw ONNX Runtime "
                f"({OVERHEAD_BATCH} texts)",
                "value": got,
                "met": None if got is None else got >= OVERHEAD_TARGET,
            }
        )
    return out


def plot(rows: list[dict], path_tput: Any, path_p99: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[dict]] = {}
    for r in rows:
        if r["texts_per_request"] == 1 and not r["think_s"]:
            key = f"{r['endpoint']} ({'batching' if r['batching'] else 'no batching'})"
            series.setdefault(key, []).append(r)
    for path, xk, yk, xl, yl in (
        (path_tput, "concurrency", "rps", "concurrent clients", "requests / s"),
        (path_p99, "rps", "p99_ms", "requests / s", "p99 latency (ms)"),
    ):
        fig, ax = plt.subplots(figsize=(8, 5))
        for key, rs in sorted(series.items()):
            rs = sorted(rs, key=lambda r: r["concurrency"])
            style = "-" if "(batching)" in key else "--"
            ax.plot([r[xk] for r in rs], [r.get(yk) for r in rs], style, marker="o", label=key)
            if xk == "rps":  # label each point with its number of clients
                for r in rs:
                    if r.get(yk):
                        ax.annotate(str(r["concurrency"]), (r[xk], r[yk]), fontsize=6)
        ax.set(xscale="log", yscale="log", xlabel=xl, ylabel=yl)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def run(full: bool = False) -> dict[str, Any]:
    grid = FULL if full else QUICK
    run_ = Run("load", full)
    if not have_models():
        result = {"skipped": "no adrec models in the BentoML store: run `make export` first"}
        run_.save(result)
        return result
    req = Requests(catalog(), load_pool())
    rows: list[dict] = []
    services = {
        "batching": run_service(True, req, grid, rows),
        "no_batching": run_service(False, req, grid, rows),
    }
    over = services["batching"]["overhead"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(rows, RESULTS / "load_throughput.png", RESULTS / "load_p99_vs_rps.png")
    result = {
        "grid": grid,
        "services": services,
        "scenarios": rows,
        "overhead": over,
        "targets": targets(rows, over),
    }
    run_.save(result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="the full grid (default: quick)")
    result = run(parser.parse_args().full)
    for t in result.get("targets", []):
        print(f"{t['target']}: {t['value']} ({'met' if t['met'] else 'not met'})")


if __name__ == "__main__":
    main()
