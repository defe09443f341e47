"""Bounded admission per worker: at most `max_concurrent` requests in flight, at most
`max_queued` more waiting for a slot; past that, refused at once (429 + Retry-After over HTTP,
RESOURCE_EXHAUSTED over gRPC) instead of piling up until every request is late.

    ADREC_MAX_CONCURRENT_REQUESTS=4  ADREC_MAX_QUEUED_REQUESTS=64   (per worker)
    ADREC_MAX_QUEUE_WAIT_MS=250  ADREC_QUEUE_GRACE_MS=1000  (0: no bound on the wait)

Once the queue has not been empty for the grace period (an overload, not a burst), a request
whose wait for a slot would be, or has been, longer than the bound is refused too: accepted
requests then wait at most that long, whatever the offered load. The overload lasts until the
queue has not stood for a grace period again (refusals empty it often; were each empty moment
its end, the next waiters would get the grace again: measured, waits to ~800 ms at a 250 ms
bound).

One `Admission` per worker process is shared by the HTTP middleware (`AdmissionMiddleware`:
the POST routes, native and v2; probes, /metrics, /info and the docs are never held back) and
the gRPC interceptor (`grpc_interceptor`: ModelInfer). The middleware sits in front of all of
BentoML's own layers (rec_models/serving/front.py), so a refusal costs next to nothing. Both
also set the request's deadline (rec_models.serving.deadline) from `X-Request-Timeout`
(seconds) or the gRPC call's deadline: a request whose deadline passes while it waits for a
slot, or for the encoder, is dropped unencoded with 408 / DEADLINE_EXCEEDED.
"""

from __future__ import annotations

import asyncio
import collections
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
    """`max_queue_wait_s` (None: no bound) bounds the wait for a slot once the queue is
    standing: not empty for `grace_s` in a row, an overload rather than a burst (CoDel's idea,
    and Facebook's adaptive queue timeouts). Then a request whose expected wait (the queue ahead
    of it over the rate slots were freed in the last second) is longer is refused at once, and
    one that has waited longer is refused when its turn comes or its wait runs out. A burst
    that drains within `grace_s` is not shed (up to `grace_s` + the bound of waiting). Without a
    bound an accepted request may wait for the whole queue under overload."""

    def __init__(
        self,
        max_concurrent: int,
        max_queued: int,
        max_queue_wait_s: float | None = None,
        grace_s: float = 1.0,
    ) -> None:
        self.max_concurrent, self.max_queued = max_concurrent, max_queued
        self.max_queue_wait_s, self.grace_s = max_queue_wait_s, grace_s
        self.active = 0
        self.refused = 0
        # (waiter, when it was queued), oldest first
        self._waiters: collections.deque[tuple[asyncio.Future[None], float]] = collections.deque()
        self._freed: collections.deque[float] = collections.deque()  # release times, last 1 s
        self._busy_since: float | None = None  # since when the queue has not been empty
        self._stood_at: float | None = None  # when the queue was last seen standing

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def info(self) -> dict[str, int]:
        """What GET /info shows: this worker's requests in flight and queued now, and how many
        it refused since it started (those never reach BentoML's request metrics)."""
        return {"active": self.active, "queued": self.queued, "refused": self.refused}

    def standing(self, now: float) -> bool:
        """Whether the queue stands (a wait bound is set): it has not been empty for grace_s,
        or it did so less than grace_s ago and is not empty. An overload does not end the first
        moment the queue is empty (refusals empty it often): it ends after grace_s without a
        standing queue."""
        since, stood = self._busy_since, self._stood_at
        if self.max_queue_wait_s is None:
            return False
        recent = stood is not None and now - stood < self.grace_s
        if since is not None and (recent or now - since >= self.grace_s):
            self._stood_at = now
            return True
        return recent

    async def acquire(self, timeout_s: float | None = None) -> None:
        """Take one of the `max_concurrent` slots, waiting at most `timeout_s` (the request's
        own deadline) in a queue of at most `max_queued`; `release()` it when done."""
        if self.active < self.max_concurrent and not self._waiters:
            self.active += 1
            return
        now = time.monotonic()
        bound, standing = self.max_queue_wait_s, self.standing(now)
        if len(self._waiters) >= self.max_queued or (standing and self._wait_too_long(now)):
            self.refused += 1
            raise TooManyRequestsError(
                f"too many requests: {self.active} in flight and {len(self._waiters)} queued "
                f"(limits {self.max_concurrent} and {self.max_queued}"
                + (f", a wait of {bound:g} s" if bound else "")
                + "); retry shortly"
            )
        waiter = asyncio.get_running_loop().create_future()
        if not self._waiters:
            self._busy_since = now
        self._waiters.append((waiter, now))
        # Standing: the bound. Not yet: long enough for the queue to turn standing, then the bound.
        limit = None if bound is None else bound if standing else self.grace_s + bound
        wait_s = min((t for t in (timeout_s, limit) if t is not None), default=None)
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
                f"too many requests: no slot within {wait_s:g} s; retry shortly"
            ) from None
        except asyncio.CancelledError:  # the client went away
            self._abandon(waiter)
            raise
        # TooManyRequestsError: release() found it had waited past the bound (counted there)

    def _abandon(self, waiter: asyncio.Future[None]) -> None:
        if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
            self.release()  # the slot was handed over just now: pass it on
            return
        waiter.cancel()
        for i, (queued, _) in enumerate(self._waiters):
            if queued is waiter:
                del self._waiters[i]
                break
        if not self._waiters:
            self._busy_since = None

    def _wait_too_long(self, now: float) -> bool:
        """Whether a request queued now would wait past max_queue_wait_s, going by the rate at
        which slots were freed in the last second (no estimate yet: let it wait and see)."""
        assert self.max_queue_wait_s is not None
        while self._freed and self._freed[0] < now - 1.0:
            self._freed.popleft()
        rate = len(self._freed)  # per second
        return rate > 0 and (len(self._waiters) + 1) / rate > self.max_queue_wait_s

    def release(self) -> None:
        """Hand the slot to the oldest waiter still waiting (while the queue stands, refusing
        those that waited past the bound on the way), else free it."""
        now = time.monotonic()
        bound = self.max_queue_wait_s
        if bound is not None:
            self._freed.append(now)
        standing = self.standing(now)
        while self._waiters:
            waiter, since = self._waiters.popleft()
            if waiter.done():
                continue
            if standing and now - since > bound:  # type: ignore[operator]
                self.refused += 1
                waiter.set_exception(TooManyRequestsError(
                    f"too many requests: no slot within {bound:g} s; retry shortly"
                ))  # fmt: skip
                continue
            waiter.set_result(None)
            if not self._waiters:
                self._busy_since = None
            return
        self._busy_since = None
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
