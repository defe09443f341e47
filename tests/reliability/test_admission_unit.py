"""Admission and deadlines without a server: slots handed over in order, no slot leaked by a
waiter that gives up or times out, the batcher dropping a request past its deadline unencoded."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rec_models.serving.admission import Admission, parse_timeout
from rec_models.serving.batcher import MicroBatcher
from rec_models.serving.deadline import reset_deadline, set_deadline
from rec_models.serving.errors import (
    BadRequestError,
    DeadlineExceededError,
    TooManyRequestsError,
)


def test_slots_queue_refuse_and_never_leak():
    async def scenario() -> None:
        adm = Admission(max_concurrent=1, max_queued=1)
        await adm.acquire()
        waiter = asyncio.create_task(adm.acquire())
        await asyncio.sleep(0)
        with pytest.raises(TooManyRequestsError):
            await adm.acquire()  # 1 running + 1 queued: full
        adm.release()  # handed to the waiter
        await waiter
        assert adm.active == 1 and adm.queued == 0
        with pytest.raises(DeadlineExceededError):
            await adm.acquire(timeout_s=0.01)  # its deadline passes while queued
        gone = asyncio.create_task(adm.acquire())
        await asyncio.sleep(0)
        gone.cancel()  # the client went away
        await asyncio.gather(gone, return_exceptions=True)
        adm.release()
        assert adm.active == 0 and adm.queued == 0  # nothing leaked
        await adm.acquire()  # and the slot is free again

    asyncio.run(scenario())


@pytest.mark.parametrize("raw", [b"0", b"-1", b"abc", b"nan", b"inf", b"1e9"])
def test_bad_timeouts_are_refused(raw):
    with pytest.raises(BadRequestError, match="x-request-timeout"):
        parse_timeout(raw)


def test_the_batcher_drops_a_request_past_its_deadline_unencoded():
    encoded: list[str] = []
    running, release = threading.Event(), threading.Event()

    def encode(texts: list[str]) -> np.ndarray:
        running.set()
        release.wait(10)  # the first batch holds the encoder
        encoded.extend(texts)
        return np.zeros((len(texts), 2), np.float32)

    async def scenario() -> None:
        batcher = MicroBatcher(encode, max_batch_size=4)
        first = asyncio.create_task(batcher.submit(["first"]))
        await asyncio.to_thread(running.wait, 10)
        token = set_deadline(0.05)
        queued = asyncio.create_task(batcher.submit(["hurried"]))  # queued behind "first"
        reset_deadline(token)
        await asyncio.sleep(0.1)  # its deadline passes while it waits
        release.set()
        await first
        with pytest.raises(DeadlineExceededError, match="waited for the encoder"):
            await queued
        token = set_deadline(0.0)  # already passed: refused before it is queued
        with pytest.raises(DeadlineExceededError, match="before it was queued"):
            await batcher.submit(["late"])
        reset_deadline(token)
        await batcher.close()

    asyncio.run(scenario())
    assert encoded == ["first"]


def test_a_wait_for_a_slot_is_bounded():
    """max_queue_wait_s: a waiter that got no slot in time is refused (429, not 408: the bound
    is the server's); once slots are freed at a known rate, a request whose expected wait is
    longer is refused at once."""

    async def scenario() -> None:
        adm = Admission(max_concurrent=1, max_queued=100, max_queue_wait_s=0.15, grace_s=0)
        await adm.acquire()
        with pytest.raises(TooManyRequestsError, match=r"no slot within 0\.15 s"):
            await adm.acquire()
        assert adm.queued == 0 and adm.active == 1
        for _ in range(10):  # 10 slots freed within the last second: 10 per second
            adm.release()
            await adm.acquire()
        waiter = asyncio.create_task(adm.acquire(timeout_s=5))
        await asyncio.sleep(0)
        assert adm.queued == 1  # expected wait 1 / (10 per s) = 0.1 s: queued; for the next ...
        with pytest.raises(TooManyRequestsError, match=r"a wait of 0\.15 s"):
            await adm.acquire()  # ... 0.2 s > 0.15 s: refused without waiting
        adm.release()
        await waiter
        adm.release()
        assert adm.active == 0 and adm.queued == 0

    asyncio.run(scenario())


def test_a_burst_waits_an_overload_is_shed():
    """The wait bound applies once the queue has stood (not been empty) for grace_s: a burst
    that drains sooner waits as long as it needs; past grace_s, a waiter that has waited past
    the bound is refused when its turn comes, and the next one gets the slot."""

    async def scenario() -> None:
        adm = Admission(max_concurrent=1, max_queued=100, max_queue_wait_s=0.05, grace_s=0.5)
        await adm.acquire()
        burst = [asyncio.create_task(adm.acquire()) for _ in range(2)]
        await asyncio.sleep(0.1)  # past the bound, within the grace
        assert not adm.standing(time.monotonic())
        for task in burst:  # both served, although they waited longer than the bound
            adm.release()
            await task
        adm.release()
        assert adm.active == 0 and adm.queued == 0
        adm = Admission(max_concurrent=1, max_queued=100, max_queue_wait_s=0.2, grace_s=0.3)
        await adm.acquire()
        old = asyncio.create_task(adm.acquire())
        await asyncio.sleep(0.35)  # the queue has stood for longer than grace_s
        young = asyncio.create_task(adm.acquire())
        await asyncio.sleep(0)
        assert adm.standing(time.monotonic()) and adm.queued == 2
        adm.release()  # old waited 0.35 s > 0.2 s: refused; young gets the slot
        with pytest.raises(TooManyRequestsError, match=r"no slot within 0\.2 s"):
            await old
        await young
        adm.release()
        assert adm.active == 0 and adm.queued == 0 and adm.refused == 1
        # The queue emptied: the overload is not over at once (refusals empty the queue), so a
        # new waiter is held to the bound (here refused at once: 1 slot freed in the last
        # second, an expected wait of 1 s) ...
        await adm.acquire()
        late = asyncio.create_task(adm.acquire())
        await asyncio.sleep(0)
        assert adm.standing(time.monotonic())
        with pytest.raises(TooManyRequestsError, match=r"a wait of 0\.2 s"):
            await late
        adm.release()
        await asyncio.sleep(0.35)  # ... until the queue has not stood for grace_s
        assert not adm.standing(time.monotonic())
        assert adm.active == 0 and adm.queued == 0

    asyncio.run(scenario())


LAYERS_OF_THE_REAL_APP = """
import json
import service
app = service.Recommender.to_asgi()
ours = []
while not hasattr(app, "user_middleware"):  # ours, down to BentoML's Starlette app
    ours.append(type(app).__name__)
    app = app.app
print(json.dumps([ours, [m.cls.__name__ for m in app.user_middleware]]))
"""


def test_the_front_door_runs_before_bentomls_layers(tmp_path):
    """The key check, the body reader and admission wrap the app BentoML builds (front.py), so
    a refusal never pays for BentoML's request metrics, tracing span or timeout task."""
    env = {**os.environ, "BENTOML_HOME": str(tmp_path), "ADREC_API_KEY": "k" * 16}
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", LAYERS_OF_THE_REAL_APP], cwd=root, env=env,
                         capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    ours, bentoml_layers = json.loads(out.stdout.strip().splitlines()[-1])
    assert ours == ["ApiKeyMiddleware", "BodyReader", "AdmissionMiddleware"]
    assert {"OpenTelemetryMiddleware", "TimeoutMiddleware"} <= set(bentoml_layers)  # inside
    assert not {"ApiKeyMiddleware", "BodyReader", "AdmissionMiddleware"} & set(bentoml_layers)
