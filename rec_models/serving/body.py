"""The request body, read in full before anything else of the service sees the request: at most
`max_bytes` (413 beyond) and within `timeout_s` of the request's start (408 beyond).

    ADREC_MAX_BODY_BYTES=1048576  ADREC_BODY_TIMEOUT_MS=5000

`BodyReader` is a plain ASGI middleware placed before admission (service.py): a client that
trickles its body (a slow-loris) or stalls mid-body waits here, holding only its connection, not
one of the worker's admission slots nor a place in a batch, and is answered 408 once the body
deadline passes. A declared Content-Length over the limit is refused unread; a body without one
is read up to the limit. Both refusals close the connection (the rest of the body is never
read). The complete body is then replayed to the app in one message.

The v2 routes enforce their own message limit (400 naming the tensor), so for them this reads
under the deadline only, up to `exempt_ceiling` bytes; a larger body goes on to the route as it
comes, which refuses it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from rec_models.serving.errors import BodyTimeoutError, PayloadTooLargeError, ServingError

Message = dict[str, Any]
UNREAD_METHODS = ("GET", "HEAD", "OPTIONS")  # no body expected: passed through as they come


class _Refused(Exception):
    def __init__(self, error: ServingError) -> None:
        self.error = error


class _Disconnected(Exception):
    pass


class BodyReader:
    def __init__(
        self,
        app: Any,
        max_bytes: int,
        timeout_s: float,
        exempt: tuple[str, ...] = (),
        exempt_ceiling: int = 0,
    ) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s
        self.exempt, self.exempt_ceiling = exempt, exempt_ceiling

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") in UNREAD_METHODS:
            await self.app(scope, receive, send)
            return
        exempt = scope.get("path", "").startswith(self.exempt)
        limit = self.exempt_ceiling if exempt else self.max_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            if exempt:  # the route refuses it unread, in its own words
                await self.app(scope, receive, send)
            else:
                await _refuse(send, PayloadTooLargeError(self.max_bytes, declared))
            return
        try:
            chunks, more = await self._read(receive, limit, exempt)
        except _Refused as refused:
            await _refuse(send, refused.error)
            return
        except _Disconnected:
            return  # the client left: nobody to answer
        await self.app(scope, _replay(chunks, more, receive), send)

    async def _read(self, receive: Any, limit: int, exempt: bool) -> tuple[list[bytes], bool]:
        """The body's chunks, and whether more follows (only past an exempt route's ceiling)."""
        chunks: list[bytes] = []
        total, more = 0, True
        try:
            # One timer on this task for the whole body (asyncio.wait_for per message would
            # start a task each: a cost every request paid, refused or not).
            async with asyncio.timeout(self.timeout_s):
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _Disconnected
                    chunk = message.get("body", b"")
                    total += len(chunk)
                    chunks.append(chunk)
                    more = message.get("more_body", False)
                    if total > limit:
                        if not exempt:
                            raise _Refused(PayloadTooLargeError(self.max_bytes, None))
                        return chunks, more
        except TimeoutError:
            raise _Refused(BodyTimeoutError(self.timeout_s, total)) from None
        return chunks, False


def _content_length(scope: dict[str, Any]) -> int | None:
    raw = dict(scope.get("headers") or []).get(b"content-length")
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None  # not a number: read the body as it comes, up to the limit


def _replay(chunks: list[bytes], more: bool, receive: Any) -> Any:
    """A receive() that hands out the body already read, then defers to the connection."""
    pending: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": more}]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()  # more body (exempt routes), or the disconnect at the end

    return replay


async def _refuse(send: Any, exc: ServingError) -> None:
    """The error response, closing the connection: whatever the client still sends is unread."""
    body = json.dumps(exc.to_dict()).encode()
    headers = [(b"content-type", b"application/json"), (b"connection", b"close"),
               (b"content-length", str(len(body)).encode())]  # fmt: skip
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
