"""`python -m benchmarks.reliability [--quick]`: faults and overload against the real service.

(a) kill -9 of one of two workers under closed-loop load: requests failed, the time until the
    supervisor's new worker is ready and until throughput is back to its pre-kill level, and
    what the other worker served meanwhile.
(b) overload: a short closed-loop ramp finds the saturating load (the smallest client count
    within 5% of the best throughput; its p99 is the reference), then Poisson arrivals at 4x
    that throughput for 60 s (`--quick`: 15 s), known and cold users mixed (70 / 30): the server
    stays up, p99 of the accepted requests vs the reference (target <= 2x), the shed share
    (429 / 503), RSS of the process tree before and after (target within 10%), and how long
    after the overload stops throughput is back to normal (target <= 5 s).

Both start `bentoml serve` as `make serve` does (benchmarks/server.py, 2 workers, the default
admission and batching settings unless ADREC_* variables say otherwise). Figures go to
benchmarks/results/reliability.{json,md} ("worker_kill", "overload", beside the fuzz figures),
the plot to benchmarks/results/reliability_faults.png. The load generator shares the 2 cores
with the server (its CPU share is recorded).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import signal
import sys
import time
from typing import Any

from tqdm.auto import tqdm

from benchmarks.fuzz import write_results
from benchmarks.loadgen import Requests
from benchmarks.machine import RESULTS, describe_machine, load_average
from benchmarks.reliability_load import Client, Record, closed_loop, open_loop, series, summary
from benchmarks.server import Service, catalog, have_models
from benchmarks.texts import load_pool

COLD_SHARE = 0.3
RAMP = (1, 2, 4, 8, 16, 32)
WORKERS = "2"


def mixed(req: Requests):
    def body(rng: random.Random) -> tuple[str, dict]:
        return "/recommend", (req.cold(rng) if rng.random() < COLD_SHARE else req.known(rng))

    return body


def tree_rss_mib(pid: int) -> float:
    import psutil

    proc, total = psutil.Process(pid), 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return round(total / 2**20, 1)


def workers(pid: int) -> list[int]:
    import psutil

    out = []
    for p in psutil.Process(pid).children(recursive=True):
        try:
            if "_bentoml_impl.worker" in " ".join(p.cmdline()):
                out.append(p.pid)
        except psutil.Error:  # gone, or a zombie not yet reaped (the killed one)
            continue
    return out


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def ramp(client: Client, body, step_s: float) -> list[dict]:
    rows = []
    for concurrency in tqdm(RAMP, desc="ramp", unit="step"):
        record = Record()
        t0 = time.monotonic()
        await closed_loop(client, body, concurrency, step_s, record, seed=concurrency)
        rows.append({"concurrency": concurrency, **summary(record, t0 + 1.0, time.monotonic())})
    return rows


def saturation(rows: list[dict]) -> dict:
    best = max(r["ok_per_s"] for r in rows)
    return next(r for r in rows if r["ok_per_s"] >= 0.95 * best)


def back_to_normal(s: dict, since_s: float, level: float, window: int = 2) -> float | None:
    """Seconds after `since_s` until `window` consecutive 1-s bins reach `level` ok/s (the end
    of the first such bin), None if never."""
    t, ok = s["t_s"], s["ok_per_s"]
    for i in range(len(t) - window + 1):
        if t[i] - 1.0 >= since_s and all(v >= level for v in ok[i : i + window]):
            return round(t[i] - since_s, 1)
    return None


async def overload(svc: Service, body, quick: bool) -> dict[str, Any]:
    client = Client(svc.port)
    steps = await ramp(client, body, 4.0 if quick else 6.0)
    sat = saturation(steps)
    rate = 4 * max(r["ok_per_s"] for r in steps)
    duration = 15.0 if quick else 60.0
    record = Record()
    base0 = time.monotonic()
    await closed_loop(client, body, sat["concurrency"], 5.0, record, seed=7)  # normal, before
    rss_before = tree_rss_mib(svc.proc.pid)
    load0 = load_average()
    t_on, cpu0 = time.monotonic(), cpu_s()
    print(f"overload: {rate:.0f}/s offered for {duration:.0f} s", flush=True)
    await open_loop(client, body, rate, duration, record, seed=11)
    t_off, cpu1 = time.monotonic(), cpu_s()
    client.close()
    await closed_loop(client, body, sat["concurrency"], 15.0, record, seed=13)  # normal, after
    t_end = time.monotonic()
    rss_after = tree_rss_mib(svc.proc.pid)
    during = summary(record, t_on, t_off + 0.5)
    normal = summary(record, base0 + 1.0, t_on)
    s = series(record, base0, t_end)
    recovery = back_to_normal(s, t_off - base0, 0.9 * normal["ok_per_s"])
    ratio = during["p99_ms"] / sat["p99_ms"] if during["p99_ms"] and sat["p99_ms"] else None
    shed_share = during["shed"] / max(1, during["requests"] + record.not_sent)
    rss_change = (rss_after - rss_before) / rss_before
    return {
        "workers": int(WORKERS),
        "mix": f"/recommend, {int(100 * (1 - COLD_SHARE))}% known users, "
        f"{int(100 * COLD_SHARE)}% cold profiles (text)",
        "ramp": steps,
        "saturation": {
            "concurrency": sat["concurrency"],
            "ok_per_s": sat["ok_per_s"],
            "p99_ms": sat["p99_ms"],
        },
        "offered_per_s": round(rate, 1),
        "overload_s": duration,
        "during": during,
        "not_sent_client_cap": record.not_sent,
        "normal_before": normal,
        "p99_ratio": round(ratio, 2) if ratio else None,
        "shed_share": round(shed_share, 3),
        "rss_mib_before_after": [rss_before, rss_after],
        "rss_change": round(rss_change, 3),
        "recovery_s": recovery,
        "server_alive_after": svc.proc is not None and svc.proc.poll() is None,
        "client_cpu_pct_during": round(100 * (cpu1 - cpu0) / (t_off - t_on), 1),
        "load_average_at_overload": load0,
        "targets": {
            "p99_ratio_le_2": ratio is not None and ratio <= 2,
            "rss_within_10pct": abs(rss_change) <= 0.10,
            "recovery_le_5s": recovery is not None and recovery <= 5,
            "server_up": svc.proc is not None and svc.proc.poll() is None,
        },
        "series": s
        | {"overload_from_s": round(t_on - base0, 1), "overload_to_s": round(t_off - base0, 1)},
    }


async def worker_kill(svc: Service, body, quick: bool) -> dict[str, Any]:
    concurrency = 8
    # connections recycled every second: the new worker gets its share once it listens
    record, client = Record(), Client(svc.port, max_age_s=1.0)
    pids = workers(svc.proc.pid)
    assert len(pids) == 2, pids
    log_ready = svc.log.read_text(errors="replace").count("] ready in ")
    t0 = time.monotonic()
    load = asyncio.create_task(closed_loop(client, body, concurrency, 300.0, record, seed=3))
    await asyncio.sleep(6.0 if quick else 10.0)
    victim = pids[0]
    t_kill = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    new_pid, t_seen, t_ready = None, None, None
    while time.monotonic() - t_kill < 240:
        await asyncio.sleep(0.2)
        fresh = [p for p in workers(svc.proc.pid) if p not in pids]
        if fresh and new_pid is None:
            new_pid, t_seen = fresh[0], time.monotonic()
        if new_pid and svc.log.read_text(errors="replace").count("] ready in ") > log_ready:
            t_ready = time.monotonic()
            break
    await asyncio.sleep(15.0 if quick else 25.0)
    load.cancel()
    await asyncio.gather(load, return_exceptions=True)
    t_end = time.monotonic()
    s = series(record, t0, t_end)
    pre = summary(record, t0 + 2.0, t_kill)
    gap = summary(record, t_kill, t_ready or t_end)
    kill_s = round(t_kill - t0, 1)

    def after_kill(match) -> int:
        pairs = zip(record.ends, record.statuses, strict=True)
        return sum(1 for t, st in pairs if t >= t_kill and match(st))

    back = back_to_normal(s, kill_s, 0.9 * pre["ok_per_s"], window=3)
    return {
        "workers": int(WORKERS),
        "clients": concurrency,
        "mix": f"/recommend, {int(100 * (1 - COLD_SHARE))}% known, closed loop, "
        "connections recycled after 1 s",
        "before_kill": pre,
        "while_one_worker": gap,
        # after the kill: no answer (in flight on the killed worker), and 503 + Retry-After
        # from the new worker while it loads (it listens before its models are loaded; these
        # clients retry at once instead of after Retry-After)
        "requests_failed": after_kill(lambda st: st != 200),
        "failed_no_answer": after_kill(lambda st: st == 0),
        "answered_503_while_loading": after_kill(lambda st: st == 503),
        "new_worker_started_s": round(t_seen - t_kill, 1) if t_seen else None,
        "new_worker_ready_s": round(t_ready - t_kill, 1) if t_ready else None,
        "throughput_back_s": back,
        # every whole second between the kill and the new worker's readiness had answers
        "other_worker_kept_serving": gap["ok"] > 0
        and all(
            v > 0
            for t, v in zip(s["t_s"], s["ok_per_s"], strict=True)
            if kill_s + 1 < t <= (t_ready or t_end) - t0
        ),
        "series": s
        | {"kill_at_s": kill_s, "ready_at_s": round(t_ready - t0, 1) if t_ready else None},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short phases (15 s overload)")
    parser.add_argument("--only", choices=("kill", "overload"), help="one scenario")
    parser.add_argument("--label", default="", help="suffix of the results keys (other settings)")
    args = parser.parse_args()
    suffix = f"_{args.label}" if args.label else ""
    if not have_models():
        sys.exit("no adrec models in the store: run `make export` first")
    req = Requests(catalog(), load_pool())
    body = mixed(req)
    settings = {k: v for k, v in os.environ.items() if k.startswith("ADREC_")}
    flags = sys.argv[1:]
    command = " ".join([*(f"{k}={v}" for k, v in settings.items()),
                        "python -m benchmarks.reliability", *flags])  # fmt: skip
    env = {"ADREC_WORKERS": WORKERS}
    common = {"command": command, "machine": describe_machine()["cpu"], "date": time.ctime()}
    if args.only in (None, "overload"):
        with Service("reliability-overload", env) as svc:
            load_start = load_average()
            out = asyncio.run(overload(svc, body, args.quick))
        out |= {**common, "load_average": [load_start, load_average()]}
        write_results("overload" + suffix, out)
        print({k: v for k, v in out.items() if k not in ("series", "ramp")})
    if args.only in (None, "kill"):
        with Service("reliability-kill", env) as svc:
            load_start = load_average()
            out = asyncio.run(worker_kill(svc, body, args.quick))
        out |= {**common, "load_average": [load_start, load_average()]}
        write_results("worker_kill" + suffix, out)
        print({k: v for k, v in out.items() if k != "series"})
    from benchmarks.reliability_plot import plot

    plot(RESULTS / "reliability.json", RESULTS / "reliability_faults.png")


if __name__ == "__main__":
    main()
