"""HTTP plumbing of the service: the JSON error responses (the request body's size limit and
deadline: rec_models.serving.body)."""

from __future__ import annotations

from typing import Any

from rec_models.serving.errors import ServingError


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
