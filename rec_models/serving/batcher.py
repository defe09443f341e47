"""Adaptive micro-batching of concurrent requests into one call of a batch function.

Each request brings a list of items (the texts of one call). Requests that arrive while a batch
is computing wait in a queue; the moment the function is free, the oldest request and every
queued request of the same length bucket (up to `max_batch_size` items) go as the next batch. An
idle batcher dispatches at once, so a lone client waits for no batch window, and the batch size
follows the load: ~1 for one client, ~the number of clients under concurrency. Grouping by
length keeps padding small: a 20-token /embed text never pads to a 120-token cold profile.

Shedding, never a hang: a request that would take the queue past `max_queue` items is refused at
once, and one that has waited longer than `max_latency_ms` is refused when its turn comes (both
`OverloadedError`: 503 + Retry-After over HTTP, RESOURCE_EXHAUSTED over gRPC). Requests are never
split: one larger than `max_batch_size` runs as a batch of its own.

`stats()` counts the batches by size (gRPC ModelStatistics.batch_stats); `metrics` (optional)
receives every batch size, queue wait and queue depth (the Prometheus series of /metrics).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from rec_models.serving.deadline import current_deadline
from rec_models.serving.errors import DeadlineExceededError, OverloadedError

T = TypeVar("T")

BatchFn = Callable[[list[T]], np.ndarray]  # items (n,) -> results (n, ...)


class BatchMetrics(Protocol):
    def batch(self, size: int, seconds: float) -> None: ...
    def waited(self, seconds: float) -> None: ...
    def depth(self, items: int) -> None: ...


def char_bucket(text: Any) -> int:
    """Length bucket of a text by characters (~4 per word piece): <64, <128, <256, <512, more.
    Counting characters costs nothing; tokenizing twice would."""
    return min(max(len(text), 1).bit_length(), 10) if isinstance(text, str) else 0


@dataclass
class BatchStats:
    batches: int = 0  # calls of the batch function
    items: int = 0  # items they processed
    by_size: Counter[int] = field(default_factory=Counter)  # batch size -> number of batches
    ns_by_size: Counter[int] = field(default_factory=Counter)  # batch size -> total compute ns
    last_ms: int = 0  # unix time of the last batch, milliseconds
    refused: int = 0  # requests shed (queue full or waited too long)


@dataclass
class _Pending(Generic[T]):
    items: list[T]
    bucket: int
    future: asyncio.Future[np.ndarray]
    queued_at: float
    deadline: float | None = None  # the request's own (rec_models.serving.deadline)


class MicroBatcher(Generic[T]):
    """`await batcher.submit(items)` -> the rows of `fn(batch)` that belong to `items`."""

    def __init__(
        self,
        fn: BatchFn,
        max_batch_size: int = 64,
        max_latency_ms: float = 5000,
        max_queue: int | None = None,
        bucket: Callable[[T], int] = char_bucket,
        metrics: BatchMetrics | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_latency_ms <= 0:
            raise ValueError(f"max_latency_ms must be > 0, got {max_latency_ms}")
        self.fn = fn
        self.max_batch_size = max_batch_size
        self.max_latency_ms = max_latency_ms
        self.max_queue = max_queue if max_queue is not None else 8 * max_batch_size
        if self.max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {self.max_queue}")
        self.bucket, self.metrics = bucket, metrics
        self._queue: list[_Pending[T]] = []
        self._queued_items = 0
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batcher")
        self._stats = BatchStats()

    @property
    def queued(self) -> int:
        """Items waiting (not counting the batch that is running)."""
        return self._queued_items

    async def submit(self, items: Sequence[T]) -> np.ndarray:
        if not items:
            raise ValueError("submit() needs at least one item")
        if self._queued_items and self._queued_items + len(items) > self.max_queue:
            self._stats.refused += 1
            raise OverloadedError(
                f"the encoder queue is full ({self._queued_items} texts waiting, "
                f"limit {self.max_queue}); retry shortly"
            )
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done():
            self._wakeup = asyncio.Event()
            self._worker = loop.create_task(self._run(), name="micro-batcher")
        items = list(items)
        now, deadline = time.monotonic(), current_deadline()
        if deadline is not None and now >= deadline:
            raise DeadlineExceededError("the request's deadline passed before it was queued")
        pending = _Pending(items, self.bucket(items[0]), loop.create_future(), now, deadline)
        self._queue.append(pending)
        self._queued_items += len(items)
        self._report_depth()
        assert self._wakeup is not None
        self._wakeup.set()
        return await pending.future

    def stats(self) -> BatchStats:
        s = self._stats
        return BatchStats(
            s.batches, s.items, Counter(s.by_size), Counter(s.ns_by_size), s.last_ms, s.refused
        )

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        for pending in self._queue:
            if not pending.future.done():
                pending.future.set_exception(OverloadedError("the service is shutting down"))
        self._queue.clear()
        self._queued_items = 0
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _report_depth(self) -> None:
        if self.metrics is not None:
            self.metrics.depth(self._queued_items)

    def _take_batch(self) -> list[_Pending[T]]:
        """The oldest live request and the queued ones of its bucket that fit in one batch."""
        now, limit = time.monotonic(), self.max_latency_ms / 1000
        batch: list[_Pending[T]] = []
        keep: list[_Pending[T]] = []
        size, bucket = 0, None
        for pending in self._queue:
            if pending.future.cancelled():  # the client went away
                self._queued_items -= len(pending.items)
                continue
            if pending.deadline is not None and now >= pending.deadline:
                self._queued_items -= len(pending.items)
                self._stats.refused += 1
                pending.future.set_exception(
                    DeadlineExceededError(
                        "the request's deadline passed while it waited for the encoder"
                    )
                )
                continue
            if now - pending.queued_at > limit:
                self._queued_items -= len(pending.items)
                self._stats.refused += 1
                waited = (now - pending.queued_at) * 1000
                pending.future.set_exception(
                    OverloadedError(
                        f"overloaded: waited {waited:.0f} ms in the encoder queue "
                        f"(max_latency_ms={self.max_latency_ms:g}); retry shortly"
                    )
                )
                continue
            fits = not batch or size + len(pending.items) <= self.max_batch_size
            if fits and (bucket is None or pending.bucket == bucket):
                bucket = pending.bucket
                batch.append(pending)
                size += len(pending.items)
                self._queued_items -= len(pending.items)
                if self.metrics is not None:
                    self.metrics.waited(now - pending.queued_at)
            else:
                keep.append(pending)
        self._queue = keep
        self._report_depth()
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
        if self.metrics is not None:
            self.metrics.batch(len(items), elapsed / 1e9)
        offset = 0
        for pending in batch:
            n = len(pending.items)
            if not pending.future.done():
                pending.future.set_result(out[offset : offset + n])
            offset += n
