"""The micro-batcher: concurrent requests share batches, each caller gets its own rows back."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from rec_models.serving.batcher import BatcherOverloadedError, MicroBatcher


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
    assert all(
        isinstance(e, BatcherOverloadedError) and "max_latency_ms" in str(e) for e in out[1:]
    )


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        MicroBatcher(_slow_double(0), max_batch_size=0)
    with pytest.raises(ValueError, match="at least one item"):
        asyncio.run(MicroBatcher(_slow_double(0)).submit([]))
