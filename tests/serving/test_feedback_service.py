"""The feedback loop through the real server (`bentoml serve`, 2 workers, 127.0.0.1): recommend
-> feedback -> /stats counts, A/B arms stable per user with a pinned version, a hot swap under
32 clients of load with no failed request, and acknowledged feedback surviving kill -9."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest
from harness import BENTOML_HOME, have_models, start_service, stop_service

from benchmarks.versions_store import two_version_store

KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}  # the key guards every route but the health probes
USERS = list(range(1, 25))
AB = """[ab]
experiment = "loop-test"
control = "A"
[[ab.variants]]
name = "A"
share = 0.5
[[ab.variants]]
name = "B"
share = 0.5
model_version = "1"
"""


class Server:
    """The running server and how to (re)start it on the same store, config and event log."""

    def __init__(self, root: Path) -> None:
        self.root = root
        home, self.first = two_version_store(BENTOML_HOME, root)
        (root / "ab.toml").write_text(AB)
        self.env = {
            "BENTOML_HOME": str(home),
            "ADREC_SCORER_TAG": f"adrec-scorer:{self.first}",  # start on the older version
            "ADREC_AB_CONFIG": str(root / "ab.toml"),
            "ADREC_API_KEY": KEY,
            "ADREC_WORKERS": "2",
            "ADREC_RELOAD_POLL_MS": "200",
            "ADREC_BATCH_MAX_LATENCY_MS": "30000",
        }
        self.starts = 0
        self.svc: Any = None

    def start(self) -> None:
        self.starts += 1
        self.svc = start_service(self.root / f"serve-{self.starts}.log", headers=AUTH, **self.env)

    @property
    def url(self) -> str:
        return str(self.svc.url)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not have_models():
        pytest.skip(f"no adrec models in {BENTOML_HOME}: run `make export` first")
    srv = Server(tmp_path_factory.mktemp("loop"))
    srv.start()
    yield srv
    stop_service(srv.svc)


def recommend(url: str, user: int, k: int = 5) -> dict[str, Any]:
    r = httpx.post(f"{url}/recommend", json={"user_id": user, "k": k}, timeout=30, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


def stats_when(url: str, done: Any, timeout_s: float = 20.0) -> dict[str, Any]:
    """/stats once `done(stats)` holds (impressions are committed asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while True:
        stats = httpx.get(f"{url}/stats", timeout=10, headers=AUTH).json()
        if done(stats) or time.monotonic() > deadline:
            return stats
        time.sleep(0.2)


def by_arm(stats: dict[str, Any], arm: str) -> dict[str, int]:
    rows = [r["all_time"] for r in stats["by_variant"] if r["variant"] == arm]
    return {k: sum(r[k] for r in rows) for k in ("impressions", "clicks", "conversions")}


def test_recommend_feedback_stats(server: Server) -> None:
    url = server.url
    first = {u: recommend(url, u) for u in USERS}
    again = {u: recommend(url, u) for u in USERS}
    for u in USERS:  # one arm per user; arm B pins the first version, A serves the current one
        assert first[u]["arm"] == again[u]["arm"] and first[u]["arm"] in ("A", "B")
        assert first[u]["model_version"] == server.first
        assert first[u]["request_id"] != again[u]["request_id"]
    arms = {u: first[u]["arm"] for u in USERS}
    assert set(arms.values()) == {"A", "B"}
    # The v2 recommender names each row's request and arm, and logs it too.
    body = {"inputs": [{"name": "USER_ID", "datatype": "INT64", "shape": [4], "data": USERS[:4]},
                       {"name": "K", "datatype": "INT32", "shape": [1], "data": [5]}]}  # fmt: skip
    v2 = httpx.post(
        f"{url}/v2/models/recommender/infer", json=body, timeout=30, headers=AUTH
    ).json()
    outputs = {o["name"]: o["data"] for o in v2["outputs"]}
    assert outputs["ARM"] == [arms[u] for u in USERS[:4]] and len(set(outputs["REQUEST_ID"])) == 4

    clicks = [{"request_id": first[u]["request_id"], "item_id": first[u]["items"][0]["item_id"],
               "event": "click"} for u in USERS]  # fmt: skip
    r = httpx.post(f"{url}/feedback", json=clicks, timeout=30, headers=AUTH)
    assert r.status_code == 200 and r.json() == {"stored": len(USERS)}, r.text
    conversion = {**clicks[0], "event": "conversion"}
    assert httpx.post(f"{url}/feedback", json=conversion, headers=AUTH).json() == {"stored": 1}
    refused = {
        409: clicks[1],  # stored already: idempotent
        404: {**clicks[1], "request_id": "0" * 32},
        400: {**clicks[1], "item_id": -5},  # not shown in that request
        413: [clicks[1]] * 1001,
    }
    for status, bad in refused.items():
        r = httpx.post(f"{url}/feedback", json=bad, timeout=30, headers=AUTH)
        assert r.status_code == status, r.text
        assert r.json()["detail"][0]["type"] and r.json()["error"]
    shown = 2 * len(USERS) * 5 + 4 * 5
    stats = stats_when(url, lambda s: s["total"]["all_time"]["impressions"] >= shown)
    total = stats["total"]["all_time"]
    assert (total["impressions"], total["clicks"], total["conversions"]) == (shown, len(USERS), 1)
    for arm in ("A", "B"):
        assert by_arm(stats, arm)["clicks"] == sum(a == arm for a in arms.values())
    assert stats["experiment"]["shares"] == {"A": 0.5, "B": 0.5}
    deadline = time.monotonic() + 15
    while (
        "adrec_events_clicks{" not in httpx.get(f"{url}/metrics", headers=AUTH).text
    ):  # refreshed every 5 s
        assert time.monotonic() < deadline, "no adrec_events_clicks gauge on /metrics"
        time.sleep(1)


async def load(url: str, users: list[int], stop: asyncio.Event, out: list[Any]) -> None:
    """One closed-loop client: /recommend until `stop`; (latency s, status, arm, version)."""
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=60) as client:
        i = 0
        while not stop.is_set():
            user = users[i % len(users)]
            i += 1
            t0 = time.perf_counter()
            try:
                r = await client.post("/recommend", json={"user_id": user, "k": 10})
                body = r.json() if r.status_code == 200 else {}
                out.append((time.perf_counter() - t0, r.status_code, body.get("arm"),
                            body.get("model_version")))  # fmt: skip
            except httpx.HTTPError as exc:
                out.append((time.perf_counter() - t0, repr(exc), None, None))


