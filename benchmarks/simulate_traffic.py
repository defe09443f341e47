"""Impressions and clicks driven into the running service over HTTP, by a known click model.

    python -m benchmarks.simulate_traffic [--url http://127.0.0.1:3000] [--requests 3000]
        [--seconds 0] [--clients 8] [--seed 0] [--config artifacts/train_config.json]
        [--out traffic.json]

`clients` closed-loop clients each pick a known user of the dataset at random, POST /recommend
{"user_id", "k": 10}, draw clicks and conversions for the returned items with
benchmarks/simulate_clicks.py's taste model (one population: what a user clicked, they click
again only at the base rate) and POST them to /feedback (one call per response, as a client app
would), then go again, until `requests` responses are done or `seconds` pass,
whichever comes first. With ADREC_API_KEY set, every call carries `Authorization: Bearer <key>`.

Counted, never hidden: every /recommend that is not a 200 answer (status or exception kind) and
every /feedback that is not a 200; per arm and model version the responses, impressions, clicks
and conversions as the client saw them; the /recommend latency. Exit status 0 when every call
succeeded, 1 when any failed, 2 when the service cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.simulate_clicks import TasteClicks
from benchmarks.stats import summarize

K = 10


@dataclass
class Answer:
    """One /recommend (and its /feedback) as the client saw it."""

    sent: float  # unix seconds
    done: float
    latency_ms: float
    status: str  # "200", another status, or the exception's name
    arm: str = ""
    model_version: str = ""
    impressions: int = 0
    clicks: int = 0
    conversions: int = 0
    feedback_status: str = ""  # "" when there was nothing to send


@dataclass
class Traffic:
    answers: list[Answer] = field(default_factory=list)

    def failed(self) -> list[Answer]:
        return [a for a in self.answers if a.status != "200"]

    def feedback_failed(self) -> list[Answer]:
        return [a for a in self.answers if a.feedback_status not in ("", "200")]

    def summary(self) -> dict[str, Any]:
        cells: dict[str, dict[str, Any]] = {}
        for a in self.answers:
            if a.status != "200":
                continue
            c = cells.setdefault(f"{a.arm}/v{a.model_version}", {
                "arm": a.arm, "model_version": a.model_version, "responses": 0,
                "impressions": 0, "clicks": 0, "conversions": 0,
                "first_s": a.done, "last_s": a.done})  # fmt: skip
            c["responses"] += 1
            c["impressions"] += a.impressions
            c["clicks"] += a.clicks
            c["conversions"] += a.conversions
            c["first_s"], c["last_s"] = min(c["first_s"], a.done), max(c["last_s"], a.done)
        for c in cells.values():
            c["ctr"] = round(c["clicks"] / c["impressions"], 4) if c["impressions"] else None
        fails = self.failed()
        return {
            "requests": len(self.answers),
            "failed": len(fails),
            "failure_kinds": dict(Counter(a.status for a in fails)),
            "feedback_failed": len(self.feedback_failed()),
            "feedback_failure_kinds": dict(Counter(a.feedback_status
                                                   for a in self.feedback_failed())),
            "by_arm_and_version": dict(sorted(cells.items())),
            "recommend_latency": summarize([a.latency_ms for a in self.answers]),
            "started": min((a.sent for a in self.answers), default=None),
            "ended": max((a.done for a in self.answers), default=None),
        }  # fmt: skip


def auth_headers() -> dict[str, str]:
    key = os.environ.get("ADREC_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


async def one_response(client, user: int, clicks: TasteClicks, rng) -> Answer:
    import httpx

    sent, t0 = time.time(), time.perf_counter()
    try:
        r = await client.post("/recommend", json={"user_id": user, "k": K})
        status = str(r.status_code)
    except httpx.HTTPError as exc:
        r, status = None, type(exc).__name__
    answer = Answer(sent, time.time(), (time.perf_counter() - t0) * 1e3, status)
    if r is None or r.status_code != 200:
        return answer
    body = r.json()
    items = [int(it["item_id"]) for it in body["items"]]
    answer.arm, answer.model_version = str(body["arm"]), str(body["model_version"])
    answer.impressions = len(items)
    click, convert = clicks.draw(user, items, rng)
    events = [{"request_id": body["request_id"], "item_id": items[j], "event": "click"}
              for j in np.flatnonzero(click)]  # fmt: skip
    events += [{"request_id": body["request_id"], "item_id": items[j], "event": "conversion"}
               for j in np.flatnonzero(convert)]  # fmt: skip
    answer.clicks, answer.conversions = int(click.sum()), int(convert.sum())
    if events:
        try:
            fb = await client.post("/feedback", json=events)
            answer.feedback_status = str(fb.status_code)
        except httpx.HTTPError as exc:
            answer.feedback_status = type(exc).__name__
    return answer


async def drive(
    url: str,
    users: np.ndarray,
    clicks: TasteClicks,
    requests: int,
    clients: int = 8,
    seed: int = 0,
    seconds: float = 0.0,
    traffic: Traffic | None = None,
    stop: asyncio.Event | None = None,
    progress: bool = True,
) -> Traffic:
    """Run the clients until `requests` responses are done (0: no limit) or `seconds` pass
    (0: no limit) or `stop` is set; answers are appended to `traffic` as they come, so a
    caller can watch them."""
    import httpx
    from tqdm.auto import tqdm

    traffic = traffic if traffic is not None else Traffic()
    stop = stop or asyncio.Event()
    deadline = time.monotonic() + seconds if seconds > 0 else float("inf")
    issued = [0]  # requests sent by this call (the clients share one event loop)
    bar = tqdm(total=requests or None, desc="traffic", unit="req", disable=not progress)

    async def client(cid: int) -> None:
        rng = np.random.default_rng([seed, cid])
        async with httpx.AsyncClient(base_url=url, headers=auth_headers(), timeout=60) as c:
            while not stop.is_set() and time.monotonic() < deadline:
                if requests and issued[0] >= requests:
                    return
                issued[0] += 1
                user = int(rng.choice(users))
                traffic.answers.append(await one_response(c, user, clicks, rng))
                bar.update(1)

    try:
        await asyncio.gather(*(client(c) for c in range(clients)))
    finally:
        bar.close()
    return traffic


def click_model(config: Path | None):
    """The dataset's known users and the taste click model over it."""
    from rec_models.config import load_config
    from rec_models.pipeline import build_context

    cfg = load_config(config if config and config.is_file() else None)
    ctx = build_context(cfg)
    return ctx.user_ids, TasteClicks(ctx)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.simulate_traffic",
                                description=__doc__.split("\n\n")[0])  # fmt: skip
    p.add_argument("--url", default="http://127.0.0.1:3000")
    p.add_argument("--requests", type=int, default=3000, help="responses to drive (0: no limit)")
    p.add_argument("--seconds", type=float, default=0.0, help="stop after this long (0: never)")
    p.add_argument("--clients", type=int, default=8, help="concurrent closed-loop clients")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", type=Path, default=Path("artifacts/train_config.json"),
                   help="the dataset's configuration (default: the served model's)")  # fmt: skip
    p.add_argument("--out", type=Path, help="write the summary as JSON here")
    args = p.parse_args(argv)
    import httpx

    try:
        httpx.get(f"{args.url}/readyz", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        print(f"simulate_traffic: {args.url} is not ready ({exc})", file=sys.stderr)
        return 2
    users, clicks = click_model(args.config)
    if not args.requests and args.seconds <= 0:
        print("simulate_traffic: give --requests or --seconds (both 0: no end)", file=sys.stderr)
        return 2
    traffic = asyncio.run(
        drive(args.url, users, clicks, args.requests, args.clients, args.seed, args.seconds)
    )
    summary = traffic.summary()
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps(summary | {"answers": [asdict(a) for a in
                                                              traffic.answers]}))  # fmt: skip
    return 1 if summary["failed"] or summary["feedback_failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
