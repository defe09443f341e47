"""The feedback loop end to end, as the README walks through it, recorded.

    python -m benchmarks.walkthrough [--before 3000] [--after 3000] [--clients 8]
    make walkthrough

The steps (the README's commands in brackets), in a scratch folder so the repository's model
store and artifacts stay as they are and a second run starts from the same place:
1. a model store holding the encoders and the store's current scorer as its only version,
   version 1 (a fresh clone after `make export`);
2. the service with the A/B config rec_models/abtest/example_ab.toml: arm A pinned to version
   "1", arm B on the newest (`make serve AB=rec_models/abtest/example_ab.toml`);
3. `--before` responses of simulated traffic into it over HTTP, clicks by the known taste
   model, both arms served by version 1 (`python -m benchmarks.simulate_traffic`); one
   population throughout: what a user clicked, they click again only at the base rate;
4. `make retrain` on the service's event log: version 2 is published, or refused;
5. traffic again while POST /admin/reload swaps to version 2; every failed request counted;
   the swap is over once arm B has answered only from version 2 for `SETTLED_S` seconds;
   then `--after` more responses (A: version 1, B: version 2);
6. `python -m rec_models.abtest --since <the swap's end>` on the log: A (v1) against B (v2).
What happened goes to benchmarks/results/walkthrough.{json,md}; the service is started and
stopped by PID on loopback ports. Exit status 0 when every step worked and no request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.machine import RESULTS, ROOT, describe_machine, load_average
from benchmarks.simulate_traffic import Traffic, auth_headers, click_model, drive
from benchmarks.walkthrough_report import render_markdown

AB_CONFIG = ROOT / "rec_models" / "abtest" / "example_ab.toml"
SETTLED_S = 5.0  # arm B answered only from the new version this long: every worker switched


def scratch_store(source: Path, root: Path) -> tuple[Path, str]:
    """(BENTOML_HOME, the scorer's version) of a store under `root` linking the encoders and
    the current scorer version of the store at `source` (its only version there: "1")."""
    models = root / "bentoml_home" / "models"
    models.mkdir(parents=True)
    for folder in (source / "models").glob("adrec-encoder-*"):
        (models / folder.name).symlink_to(folder.resolve())
    first = (source / "models" / "adrec-scorer" / "latest").read_text().strip()
    (models / "adrec-scorer").mkdir()
    (models / "adrec-scorer" / first).symlink_to(
        (source / "models" / "adrec-scorer" / first).resolve()
    )
    (models / "adrec-scorer" / "latest").write_text(first)
    return models.parent, first


def module(args: list[str], home: Path, timeout: float = 7200) -> dict[str, Any]:
    """`python -m ...` against the store at `home`: exit status, output, wall, CPU, peak RSS."""
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}  # fmt: skip
    before, load, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), load_average(), time.time()
    done = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=timeout)  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "command": "python -m " + " ".join(args),
        "returncode": done.returncode,
        "stdout": done.stdout,
        "stderr_tail": [ln for ln in done.stderr.splitlines() if "it/s]" not in ln
                        and "s/it]" not in ln and "|" not in ln][-5:],
        "wall_s": round(time.time() - t0, 1),
        "cpu_s": round(cpu, 1),
        "peak_rss_mb": round(after.ru_maxrss / 1024),  # the largest child so far (Linux: KiB)
        "load_avg_1m": [load, load_average()],
    }  # fmt: skip


async def swap_phase(url: str, users, clicks, after: int, clients: int, seed: int) -> dict:
    """Traffic while POST /admin/reload swaps to the newest version; `after` more responses
    once arm B has settled on it. Returns the reload's answer, the traffic, the swap's end."""
    traffic, stop = Traffic(), asyncio.Event()
    task = asyncio.create_task(drive(url, users, clicks, 0, clients, seed, traffic=traffic,
                                     stop=stop, progress=False))  # fmt: skip
    await asyncio.sleep(3.0)  # traffic first, then the swap under it
    sent = time.time()
    async with httpx.AsyncClient(base_url=url, headers=auth_headers(), timeout=60) as c:
        reload = await c.post("/admin/reload", json={"version": "current"})
    answer = reload.json()
    old, new = answer.get("previous"), answer.get("version")
    settled = None
    while reload.status_code == 202 and not task.done() and time.time() < sent + 600:
        b = [a for a in traffic.answers if a.arm == "B" and a.status == "200"]
        last_old = max((a.done for a in b if a.model_version == old), default=sent)
        if any(a.model_version == new and a.done > last_old + SETTLED_S for a in b):
            settled = last_old
            break
        await asyncio.sleep(0.5)
    if settled is not None:
        while sum(a.sent > settled for a in traffic.answers) < after and not task.done():
            await asyncio.sleep(0.5)
    stop.set()
    await task
    return {"reload": {"status": reload.status_code, **answer, "sent": sent},
            "settled": settled, "traffic": traffic}  # fmt: skip


def served_versions(traffic: Traffic) -> dict[str, list[str]]:
    arms: dict[str, set[str]] = {}
    for a in traffic.answers:
        if a.status == "200":
            arms.setdefault(a.arm, set()).add(a.model_version)
    return {arm: sorted(v) for arm, v in sorted(arms.items())}


def run(work: Path, home: Path, retrain_args: list[str], config: Path | None, before: int,
        after: int, clients: int, seed: int = 0, workers: str = "2") -> dict[str, Any]:  # fmt: skip
    """Steps 2-6 against the store at `home` (version 1 in it); `retrain_args` go to
    `python -m rec_models.retrain` besides --events. Returns the record."""
    sys.path.insert(0, str(ROOT / "tests"))
    from harness import start_service, stop_service

    users, clicks = click_model(config)
    rec: dict[str, Any] = {"steps": []}
    t0 = time.time()
    svc = start_service(work / "serve.log", BENTOML_HOME=str(home), ADREC_WORKERS=workers,
                        ADREC_AB_CONFIG=str(AB_CONFIG))  # fmt: skip
    events = work / "events" / "events.sqlite"  # beside serve.log: the harness puts it there
    try:
        info = httpx.get(f"{svc.url}/info", headers=auth_headers(), timeout=30).json()
        rec["started"] = {"seconds": round(time.time() - t0, 1), "scorer": info.get("scorer"),
                          "load_avg_1m": load_average()}  # fmt: skip
        print(f"service up on {svc.url}: {info.get('scorer')}", flush=True)
        first = asyncio.run(drive(svc.url, users, clicks, before, clients, seed))
        rec["before"] = first.summary() | {"served": served_versions(first),
                                           "load_avg_1m": load_average()}  # fmt: skip
        print(f"before the retrain: {json.dumps(rec['before']['by_arm_and_version'])}")
        print("make retrain ...", flush=True)
        retrain = module(["rec_models.retrain", *retrain_args, "--events", str(events)], home)
        rec["retrain"] = retrain
        print(retrain["stdout"] or "\n".join(retrain["stderr_tail"]), flush=True)
        if retrain["returncode"] != 0:
            return rec
        print("traffic across POST /admin/reload ...", flush=True)
        swap = asyncio.run(swap_phase(svc.url, users, clicks, after, clients, seed + 1))
        traffic: Traffic = swap.pop("traffic")
        rec["swap"] = swap | traffic.summary() | {"served": served_versions(traffic),
                                                  "load_avg_1m": load_average()}  # fmt: skip
        print(f"swap: {swap['reload']}, failed {rec['swap']['failed']}", flush=True)
        if swap["settled"] is None:
            return rec
        since = f"{swap['settled'] + 1e-3:.3f}"
        ab = ["rec_models.abtest", "--events", str(events), "--config", str(AB_CONFIG),
              "--since", since]  # fmt: skip
        rec["abtest"] = {
            "since": since,
            "text": module(ab, home)["stdout"],
            "json": json.loads(module([*ab, "--json"], home)["stdout"] or "null"),
        }
        print(rec["abtest"]["text"], flush=True)
    finally:
        rec["service_left_running"] = [p.pid for p in stop_service(svc)]
    return rec


def ok(rec: dict[str, Any]) -> bool:
    return (
        rec.get("retrain", {}).get("returncode") == 0
        and "abtest" in rec
        and rec["before"]["failed"] == 0
        and rec["swap"]["failed"] == 0
        and rec["swap"]["feedback_failed"] == 0
        and not rec["service_left_running"]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.walkthrough",
                                description=__doc__.split("\n\n")[0])  # fmt: skip
    p.add_argument("--before", type=int, default=3000, help="responses before the retrain")
    p.add_argument("--after", type=int, default=3000, help="responses after the swap")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--artifacts", type=Path, default=ROOT / "artifacts")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (its path)")
    args = p.parse_args(argv)
    source = Path(os.environ.get("BENTOML_HOME") or ROOT / "bentoml_home")
    served = args.artifacts / "train_config.json"
    if not (source / "models" / "adrec-scorer" / "latest").is_file() or not served.is_file():
        print(f"walkthrough: no scorer in {source} or no {served}: run `make export` first",
              file=sys.stderr)  # fmt: skip
        return 2
    work = Path(tempfile.mkdtemp(prefix="adrec-walkthrough-"))
    home, first = scratch_store(source, work)
    (work / "artifacts").mkdir()
    (work / "artifacts" / "train_config.json").write_bytes(served.read_bytes())
    started = time.time()
    rec = {"command": "python -m benchmarks.walkthrough " + " ".join(argv or sys.argv[1:]),
           "machine": describe_machine(), "load_avg_1m_start": load_average(),
           "version_1": first, "ab_config": AB_CONFIG.relative_to(ROOT).as_posix()}  # fmt: skip
    rec |= run(work, home, ["--artifacts", str(work / "artifacts")], served, args.before,
               args.after, args.clients, args.seed)  # fmt: skip
    rec["load_avg_1m_end"], rec["total_s"] = load_average(), round(time.time() - started, 1)
    rec["ok"] = ok(rec)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "walkthrough.json").write_text(json.dumps(rec, indent=2, default=str))
    (RESULTS / "walkthrough.md").write_text(render_markdown(rec))
    print(f"wrote {RESULTS / 'walkthrough.json'} and walkthrough.md; ok: {rec['ok']}")
    if args.keep:
        print(f"scratch folder kept: {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0 if rec["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
