"""HTTP plumbing of the service: the request-body size limit and the JSON error responses.

`BodySizeLimit` is a plain ASGI middleware: a body over `max_bytes` is answered 413 before any
of it reaches JSON parsing or a batch. A declared Content-Length is checked up front; a chunked
body is read (up to the limit) and replayed to the app.
"""

from __future__ import annotations

import json
from typing import Any

from rec_models.serving.errors import ServingError

MAX_BODY_BYTES = 1 << 20  # 1 MiB: 256 texts of 2,000 ASCII characters need ~0.5 MiB

Scope = dict[str, Any]
Message = dict[str, Any]


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    """A JSON response encoded by pydantic-core (Rust): ~10x faster than json.dumps on float
    arrays (an /embed answer), and BentoML passes a returned Response through unchanged, so the
    payload is neither re-validated nor re-encoded."""
    import pydantic_core
    from starlette.responses import Response

    body = pydantic_core.to_json(payload)
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def error_body(exc: ServingError) -> tuple[int, dict[str, Any]]:
    return exc.status, exc.to_dict()


def error_response(exc: ServingError) -> Any:
    """The JSON error response for `exc`: the one place the native routes map a ServingError."""
    status, body = error_body(exc)
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else None
    return json_response(body, status, headers)


def _too_large(limit: int, size: int | None) -> tuple[int, bytes]:
    got = f"{size} bytes" if size is not None else f"more than {limit} bytes"
    body = {
        "error": f"body: request body too large ({got}; the limit is {limit} bytes)",
        "detail": [{"loc": ["body"], "msg": f"at most {limit} bytes", "type": "payload_too_large"}],
    }
    return 413, json.dumps(body).encode()


class BodySizeLimit:
    def __init__(
        self, app: Any, max_bytes: int = MAX_BODY_BYTES, exempt: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        self.exempt = exempt  # path prefixes whose routes enforce their own limit (/v2/)
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") in ("GET", "HEAD", "OPTIONS")
            or scope.get("path", "").startswith(self.exempt)
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                size = None
            if size is not None and size > self.max_bytes:
                await self._reject(send, size)
                return
            if size is not None:
                await self.app(scope, receive, send)
                return
        # No (valid) Content-Length: read up to the limit, then replay the body to the app.
        chunks, total, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                await self._reject(send, None)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, send: Any, size: int | None) -> None:
        status, payload = _too_large(self.max_bytes, size)
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                        (b"content-length", str(len(payload)).encode())],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": payload})
