"""Admission and deadlines without a server: slots handed over in order, no slot leaked by a
waiter that gives up or times out, the batcher dropping a request past its deadline unencoded."""

from __future__ import annotations

import asyncio
import threading

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
        adm = Admission(max_concurrent=1, max_queued=100, max_queue_wait_s=0.15)
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
