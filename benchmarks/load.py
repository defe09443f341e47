"""The running service under concurrent load, HTTP and gRPC, beside the framework's ceiling.

    python -m benchmarks.load [--full]

In one run, on the same machine and load: `bentoml serve service:Recommender` (as `make serve`)
in its default layout, the trivial BentoML service (benchmarks/trivial_service.py: the ceiling),
the other worker layout (1 worker x 2 threads against 2 x 1) on the cases where it matters, and
the serving core in this process (the same encoder and load without HTTP). Closed-loop asyncio
clients (benchmarks/loadgen.py) on the same cores. Each row of the issue's table is printed
beside its target (targets.py); plots: throughput and p99 against concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from typing import Any

from tqdm.auto import tqdm

from benchmarks.load_targets import TARGETS, evaluate
from benchmarks.loadgen import Requests, closed_loop, grpc_encoder_sender, http_sender
from benchmarks.machine import RESULTS, Run
from benchmarks.server import Service, bentoml_home, catalog, have_models
from benchmarks.texts import load_pool

QUICK = {"duration_s": 4.0, "warmup_s": 1.0, "max_requests": 20_000, "sweep": (1, 8, 32, 64)}
FULL = {"duration_s": 8.0, "warmup_s": 2.0, "max_requests": 100_000, "sweep": (1, 4, 16, 32, 64)}
SWEEP = ("recommend_known", "recommend_cold", "embed", "grpc_encoder", "trivial")
EXTRA = [("score", 32, 1), ("embed", 4, 32)]  # (endpoint, clients, texts per request)
LAYOUT_CASES = [("recommend_known", 1), ("recommend_known", 32), ("recommend_cold", 32),
                ("embed", 1), ("embed", 32), ("grpc_encoder", 32)]  # fmt: skip
LAYOUTS = {"2x1": {"ADREC_WORKERS": "2", "ADREC_THREADS": "1"},
           "1x2": {"ADREC_WORKERS": "1", "ADREC_THREADS": "2"}}  # fmt: skip
DEFAULT_LAYOUT = "2x1"  # the settings' default on 2 cores: one worker per core


def sender(endpoint: str, req: Requests, http: Any, grpc: Any, n_texts: int = 1) -> Any:
    if endpoint == "grpc_encoder":
        return grpc_encoder_sender(grpc, req.embed_texts(n_texts))
    path, body = {
        "recommend_known": ("/recommend", req.known),
        "trivial": ("/recommend", req.known),
        "recommend_cold": ("/recommend", req.cold),
        "score": ("/score", req.score),
        "embed": ("/embed", req.embed(n_texts)),
    }[endpoint]
    return http_sender(http, path, body)


async def scenario(
    svc: Service, req: Requests, endpoint: str, clients: int, grid: dict, n_texts: int = 1
) -> dict[str, Any]:
    import httpx
    import tritonclient.grpc.aio as grpcaio

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=svc.http_url, limits=limits, timeout=60) as http:
        # One gRPC channel per 4 clients (at most 8): each channel is one connection to one
        # worker, as HTTP's pool of connections spreads over the workers.
        channels = max(1, min(8, clients // 4)) if svc.grpc else 0
        grpc = [grpcaio.InferenceServerClient(svc.grpc_url) for _ in range(channels)]
        try:
            send = sender(endpoint, req, http, grpc, n_texts)
            await closed_loop(send, min(clients, 16), grid["warmup_s"], grid["max_requests"])
            out = await closed_loop(send, clients, grid["duration_s"], grid["max_requests"])
        finally:
            for channel in grpc:
                await channel.close()
    return {"service": svc.name, "endpoint": endpoint, "texts_per_request": n_texts, **out}


def run_cases(svc: Service, req: Requests, cases: list[tuple], grid: dict, rows: list) -> None:
    for endpoint, clients, n_texts in (bar := tqdm(cases, desc=svc.name, unit="case")):
        bar.set_postfix(endpoint=endpoint, clients=clients)
        rows.append(asyncio.run(scenario(svc, req, endpoint, clients, grid, n_texts)))


def in_process(req: Requests, grid: dict, threads: int) -> dict[str, Any]:
    """The serving core in this process, 32 concurrent 1-text embeds (the service's /embed case
    without HTTP), and the bare encoder's batch-1 latency with `threads` threads."""
    from rec_models.serving.core import ServingCore
    from rec_models.serving.settings import ServingSettings

    os.environ.setdefault("BENTOML_HOME", str(bentoml_home()))  # the store the services use
    settings = ServingSettings.from_env({"ADREC_WORKERS": "1", "ADREC_DEVICE": "cpu"})
    core = ServingCore(settings)

    async def main() -> dict[str, Any]:
        await core.load()
        if core.load_error:
            raise RuntimeError(core.load_error)
        pick = req.embed_texts(1)

        async def send(rng: random.Random) -> None:
            await core.embed(pick(rng))

        await closed_loop(send, 16, grid["warmup_s"], grid["max_requests"])
        out = await closed_loop(send, 32, grid["duration_s"], grid["max_requests"])
        await core.close()
        return out

    result = {"core_embed_32": asyncio.run(main()), "core_threads": settings.intra_op_threads}
    result["encoder_batch1"] = encoder_latency(core.encoder.path, req, threads)
    return result


