"""Adaptive micro-batching of concurrent requests into one call of a batch function.

Each request brings a list of items (the texts of one inference request). Requests that arrive
while a batch is computing wait in a queue; the moment the function is free, everything queued
(up to `max_batch_size` items) goes as the next batch. An idle batcher dispatches at once, so a
lone client pays no waiting time, and the batch size follows the load: ~1 for one client, ~the
number of clients under concurrency. As with BentoML's batching, a request that has waited longer
than `max_latency_ms` in the queue is refused (`BatcherOverloadedError`) instead of growing the
backlog. Requests are never split: one larger than `max_batch_size` runs as a batch of its own.

`stats()` counts the batches by size (what the gRPC server reports as ModelStatistics.batch_stats).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

T = TypeVar("T")

BatchFn = Callable[[list[T]], np.ndarray]  # items (n,) -> results (n, ...)


class BatcherOverloadedError(RuntimeError):
    """A request waited in the queue longer than `max_latency_ms`."""


@dataclass
class BatchStats:
    batches: int = 0  # calls of the batch function
    items: int = 0  # items they processed
    by_size: Counter[int] = field(default_factory=Counter)  # batch size -> number of batches
    ns_by_size: Counter[int] = field(default_factory=Counter)  # batch size -> total compute ns
    last_ms: int = 0  # unix time of the last batch, milliseconds


@dataclass
class _Pending(Generic[T]):
    items: list[T]
    future: asyncio.Future[np.ndarray]
    queued_at: float


class MicroBatcher(Generic[T]):
    """`await batcher.submit(items)` -> the rows of `fn(batch)` that belong to `items`."""

    def __init__(
        self, fn: BatchFn, max_batch_size: int = 64, max_latency_ms: float = 10_000
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_latency_ms <= 0:
            raise ValueError(f"max_latency_ms must be > 0, got {max_latency_ms}")
        self.fn = fn
        self.max_batch_size = max_batch_size
        self.max_latency_ms = max_latency_ms
        self._queue: list[_Pending[T]] = []
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batcher")
        self._stats = BatchStats()

    async def submit(self, items: Sequence[T]) -> np.ndarray:
        if not items:
            raise ValueError("submit() needs at least one item")
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done():
            self._wakeup = asyncio.Event()
            self._worker = loop.create_task(self._run(), name="micro-batcher")
        pending = _Pending(list(items), loop.create_future(), time.monotonic())
        self._queue.append(pending)
        assert self._wakeup is not None
        self._wakeup.set()
        return await pending.future

    def stats(self) -> BatchStats:
        s = self._stats
        return BatchStats(s.batches, s.items, Counter(s.by_size), Counter(s.ns_by_size), s.last_ms)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        for pending in self._queue:
            if not pending.future.done():
                pending.future.set_exception(BatcherOverloadedError("the batcher is shutting down"))
        self._queue.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _take_batch(self) -> list[_Pending[T]]:
        """The oldest requests that fit in one batch (at least one); refuses the overdue ones."""
        now, limit = time.monotonic(), self.max_latency_ms / 1000
        batch: list[_Pending[T]] = []
        size = 0
        while self._queue:
            head = self._queue[0]
            if head.future.cancelled():  # the client went away
                self._queue.pop(0)
                continue
            if now - head.queued_at > limit:
                self._queue.pop(0)
                waited = (now - head.queued_at) * 1000
                head.future.set_exception(
                    BatcherOverloadedError(
                        f"overloaded: waited {waited:.0f} ms in the batch queue "
                        f"(max_latency_ms={self.max_latency_ms:g})"
                    )
                )
                continue
            if batch and size + len(head.items) > self.max_batch_size:
                break
            batch.append(self._queue.pop(0))
            size += len(head.items)
        return batch

    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while batch := self._take_batch():
                items = [item for pending in batch for item in pending.items]
                await self._dispatch(loop, batch, items)

    async def _dispatch(
        self, loop: asyncio.AbstractEventLoop, batch: list[_Pending[T]], items: list[Any]
    ) -> None:
        start = time.perf_counter_ns()
        try:
            out = await loop.run_in_executor(self._executor, self.fn, items)
            if len(out) != len(items):
                raise RuntimeError(
                    f"batch function returned {len(out)} rows for {len(items)} items"
                )
        except Exception as exc:  # hand the failure to every caller of this batch
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        elapsed = time.perf_counter_ns() - start
        s = self._stats
        s.batches += 1
        s.items += len(items)
        s.by_size[len(items)] += 1
        s.ns_by_size[len(items)] += elapsed
        s.last_ms = int(time.time() * 1000)
        offset = 0
        for pending in batch:
            n = len(pending.items)
            if not pending.future.done():
                pending.future.set_result(out[offset : offset + n])
            offset += n
