"""The Recommender's way to the batched Encoder service (a `bentoml.depends` proxy).

Each call is one request to the Encoder's batchable `embed`; concurrent calls are what the
Encoder's adaptive batcher merges. `blocking()` gives the synchronous `encode(texts)` the runtime
expects, for code running in worker threads: it hands the call to the service's event loop, so
threads share one async client (one SyncHTTPClient per thread would never batch).

BentoML 1.4.40's internal client closes its aiohttp session every 100 requests / 5 minutes even
with requests in flight on it (bentoml/BentoML#5540: "Server disconnected", "Session is closed").
We switch that refresh off where the attribute exists and retry such connection errors: an
embedding is idempotent.

Bulk work (the known users' profiles at start-up) goes through `embed_bulk`, the Encoder's
non-batched endpoint: BentoML's dispatcher models the cost per request, sheds requests that would
miss `max_latency_ms`, and would learn from large start-up requests that every request is
expensive. `warm_up_batcher` then sends small requests, one at a time and then together, so the
dispatcher has fitted its cost model on live-sized requests before the service reports ready.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from rec_models.serving.errors import OverloadedError

logger = logging.getLogger(__name__)

RETRIES = 3


def _is_connection_error(exc: BaseException) -> bool:
    try:
        import aiohttp
    except ImportError:  # pragma: no cover - aiohttp comes with bentoml
        return False
    closed = isinstance(exc, RuntimeError) and "Session is closed" in str(exc)
    return closed or isinstance(
        exc, aiohttp.ClientConnectionError | aiohttp.ServerDisconnectedError
    )


class EncoderClient:
    def __init__(self, proxy: Any, max_texts: int = 256) -> None:
        """`proxy`: a `bentoml.depends(Encoder)` attribute (or anything with `.to_async.embed`)."""
        self._client = getattr(proxy, "to_async", proxy)
        self.max_texts = max_texts
        manager = getattr(self._client, "_session_manager", None)
        if manager is not None and hasattr(manager, "max_requests"):
            manager.max_requests = 1 << 62
            manager.max_age = float("inf")

    async def embed(self, texts: list[str]) -> np.ndarray:
        """(N,) texts -> (N, d) float32; requests of more than `max_texts` go in several calls."""
        if len(texts) > self.max_texts:
            parts = [texts[s : s + self.max_texts] for s in range(0, len(texts), self.max_texts)]
            return np.concatenate(await asyncio.gather(*(self.embed(p) for p in parts)))
        for attempt in range(RETRIES + 1):
            try:
                out = await self._client.embed(texts)
                return np.asarray(out, dtype=np.float32).reshape(len(texts), -1)
            except Exception as exc:
                if getattr(exc, "error_code", None) == 503:  # the Encoder's batcher shed it
                    raise OverloadedError() from exc
                if attempt == RETRIES or not _is_connection_error(exc):
                    raise
                logger.warning("encoder call failed (%s), retrying", exc)
                await asyncio.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    async def embed_bulk(self, texts: list[str], chunk: int = 256) -> np.ndarray:
        """(N,) texts -> (N, d) through the Encoder's non-batched `embed_bulk`, `chunk` a call."""
        parts = []
        for s in range(0, len(texts), chunk):
            part = texts[s : s + chunk]
            for attempt in range(RETRIES + 1):
                try:
                    out = await self._client.embed_bulk(part)
                    parts.append(np.asarray(out, dtype=np.float32).reshape(len(part), -1))
                    break
                except Exception as exc:
                    if attempt == RETRIES or not _is_connection_error(exc):
                        raise
                    await asyncio.sleep(0.01 * (attempt + 1))
        return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)

    async def warm_up_batcher(self, texts: list[str], rounds: int = 16) -> None:
        """Train the Encoder dispatcher's cost model: `rounds` lone requests, then a burst."""
        for i in range(rounds):
            await self.embed([texts[i % len(texts)]])
        burst = [self.embed([texts[i % len(texts)]]) for i in range(rounds)]
        for result in await asyncio.gather(*burst, return_exceptions=True):
            if isinstance(result, Exception) and not isinstance(result, OverloadedError):
                raise result  # a shed warm-up request is fine: the point was the timing

    async def info(self) -> dict[str, Any]:
        return dict(await self._client.info())

    def blocking(
        self, loop: asyncio.AbstractEventLoop, timeout: float = 60.0
    ) -> Callable[[list[str]], np.ndarray]:
        """A synchronous encode(texts) for worker threads, run on `loop` (never call it there)."""

        def encode(texts: list[str]) -> np.ndarray:
            return asyncio.run_coroutine_threadsafe(self.embed(list(texts)), loop).result(timeout)

        return encode
