"""The service's feedback loop without a server: arms, impressions through a real SQLite sink,
feedback statuses, stats, the API-key check, and the reload target every worker follows."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from rec_models.abtest.config import parse_ab
from rec_models.events import EventError, EventLogSettings, SQLiteSink
from rec_models.serving import scorers as scorers_mod
from rec_models.serving.errors import NotReadyError
from rec_models.serving.feedback import FeedbackLoop, model_version
from rec_models.serving.feedback_routes import authorized
from rec_models.serving.runtime import Recommendation
from rec_models.serving.scorers import CONTROL_FILE, ScorerVersions, UnknownVersionError
from rec_models.text.profiles import Profile

AB = {
    "experiment": "t",
    "control": "A",
    "variants": [
        {"name": "A", "share": 0.5},
        {"name": "B", "share": 0.5, "model_version": "1"},
    ],
}


def runtime(version: str) -> Any:
    return SimpleNamespace(source={"tag": f"adrec-scorer:{version}"}, name=version)


class Pins:
    def __init__(self, pinned: dict[str, Any]) -> None:
        self._pinned = pinned

    def pinned(self, version: str) -> Any:
        return self._pinned.get(version)


@pytest.fixture
def sink(tmp_path: Path) -> Any:
    s = SQLiteSink(tmp_path / "events.sqlite", EventLogSettings(unknown_request_grace_s=0))
    yield s
    s.close()


def test_arms_are_stable_and_pinned_arms_get_their_version(sink: Any) -> None:
    experiment, _ = parse_ab(AB)
    v1, v2 = runtime("1"), runtime("2")
    loop = FeedbackLoop(sink, experiment, Pins({"1": v1}), lambda: "int8")
    arms = {}
    for user in range(1, 200):
        routes = {loop.route(user, v2).arm for _ in range(3)}
        assert len(routes) == 1  # the same arm every time
        route = loop.route(user, v2)
        arms[user] = route.arm
        assert route.runtime is (v1 if route.arm == "B" else v2)
        assert route.model_version == ("1" if route.arm == "B" else "2")
    assert 60 < sum(a == "A" for a in arms.values()) < 140  # ~half each
    waiting = FeedbackLoop(sink, experiment, Pins({}), lambda: "int8")  # v1 not loaded yet
    b_user = next(u for u, arm in arms.items() if arm == "B")
    with pytest.raises(NotReadyError):
        waiting.route(b_user, v2)
    cold = Profile(28, "F", "engineer", [50], "space")
    same = Profile(28, "f", " Engineer", [50], "Space ")  # equal up to case and spaces
    assert loop.route(cold, v2).fingerprint == loop.route(same, v2).fingerprint
    assert loop.route(cold, v2).user_id is None and loop.route(7, v2).fingerprint is None


def test_impressions_feedback_and_stats(sink: Any) -> None:
    loop = FeedbackLoop(sink, None, Pins({}), lambda: "int8")
    route = loop.route(3, runtime("7"))
    assert route.arm == "default" and model_version(route.runtime) == "7"
    recs = [Recommendation(10, "a", 1.5), Recommendation(20, "b", 0.5)]
    request_id = loop.log(route, recs, np.array([0.6, 0.4]))
    assert len(request_id) == 32 and request_id != loop.log(route, recs, np.array([0.6, 0.4]))

    async def run() -> None:
        click = {"request_id": request_id, "item_id": 20, "event": "click"}
        assert await loop.feedback(click) == {"stored": 1}
        refusals = [
            (click, 409),  # the same event again: stored once
            ({**click, "request_id": "f" * 32}, 404),
            ({**click, "item_id": 30}, 400),  # not shown in that request
            ({**click, "event": "view"}, 400),
            ([click] * 1001, 413),
        ]
        for body, status in refusals:
            with pytest.raises(EventError) as caught:
                await loop.feedback(body)
            assert caught.value.status == status, body
        stats = await loop.stats()
        arm = stats["by_variant"][0]
        assert (arm["variant"], arm["model_version"]) == ("default", "7")
        assert arm["all_time"]["impressions"] == 4 and arm["all_time"]["clicks"] == 1
        assert stats["process"]["feedback_written"] == 1

    asyncio.run(run())


def test_event_log_off_still_names_requests() -> None:
    loop = FeedbackLoop(None, None, Pins({}), lambda: "int8")
    route = loop.route(3, runtime("7"))
    assert len(loop.log(route, [Recommendation(10, "a", 1.0)], np.array([0.5]))) == 32
    with pytest.raises(EventError) as caught:
        asyncio.run(loop.feedback({"request_id": "a", "item_id": 1, "event": "click"}))
    assert caught.value.status == 503 and "ADREC_EVENT_LOG" in str(caught.value)


def test_api_key_check() -> None:
    assert authorized(None, "") and authorized("anything", "")
    assert authorized("Bearer s3cret", "s3cret") and authorized("bearer s3cret", "s3cret")
    for header in (None, "", "Bearer", "Bearer s3cre", "Basic s3cret", "s3cret"):
        assert not authorized(header, "s3cret"), header


class StubCore:
    """What ScorerVersions needs of the serving core: the current runtime, build and swap."""

    variant = "int8"

    def __init__(self, version: str, fail: set[str] | None = None) -> None:
        self.runtime = runtime(version)
        self.fail = fail or set()

    def build_runtime(self, tag: str) -> Any:
        if tag in self.fail:
            raise RuntimeError("sha256 mismatch")
        return runtime(tag.partition(":")[2])

    def swap_runtime(self, new: Any) -> None:
        self.runtime = new


def test_a_reload_reaches_every_worker(tmp_path: Path, monkeypatch: Any) -> None:
    store = {"current": "3", "2": "2", "3": "3"}

    def resolve(ref: str) -> tuple[str, str]:
        if ref not in store:
            raise UnknownVersionError(f"model store: no version {ref!r}")
        return store[ref], f"adrec-scorer:{store[ref]}"

    monkeypatch.setattr(scorers_mod, "resolve", resolve)
    asked, other = StubCore("2"), StubCore("2", fail={"adrec-scorer:3"})
    one = ScorerVersions(asked, None, tmp_path, 0.01)
    two = ScorerVersions(other, None, tmp_path, 0.01)

    async def wait_for(scorers: ScorerVersions, version: str) -> None:
        for _ in range(200):
            if scorers.current == version:
                return
            await asyncio.sleep(0.01)

    async def run() -> None:
        answer = await one.request("current")
        assert answer == {**answer, "version": "3", "previous": "2", "state": "loading"}
        target = json.loads((tmp_path / CONTROL_FILE).read_text())
        assert target["tag"] == "adrec-scorer:3"
        await wait_for(one, "3")
        assert one.current == "3" and one.swaps[-1]["to"] == "3"
        await two.check()  # the other worker's watch: it fails to load 3, keeps serving 2
        assert two.current == "2" and "sha256 mismatch" in (two.error or "")
        await two.check()  # a failed target is not retried in a loop
        assert (await one.request("2"))["state"] == "loading"  # back to 2 (a rollback)
        await two.check()
        assert two.current == "2" and not two.swaps  # already serving it: nothing loaded
        await wait_for(one, "2")
        assert [s["to"] for s in one.swaps] == ["3", "2"]
        with pytest.raises(UnknownVersionError):
            await one.request("9")
        # A restarted worker starts on the recorded target.
        assert ScorerVersions(StubCore("3"), None, tmp_path, 0.01).startup_tag() == "adrec-scorer:2"

    asyncio.run(run())


KEY = "k" * 16  # the service accepts keys of 16 characters or more
BEARER = f"Bearer {KEY}"


def test_routes_name_the_field_at_fault(sink: Any) -> None:
    import httpx

    from rec_models.serving.feedback_routes import create_app

    class Stub:
        def __init__(self) -> None:
            self.loop = FeedbackLoop(sink, None, Pins({}), lambda: "int8")
            self.core = SimpleNamespace(ready=False)
            self.scorers = None

    app = create_app(Stub, api_key=KEY)

    async def run() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            cases = [
                ("/feedback", b"{bad", {}, 400, ["body"]),
                ("/feedback", b"", {}, 400, ["body"]),
                ("/feedback", b'{"request_id": "a", "item_id": "1", "event": "click"}', {}, 400,
                 ["item_id"]),
                ("/admin/reload", b"{}", {}, 401, ["header", "authorization"]),
                ("/admin/reload", b"{}", {"authorization": "Bearer nope"}, 401,
                 ["header", "authorization"]),
                ("/admin/reload", b'{"version": 2}', {"authorization": BEARER}, 400,
                 ["version"]),
                ("/admin/reload", b'{"v": "2"}', {"authorization": BEARER}, 400, ["body"]),
                ("/admin/reload", b"{}", {"authorization": BEARER}, 503, []),  # loading
            ]  # fmt: skip
            for path, body, headers, status, loc in cases:
                r = await c.post(path, content=body, headers=headers)
                assert r.status_code == status, (path, body, r.text)
                assert r.json()["detail"][0]["loc"] == loc, r.text
            stats = await c.get("/stats")
            assert (
                stats.status_code == 200 and stats.json()["total"]["all_time"]["impressions"] == 0
            )

    asyncio.run(run())
