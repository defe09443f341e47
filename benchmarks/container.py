"""Container start-to-ready, against the same Bento served on the host in the same run.

    python -m benchmarks.container [--repeats 3] [--no-host]

Needs an image of `make container` (the last CPU build, and its Bento). Each repeat starts the
image with podman (published on free loopback ports) and, as the peer, `bentoml serve
adrec:<version>` on the host, alternating which goes first; the time is from the start command
to the first 200 of /readyz. Standalone (not in `python -m benchmarks`): each start encodes the
catalog and the known users, minutes on a loaded 2-core machine.
Results: benchmarks/results/container.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time

import httpx

from benchmarks.machine import Run, load_average
from benchmarks.server import LOGS, bentoml_home, free_port
from rec_models.deploy.bento import NAME
from rec_models.deploy.image import image_id, image_size
from rec_models.deploy.probe import wait_ready
from rec_models.deploy.runner import start
from rec_models.deploy.tools import CACHE

READY_TIMEOUT_S = 900


def container_start(tag: str) -> float:
    box = start(tag, free_port(), free_port())
    try:
        return wait_ready(box, READY_TIMEOUT_S)
    finally:
        box.stop()


def host_start(version: str) -> float:
    """`bentoml serve` of the same Bento on the host: the peer without a container."""
    port = free_port()
    env = {**os.environ, "BENTOML_HOME": str(bentoml_home()), "BENTOML_DO_NOT_TRACK": "True"}
    LOGS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(LOGS / "container_host_peer.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", f"{NAME}:{version}",
             "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        while time.monotonic() - started < READY_TIMEOUT_S:
            if proc.poll() is not None:
                raise RuntimeError(f"bentoml serve exited with {proc.returncode}: see {log.name}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"bentoml serve not ready after {READY_TIMEOUT_S} s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-host", action="store_true", help="skip the host peer")
    args = parser.parse_args()
    records = sorted(CACHE.glob("image-*.json"), key=lambda p: p.stat().st_mtime)
    builds = [json.loads(p.read_text()) for p in records]
    builds = [b for b in builds if not b["gpu"] and image_id(b["tag"]) is not None]
    if not builds:
        print("no CPU image: run `make container` first", file=sys.stderr)
        return 1
    tag, version = builds[-1]["tag"], builds[-1]["bento"].split(":")[1]  # the last build
    run = Run("container", full=False)
    starts: list[dict] = []
    for i in range(args.repeats):
        kinds = ["container", "host"] if i % 2 == 0 else ["host", "container"]
        for kind in kinds if not args.no_host else ["container"]:
            load = load_average()
            seconds = container_start(tag) if kind == "container" else host_start(version)
            starts.append({"kind": kind, "ready_s": round(seconds, 1), "load_start": load,
                           "load_end": load_average()})  # fmt: skip
            print(f"{kind}: ready in {seconds:.1f} s (load {load} -> {load_average()})", flush=True)
    medians = {
        kind: statistics.median(s["ready_s"] for s in starts if s["kind"] == kind)
        for kind in {s["kind"] for s in starts}
    }
    ratio = medians["container"] / medians["host"] if "host" in medians else None
    path = run.save(
        {"image": tag, "image_bytes": image_size(tag), "starts": starts,
         "median_ready_s": medians, "container_over_host": ratio and round(ratio, 2)}
    )  # fmt: skip
    print(f"median ready: {medians}; container / host: {ratio and round(ratio, 2)}; {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
