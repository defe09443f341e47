"""Where a request's time goes: py-spy samples a serving worker under closed-loop load.

    python -m benchmarks.profile_service [--endpoint recommend_known] [--clients 32] [--seconds 10]

Starts `bentoml serve` with one worker (one process to sample: the per-request path is the same
in each worker), drives the endpoint, and records the worker with `py-spy record --format raw`
(collapsed stacks, GIL and idle time excluded). Writes benchmarks/results/profile_<endpoint>.md:
the share of samples per function (inclusive: on the stack; self: at the top), and per
subsystem (uvicorn/h11, starlette, BentoML, pydantic, our code, numpy, asyncio).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from benchmarks.load import scenario
from benchmarks.loadgen import Requests
from benchmarks.machine import RESULTS, load_average
from benchmarks.server import Service, catalog
from benchmarks.texts import load_pool

SUBSYSTEMS = (  # (label, substring of the frame's file), first match wins
    ("our code (rec_models, service.py)", "rec_models/"), ("our code (rec_models, service.py)",
    "service.py"), ("pydantic", "pydantic"), ("BentoML", "bentoml"), ("starlette", "starlette"),
    ("uvicorn / h11 / httptools", "uvicorn"), ("uvicorn / h11 / httptools", "h11"),
    ("uvicorn / h11 / httptools", "httptools"), ("numpy", "numpy"), ("prometheus", "prometheus"),
    ("opentelemetry", "opentelemetry"), ("asyncio / uvloop", "asyncio"),
    ("asyncio / uvloop", "uvloop"), ("json", "json"), ("grpc", "grpc"),
)  # fmt: skip


def worker_pid(svc: Service) -> int:
    import psutil

    assert svc.proc is not None
    children = psutil.Process(svc.proc.pid).children(recursive=True)
    workers = [p for p in children if "_bentoml_impl" in " ".join(p.cmdline())] or children
    return workers[-1].pid


def parse(raw: str) -> tuple[Counter[str], Counter[str], Counter[str], int]:
    """(inclusive by function, self by function, self by subsystem, samples) of collapsed
    stacks: 'frame;frame;... count' lines, frames 'function (file:line)'."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    subsystem: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f.rsplit(":", 1)[0] for f in stack.split(";")]
        for f in set(frames):
            inclusive[f] += n
        own[frames[-1]] += n
        top = frames[-1]
        label = next((lab for lab, key in SUBSYSTEMS if key in top), "other")
        subsystem[label] += n
    return inclusive, own, subsystem, total


def report(endpoint: str, clients: int, raw: str, rps: float) -> str:
    inclusive, own, subsystem, total = parse(raw)

    def share(n: int) -> str:
        return f"{100 * n / max(total, 1):.1f}%"

    lines = [
        f"# Profile: {endpoint}, {clients} clients, one worker (py-spy, {total} samples)",
        "",
        f"{rps} req/s while sampled; load average {load_average()}. Self time by subsystem:",
        "",
        "| subsystem | self |",
        "|---|---:|",
        *[f"| {k} | {share(v)} |" for k, v in subsystem.most_common()],
        "",
        "| function (inclusive, top 25) | inclusive | self |",
        "|---|---:|---:|",
        *[f"| `{k}` | {share(v)} | {share(own[k])} |" for k, v in inclusive.most_common(25)],
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", default="recommend_known")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    req = Requests(catalog(), load_pool())
    grid = {"duration_s": args.seconds + 3, "warmup_s": 2.0, "max_requests": 10**7}
    with Service("profile", {"ADREC_WORKERS": "1", "ADREC_THREADS": "2"}) as svc:
        out = RESULTS / f"profile_{args.endpoint}.txt"
        RESULTS.mkdir(parents=True, exist_ok=True)
        result: dict = {}
        load = threading.Thread(
            target=lambda: result.update(
                asyncio.run(scenario(svc, req, args.endpoint, args.clients, grid))
            )
        )
        load.start()
        cmd = [spy, "record", "--pid", str(worker_pid(svc)), "--format", "raw", "--rate", "200"]
        cmd += ["--duration", str(int(args.seconds)), "--output", str(out), "--nonblocking"]
        threading.Event().wait(grid["warmup_s"] + 1)
        subprocess.run(cmd, check=True, capture_output=True)
        load.join()
    md = RESULTS / f"profile_{args.endpoint}.md"
    md.write_text(report(args.endpoint, args.clients, out.read_text(), result.get("rps", 0.0)))
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
