"""The feedback loop's HTTP routes, a Starlette app the service mounts beside its own routes.

    POST /feedback        one event or a list of up to 1,000 -> 200 {"stored": n}
    GET  /stats           the log's counts per arm and model version (last hour, all time)
    POST /admin/reload    {"version": "current" | "2" | ...} -> 202 {"version", "previous", ...}

Refusals answer the service's error shape ({"error": "field: reason", "detail": [{"loc", "msg",
"type"}]}): /feedback with the event log's statuses (400 malformed, 404 unknown request_id,
409 duplicate, 413 too many events, 503 log behind or off, with Retry-After); /admin/reload
401 without the API key (when ADREC_API_KEY is set; `Authorization: Bearer <key>`, compared in
constant time), 404 unknown version.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from rec_models.events import EventError
from rec_models.serving.auth import ApiKey, reason
from rec_models.serving.errors import (
    BadRequestError,
    NotReadyError,
    ServingError,
    UnauthenticatedError,
)
from rec_models.serving.web import error_response, json_response


def authorized(header: str | None, api_key: str) -> bool:
    """The service's API-key check (rec_models.serving.auth); always true without a key. The
    middleware already guards every route when a key is set: this keeps reload guarded even if
    the route is mounted without it."""
    return not api_key or ApiKey(api_key).accepts(header)


def event_error(exc: EventError) -> Any:
    headers = {"Retry-After": "1"} if exc.status == 503 else None
    return json_response(exc.to_dict(), exc.status, headers)


async def read_json(request: Any) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError("body", f"not valid JSON ({exc})") from None


def create_app(get_service: Callable[[], Any], api_key: str) -> Any:
    """The app; `get_service()` returns the worker's service (its `loop` and `scorers`)."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    async def feedback(request: Any) -> Any:
        try:
            body = await read_json(request)
            if body is None:
                raise BadRequestError("body", "expected a feedback object or a list of them")
            return json_response(await get_service().loop.feedback(body))
        except EventError as exc:
            return event_error(exc)
        except ServingError as exc:
            return error_response(exc)

    async def stats(request: Any) -> Any:
        try:
            return json_response(await get_service().loop.stats())
        except EventError as exc:
            return event_error(exc)

    async def reload(request: Any) -> Any:
        try:
            header = request.headers.get("authorization")
            if not authorized(header, api_key):
                raise UnauthenticatedError(reason(header))
            body = await read_json(request) or {}
            if not isinstance(body, dict) or set(body) - {"version"}:
                raise BadRequestError("body", 'expected {"version": "current" | "<version>"}')
            ref = body.get("version", "current")
            if not isinstance(ref, str):
                raise BadRequestError("version", f"expected a string, got {ref!r}")
            service = get_service()
            if not service.core.ready:
                raise NotReadyError()
            answer = await service.scorers.request(ref)
        except ServingError as exc:
            return error_response(exc)
        return json_response(answer, 202 if answer["state"] == "loading" else 200)

    return Starlette(
        routes=[
            Route("/feedback", feedback, methods=["POST"]),
            Route("/stats", stats, methods=["GET"]),
            Route("/admin/reload", reload, methods=["POST"]),
        ]
    )
