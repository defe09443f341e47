"""BentoML's own client-error answers, in the service's one error shape, and out of the error log.

BentoML validates the native routes' JSON bodies itself (before the route runs) and answers
  {"error": "1 validation error for RecommendRequestIODescriptor",
   "detail": [{"type": "int_type", "loc": ["user_id"], "msg": "...", "url": "https://..."}]}
naming an internal class, and logs each one at ERROR with a traceback holding the input values.
`ClientErrorMiddleware` rewrites such 4xx bodies into the ServingError shape
  {"error": "user_id: Input should be a valid integer",
   "detail": [{"loc": ["user_id"], "msg": "Input should be a valid integer", "type": "int_type"}]}
(a whole-body problem, such as invalid JSON, is located at ["body"]) and answers 415 to content
types the JSON routes do not take (multipart forms, BentoML's internal media types) before
BentoML tries to parse them; `quiet_client_errors`
keeps them out of the error log: a client's bad request is not a server fault, and request
values do not belong in logs. Bodies the service shapes itself pass through unchanged.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from rec_models.serving.errors import _loc_str

BENTOML_VALIDATION = re.compile(r"^\d+ validation errors? for ")
# The native routes take JSON; BentoML would parse these (file uploads, its internal pickle
# transport) and answers a multipart body without a boundary with a 500.
REFUSED_MEDIA = (b"multipart/", b"application/vnd.bentoml")
ROUTER_MISSES = (404, 405)  # Starlette answers these in plain text
HTTP_APP_LOGGER = "bentoml._internal.server.http_app"  # where BentoML logs "Exception on ..."


def reshape(payload: Any) -> dict[str, Any] | None:
    """The one-shape body for a BentoML client-error payload; None when it is already ours."""
    if isinstance(payload, list) and len(payload) == 1 and isinstance(payload[0], dict):
        payload = payload[0]  # BentoML answers some 4xx as a one-element list
    if not isinstance(payload, dict) or not isinstance(payload.get("error"), str):
        return None
    detail = payload.get("detail")
    ours = isinstance(detail, list) and all(
        isinstance(d, dict) and set(d) == {"loc", "msg", "type"} for d in detail
    )
    if ours and not BENTOML_VALIDATION.match(payload["error"]):
        return None
    if not isinstance(detail, list) or not detail:
        message = payload["error"]
        return {"error": message, "detail": [{"loc": [], "msg": message, "type": "bad_request"}]}
    rows = []
    for d in detail:
        loc = [p for p in d.get("loc") or [] if isinstance(p, str | int)] or ["body"]
        rows.append({"loc": loc, "msg": str(d.get("msg", "")), "type": str(d.get("type", ""))})
    first = rows[0]
    more = f" (and {len(rows) - 1} more)" if len(rows) > 1 else ""
    return {"error": f"{_loc_str(tuple(first['loc']))}: {first['msg']}{more}", "detail": rows}


class ClientErrorMiddleware:
    """ASGI middleware: 4xx JSON answers of the native routes in the one error shape."""

    def __init__(self, app: Any, exempt: tuple[str, ...] = ()) -> None:
        self.app = app
        self.exempt = exempt  # path prefixes with their own error format (/v2/)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        own_format = scope.get("path", "").startswith(self.exempt)
        media = dict(scope.get("headers") or []).get(b"content-type", b"")
        if (
            not own_format
            and scope.get("method") == "POST"
            and media.lower().startswith(REFUSED_MEDIA)
        ):
            await send_json(send, 415, unsupported_media(media.decode("latin-1")))
            return
        start: dict[str, Any] | None = None
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                kind = headers.get(b"content-type", b"")
                status = message["status"]
                json_4xx = 400 <= status < 500 and kind.startswith(b"application/json")
                router_miss = status in ROUTER_MISSES and kind.startswith(b"text/plain")
                if (json_4xx and not own_format) or router_miss:
                    start = message  # hold it: the body may change length
                    return
                await send(message)
            elif start is not None and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    await send_reshaped(start, b"".join(chunks))
            else:
                await send(message)

        async def send_reshaped(head: dict[str, Any], body: bytes) -> None:
            new: dict[str, Any] | None = None
            if head["status"] in ROUTER_MISSES and not body.startswith(b"{"):
                new = router_miss_body(head["status"], scope)
            else:
                try:
                    new = reshape(json.loads(body))
                except ValueError:
                    new = None
            drop = (b"content-length",)
            if new is not None:
                body, drop = json.dumps(new).encode(), (b"content-length", b"content-type")
            headers = [(k, v) for k, v in head.get("headers") or [] if k not in drop]
            headers.append((b"content-length", str(len(body)).encode()))
            if new is not None:
                headers.append((b"content-type", b"application/json"))
            await send({**head, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, capture)


def router_miss_body(status: int, scope: dict[str, Any]) -> dict[str, Any]:
    """Starlette's plain-text 404 / 405 (no such route or method) as the one JSON shape."""
    if status == 404:
        msg, kind = f"no route {scope.get('path', '')!r}", "not_found"
    else:
        msg, kind = f"method {scope.get('method')} is not allowed here", "method_not_allowed"
    return {"error": f"path: {msg}", "detail": [{"loc": ["path"], "msg": msg, "type": kind}]}


def unsupported_media(media: str) -> dict[str, Any]:
    msg = f"content type {media.split(';')[0].strip()!r} is not accepted: send application/json"
    detail = [{"loc": ["header", "content-type"], "msg": msg, "type": "media_type"}]
    return {"error": f"header.content-type: {msg}", "detail": detail}


async def send_json(send: Any, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class _QuietClientErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        from pydantic import ValidationError

        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ValidationError)  # the client's input, not a fault


def quiet_client_errors() -> None:
    """Stop BentoML logging request validation errors (with their input values) as errors."""
    logger = logging.getLogger(HTTP_APP_LOGGER)
    if not any(isinstance(f, _QuietClientErrors) for f in logger.filters):
        logger.addFilter(_QuietClientErrors())
