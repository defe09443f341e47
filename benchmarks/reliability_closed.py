"""`python -m benchmarks.reliability_closed`: what admission's limits cost a closed loop.

2 workers (`bentoml serve` as `make serve`, the ADREC_* admission settings of the environment),
closed loops of 32 and 64 clients for 8 s each, on known users, cold profiles and one-text
embeds: the requests answered 200 in those 8 s and the share refused (429 / 503). The clients
send their next request as soon as an answer comes, a 429 included (as benchmarks/load.py's
do; they ignore Retry-After), so the shed share is per attempt. Prints one line per case;
README, "Reliability and security", has the figures of three settings side by side.
"""

from __future__ import annotations

import asyncio

from benchmarks.loadgen import Requests
from benchmarks.machine import load_average
from benchmarks.reliability_load import Client, Record, closed_loop, summary
from benchmarks.server import Service, catalog
from benchmarks.texts import load_pool

CLIENTS = (32, 64)
SECONDS = 8.0


async def measure(port: int, req: Requests) -> None:
    embed = req.embed(1)
    bodies = {
        "known": lambda rng: ("/recommend", req.known(rng)),
        "cold": lambda rng: ("/recommend", req.cold(rng)),
        "embed, 1 text": lambda rng: ("/embed", embed(rng)),
    }
    client = Client(port)
    for name, body in bodies.items():
        for n in CLIENTS:
            record = Record()
            await closed_loop(client, body, n, SECONDS, record, seed=n)
            s = summary(record, 0.0, float("inf"))
            share = 100 * s["shed"] / max(1, s["requests"])
            print(f"{name}, {n} clients: {s['ok']} answered 200 in {SECONDS:g} s, "
                  f"{share:.1f}% shed, p99 {s['p99_ms']} ms, load {load_average()}",
                  flush=True)  # fmt: skip


def main() -> None:
    req = Requests(catalog(), load_pool())
    with Service("reliability-closed", {"ADREC_WORKERS": "2"}) as svc:
        asyncio.run(measure(svc.port, req))


if __name__ == "__main__":
    main()
