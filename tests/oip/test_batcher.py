"""The micro-batcher: concurrent requests share batches, each caller gets its own rows back; a
lone request runs at once; a full queue sheds at once; batches group texts of similar length."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from rec_models.serving.batcher import MicroBatcher, char_bucket
from rec_models.serving.errors import OverloadedError


def _slow_double(delay_s: float):
    def fn(items: list[int]) -> np.ndarray:
        time.sleep(delay_s)
        return np.asarray(items, dtype=np.int64)[:, None] * np.array([[1, 2]])  # (n, 2)

    return fn


def test_concurrent_requests_are_batched_and_routed_back() -> None:
    async def main() -> tuple[list[np.ndarray], MicroBatcher[int]]:
        batcher: MicroBatcher[int] = MicroBatcher(_slow_double(0.02), max_batch_size=64)
        first = asyncio.create_task(batcher.submit([0]))  # occupies the model...
        await asyncio.sleep(0.005)
        rest = [batcher.submit([i, i + 100]) for i in range(1, 32)]  # ...while 31 requests queue
        out = await asyncio.gather(first, *rest)
        await batcher.close()
        return out, batcher

    out, batcher = asyncio.run(main())
    assert out[0].tolist() == [[0, 0]]
    for i, rows in enumerate(out[1:], start=1):
        assert rows.tolist() == [[i, 2 * i], [i + 100, 2 * (i + 100)]]
    stats = batcher.stats()
    assert stats.items == 1 + 31 * 2
    assert stats.by_size[1] == 1  # the lone first request did not wait for company
    assert max(stats.by_size) == 62  # the 31 queued requests went as one batch
    assert stats.batches == 2


def test_max_batch_size_splits_between_requests_not_inside() -> None:
    async def main() -> MicroBatcher[int]:
        batcher: MicroBatcher[int] = MicroBatcher(_slow_double(0.01), max_batch_size=4)
        outs = await asyncio.gather(
            *(batcher.submit([i, i]) for i in range(6)), batcher.submit(list(range(9)))
        )
        assert outs[-1][:, 0].tolist() == list(range(9))
        await batcher.close()
        return batcher

    stats = asyncio.run(main()).stats()
    assert stats.items == 21
    assert set(stats.by_size) <= {2, 4, 9}  # pairs never split; the 9-item request runs alone
    assert stats.by_size[9] == 1


def test_errors_reach_every_caller_of_the_batch() -> None:
    def broken(items: list[int]) -> np.ndarray:
        raise ValueError("boom")

    async def main() -> list[object]:
        batcher: MicroBatcher[int] = MicroBatcher(broken)
        out = await asyncio.gather(*(batcher.submit([i]) for i in range(3)), return_exceptions=True)
        await batcher.close()
        return out

    assert all(isinstance(e, ValueError) and str(e) == "boom" for e in asyncio.run(main()))


def test_requests_waiting_past_max_latency_are_refused() -> None:
    async def main() -> list[object]:
        batcher: MicroBatcher[int] = MicroBatcher(
            _slow_double(0.1), max_batch_size=1, max_latency_ms=50
        )
        out = await asyncio.gather(*(batcher.submit([i]) for i in range(3)), return_exceptions=True)
        await batcher.close()
        return out

    out = asyncio.run(main())
    assert isinstance(out[0], np.ndarray)
    for e in out[1:]:
        assert isinstance(e, OverloadedError) and "max_latency_ms" in str(e)
        assert (e.status, e.grpc_code, e.retry_after_s) == (503, "RESOURCE_EXHAUSTED", 1)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        MicroBatcher(_slow_double(0), max_batch_size=0)
    with pytest.raises(ValueError, match="at least one item"):
        asyncio.run(MicroBatcher(_slow_double(0)).submit([]))


def test_a_full_queue_sheds_at_once_and_recovers() -> None:
    async def main() -> tuple[list[object], float, np.ndarray]:
        batcher: MicroBatcher[int] = MicroBatcher(_slow_double(0.05), max_batch_size=2, max_queue=4)
        first = asyncio.create_task(batcher.submit([0]))  # runs at once: the queue stays empty
        await asyncio.sleep(0.01)
        queued = [asyncio.create_task(batcher.submit([i, i])) for i in (1, 2)]  # 4 items wait
        await asyncio.sleep(0)
        with pytest.raises(OverloadedError, match="queue is full"):
            await batcher.submit([9])
        refused_while_busy = not first.done()  # refused without waiting for the running batch
        out = await asyncio.gather(first, *queued)
        again = await batcher.submit([5])  # drained: accepted again
        await batcher.close()
        return out, refused_while_busy, again

    out, refused_while_busy, again = asyncio.run(main())
    assert [o.shape[0] for o in out] == [1, 2, 2] and again.tolist() == [[5, 10]]
    assert refused_while_busy


def test_a_lone_request_waits_for_no_window() -> None:
    """No timer is ever armed: an idle batcher hands a lone request to the function at once."""

    async def main() -> tuple[list[float], np.ndarray]:
        loop = asyncio.get_running_loop()
        timers: list[float] = []
        call_at = loop.call_at

        def counting_call_at(when: float, *args: object, **kwargs: object) -> object:
            timers.append(when - loop.time())
            return call_at(when, *args, **kwargs)

        loop.call_at = counting_call_at  # type: ignore[method-assign]
        batcher: MicroBatcher[int] = MicroBatcher(_slow_double(0.0), max_latency_ms=60_000)
        out = await batcher.submit([2])
        loop.call_at = call_at  # type: ignore[method-assign]
        await batcher.close()
        return timers, out

    timers, out = asyncio.run(main())
    assert out.tolist() == [[2, 4]] and timers == []


def test_batches_group_texts_of_similar_length_and_report_metrics() -> None:
    seen: list[list[str]] = []

    def lengths(texts: list[str]) -> np.ndarray:
        seen.append(texts)
        time.sleep(0.02)
        return np.array([[len(t)] for t in texts])

    class Metrics:
        def __init__(self) -> None:
            self.sizes: list[int] = []
            self.waits: list[float] = []
            self.depths: list[int] = []

        def batch(self, size: int, seconds: float) -> None:
            self.sizes.append(size)

        def waited(self, seconds: float) -> None:
            self.waits.append(seconds)

        def depth(self, items: int) -> None:
            self.depths.append(items)

    metrics = Metrics()
    short, long = "a short ad", "a much longer cold profile text " * 6

    async def main() -> list[np.ndarray]:
        batcher: MicroBatcher[str] = MicroBatcher(lengths, metrics=metrics)
        first = asyncio.create_task(batcher.submit([short]))
        await asyncio.sleep(0.005)
        rest = [batcher.submit([t]) for t in (long, short, long, short)]
        out = await asyncio.gather(first, *rest)
        await batcher.close()
        return out

    out = asyncio.run(main())
    assert [int(o[0, 0]) for o in out] == [len(t) for t in (short, long, short, long, short)]
    assert char_bucket(short) != char_bucket(long)
    assert seen[0] == [short]
    assert sorted(map(sorted, seen[1:])) == [[long, long], [short, short]]  # one bucket a batch
    assert metrics.sizes == [1, 2, 2] and len(metrics.waits) == 5
    assert max(metrics.depths) == 4 and metrics.depths[-1] == 0