def test_hot_swap_under_load(server: Server) -> None:
    url = server.url
    r = httpx.post(f"{url}/admin/reload", json={"version": "current"})
    assert r.status_code == 401, r.text  # no API key

    async def run() -> list[Any]:
        stop, results = asyncio.Event(), []
        clients = [asyncio.create_task(load(url, USERS[i % 8 :], stop, results)) for i in range(32)]
        await asyncio.sleep(1.0)
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30) as c:
            headers = {"Authorization": f"Bearer {KEY}"}
            r = await c.post("/admin/reload", json={"version": "current"}, headers=headers)
        assert r.status_code == 202, r.text
        answer = r.json()
        assert (answer["version"], answer["previous"], answer["state"]) == (
            "2",
            server.first,
            "loading",
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # until the last 200 arm-A answers all say 2
            recent = [v for _, s, arm, v in results[-600:] if arm == "A"][-200:]
            if len(recent) == 200 and set(recent) == {"2"}:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*clients)
        return results

    results = asyncio.run(run())
    failed = [r for r in results if r[1] != 200]
    latencies = np.array([r[0] for r in results])
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000
    print(f"\nhot swap under 32 clients: {len(results)} requests, {len(failed)} failed, "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms")  # fmt: skip
    assert not failed, failed[:5]
    a_versions = [v for _, _, arm, v in results if arm == "A"]
    assert a_versions[0] == server.first and a_versions[-1] == "2"
    assert {v for _, _, arm, v in results if arm == "B"} == {server.first}  # pinned
    info = httpx.get(f"{url}/info", headers=AUTH).json()
    assert info["scorer"]["version"] == "2" and info["scorer"]["pinned"] == {"B": "1"}


def test_acknowledged_feedback_survives_kill_9(server: Server) -> None:
    url = server.url
    before = stats_when(url, lambda s: True)["total"]["all_time"]["clicks"]
    acked = 0
    for u in USERS[:10]:
        rec = recommend(url, u)
        for item in rec["items"][:2]:
            event = {"request_id": rec["request_id"], "item_id": item["item_id"], "event": "click"}
            r = httpx.post(f"{url}/feedback", json=event, timeout=30, headers=AUTH)
            assert r.status_code == 200, r.text
            acked += 1
    # The whole tree, no clean-up: the workers sit in a process group of their own, so each
    # process is killed by PID.
    root = psutil.Process(server.svc.proc.pid)
    tree = [*root.children(recursive=True), root]
    for proc in tree:
        proc.send_signal(signal.SIGKILL)
    _, alive = psutil.wait_procs(tree, timeout=30)
    assert not alive, alive
    server.start()  # the same event log and reload target
    url = server.url
    stats = stats_when(url, lambda s: s["total"]["all_time"]["clicks"] >= before + acked, 5)
    assert stats["total"]["all_time"]["clicks"] == before + acked
    arms = {u: recommend(url, u) for u in USERS[:8]}
    for rec in arms.values():  # the restarted workers serve the version last reloaded to
        assert rec["model_version"] == ("2" if rec["arm"] == "A" else server.first)