def encoder_latency(path: Any, req: Requests, threads: int, n: int = 300) -> dict[str, Any]:
    """Median batch-1 latency of the bare OnnxEncoder (the worker's thread count)."""
    from benchmarks.stats import summarize
    from rec_models.serving.onnx_encoder import OnnxEncoder

    encoder = OnnxEncoder(path, threads=threads, spinning=False)
    rng, pick, times = random.Random(0), req.embed_texts(1), []
    for _ in range(20):
        encoder.encode(pick(rng))
    for _ in range(n):
        texts = pick(rng)
        t0 = time.perf_counter()
        encoder.encode(texts)
        times.append((time.perf_counter() - t0) * 1e3)
    return {"threads": threads, **summarize(times)}


def plot(rows: list[dict], path_tput: Any, path_p99: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[dict]] = {}
    for r in rows:
        if r["texts_per_request"] == 1 and r["endpoint"] in SWEEP:
            series.setdefault(f"{r['endpoint']} ({r['service']})", []).append(r)
    for path, yk, yl in ((path_tput, "rps", "requests / s"), (path_p99, "p99_ms", "p99 (ms)")):
        fig, ax = plt.subplots(figsize=(8, 5))
        for key, rs in sorted(series.items()):
            rs = sorted(rs, key=lambda r: r["concurrency"])
            style = ":" if "trivial" in key else "--" if "1x2" in key else "-"
            ax.plot([r["concurrency"] for r in rs], [r.get(yk) for r in rs], style, marker="o",
                    label=key)  # fmt: skip
        ax.set(xscale="log", yscale="log", xlabel="concurrent clients", ylabel=yl)
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
    req, rows = Requests(catalog(), load_pool()), []
    services: dict[str, Any] = {}
    threads = int(LAYOUTS[DEFAULT_LAYOUT]["ADREC_THREADS"])
    core = in_process(req, grid, threads)
    sweep = [(ep, c, 1) for ep in SWEEP if ep != "trivial" for c in grid["sweep"]]
    with Service("trivial", target="benchmarks.trivial_service:Trivial", grpc=False) as svc:
        run_cases(svc, req, [("trivial", c, 1) for c in grid["sweep"]], grid, rows)
        services["trivial"] = {"start_s": svc.start_s}
    for name in (DEFAULT_LAYOUT, *(n for n in LAYOUTS if n != DEFAULT_LAYOUT)):
        cases = [*sweep, *EXTRA] if name == DEFAULT_LAYOUT else [(e, c, 1) for e, c in LAYOUT_CASES]
        with Service(name, LAYOUTS[name]) as svc:
            run_cases(svc, req, cases, grid, rows)
            services[name] = {"start_s": svc.start_s, "info": svc.info, "env": svc.settings}
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(rows, RESULTS / "load_throughput.png", RESULTS / "load_p99_vs_clients.png")
    result = {"grid": grid, "services": services, "scenarios": rows, "in_process": core,
              "default_layout": DEFAULT_LAYOUT, "uptime": os.getloadavg()}  # fmt: skip
    result["targets"] = evaluate(rows, core, DEFAULT_LAYOUT)
    run_.save(result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="the full grid (default: quick)")
    result = run(parser.parse_args().full)
    for t in result.get("targets", []):
        met = {True: "met", False: "NOT met", None: "-"}[t["met"]]
        print(f"{t['case']:<34} {t['value']}\n{'':<34} target {t['goal']}: {met}")
    print(f"targets: {len(TARGETS)} rows; load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
