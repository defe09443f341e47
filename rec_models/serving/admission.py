"""Bounded admission per worker: at most `max_concurrent` requests in flight, at most
`max_queued` more waiting for a slot; past that, refused at once (429 + Retry-After over HTTP,
RESOURCE_EXHAUSTED over gRPC) instead of piling up until every request is late.

    ADREC_MAX_CONCURRENT_REQUESTS=256  ADREC_MAX_QUEUED_REQUESTS=512   (per worker)
    ADREC_MAX_QUEUE_WAIT_MS=0  (no bound on the wait for a slot; opt-in)

One `Admission` per worker process is shared by the HTTP middleware (`AdmissionMiddleware`:
the POST routes, native and v2; probes, /metrics, /info and the docs are never held back) and
the gRPC interceptor (`grpc_interceptor`: ModelInfer). Both also set the request's deadline
(rec_models.serving.deadline) from `X-Request-Timeout` (seconds) or the gRPC call's deadline:
a request whose deadline passes while it waits for a slot, or for the encoder, is dropped
unencoded with 408 / DEADLINE_EXCEEDED.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import math
import time
from typing import Any

from rec_models.serving.deadline import reset_deadline, set_deadline
from rec_models.serving.errors import (
    BadRequestError,
    DeadlineExceededError,
    ServingError,
    TooManyRequestsError,
)

TIMEOUT_HEADER = b"x-request-timeout"
MAX_TIMEOUT_S = 3600.0


class Admission:
    """`max_queue_wait_s` (None: no bound) bounds the time a request may wait for a slot: one
    whose expected wait (the queue ahead of it over the rate slots were freed in the last
    second) is longer is refused at once, and one that has waited that long is refused then.
    Without it an accepted request may wait for the whole queue under overload."""

    def __init__(
        self, max_concurrent: int, max_queued: int, max_queue_wait_s: float | None = None
    ) -> None:
        self.max_concurrent, self.max_queued = max_concurrent, max_queued
        self.max_queue_wait_s = max_queue_wait_s
        self.active = 0
        self.refused = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._freed: collections.deque[float] = collections.deque()  # release times, last 1 s

    @property
    def queued(self) -> int:
        return len(self._waiters)

    async def acquire(self, timeout_s: float | None = None) -> None:
        """Take one of the `max_concurrent` slots, waiting at most `timeout_s` (the request's
        own deadline) in a queue of at most `max_queued`; `release()` it when done."""
        if self.active < self.max_concurrent and not self._waiters:
            self.active += 1
            return
        if len(self._waiters) >= self.max_queued or self._wait_too_long():
            self.refused += 1
            raise TooManyRequestsError(
                f"too many requests: {self.active} in flight and {len(self._waiters)} queued "
                f"(limits {self.max_concurrent} and {self.max_queued}"
                + (f", a wait of {self.max_queue_wait_s:g} s" if self.max_queue_wait_s else "")
                + "); retry shortly"
            )
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        bound = self.max_queue_wait_s
        wait_s = (
            timeout_s if bound is None or (timeout_s is not None and timeout_s < bound) else bound
        )
        try:
            await asyncio.wait_for(asyncio.shield(waiter), wait_s)
        except TimeoutError:
            self._abandon(waiter)
            if wait_s == timeout_s:
                raise DeadlineExceededError(
                    "the request's deadline passed while it waited for a slot"
                ) from None
            self.refused += 1
            raise TooManyRequestsError(
                f"too many requests: no slot within {bound:g} s; retry shortly"
            ) from None
        except asyncio.CancelledError:  # the client went away
            self._abandon(waiter)
            raise

    def _abandon(self, waiter: asyncio.Future[None]) -> None:
        if waiter.done() and not waiter.cancelled():
            self.release()  # the slot was handed over just now: pass it on
        else:
            waiter.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def _wait_too_long(self) -> bool:
        """Whether a request queued now would wait past max_queue_wait_s, going by the rate at
        which slots were freed in the last second (no estimate yet: let it wait and see)."""
        if self.max_queue_wait_s is None:
            return False
        now = time.monotonic()
        while self._freed and self._freed[0] < now - 1.0:
            self._freed.popleft()
        rate = len(self._freed)  # per second
        return rate > 0 and (len(self._waiters) + 1) / rate > self.max_queue_wait_s

    def release(self) -> None:
        """Hand the slot to the oldest waiter still waiting, else free it."""
        if self.max_queue_wait_s is not None:
            self._freed.append(time.monotonic())
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.active -= 1


def parse_timeout(raw: bytes | None) -> float | None:
    """X-Request-Timeout in seconds (a positive number), or None when absent."""
    if raw is None:
        return None
    try:
        value = float(raw.decode("latin-1").strip())
    except ValueError:
        value = math.nan
    if not (0 < value <= MAX_TIMEOUT_S):
        raise BadRequestError(
            ("header", "x-request-timeout"),
            f"expected seconds, a number in (0, {MAX_TIMEOUT_S:g}]",
        )
    return value


class AdmissionMiddleware:
    """ASGI middleware: every POST request holds a slot of `admission` while it runs."""

    def __init__(self, app: Any, admission: Admission) -> None:
        self.app, self.admission = app, admission

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        try:
            timeout_s = parse_timeout(dict(scope.get("headers") or []).get(TIMEOUT_HEADER))
            await self.admission.acquire(timeout_s)
        except ServingError as exc:  # refused before the route runs
            await send_error(send, exc)
            return
        token = set_deadline(timeout_s)
        try:
            await self.app(scope, receive, send)
        finally:
            reset_deadline(token)
            self.admission.release()


async def send_error(send: Any, exc: ServingError) -> None:
    body = json.dumps(exc.to_dict()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if exc.retry_after_s:
        headers.append((b"retry-after", str(exc.retry_after_s).encode()))
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def grpc_interceptor(admission: Admission, methods: frozenset[str]) -> Any:
    """A grpc.aio interceptor: each call of `methods` holds a slot for its duration, with the
    call's own deadline."""
    import grpc

    def wrap(behavior: Any) -> Any:
        async def admitted(request: Any, context: grpc.aio.ServicerContext) -> Any:
            remaining = context.time_remaining()
            try:
                await admission.acquire(remaining)
            except ServingError as exc:
                await context.abort(getattr(grpc.StatusCode, exc.grpc_code), str(exc))
            token = set_deadline(remaining)
            try:
                return await behavior(request, context)
            finally:
                reset_deadline(token)
                admission.release()

        return admitted

    class AdmissionInterceptor(grpc.aio.ServerInterceptor):
        async def intercept_service(self, continuation: Any, details: Any) -> Any:
            handler = await continuation(details)
            if handler is None or details.method not in methods or not handler.unary_unary:
                return handler
            return grpc.unary_unary_rpc_method_handler(
                wrap(handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

    return AdmissionInterceptor()
