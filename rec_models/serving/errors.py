"""The one error type of the serving path: each names the request field (or tensor) at fault and
carries both its HTTP status and its gRPC status code.

The core and the runtime raise them; each transport maps them in one place: the native JSON
routes to a body shaped like BentoML's own validation errors (so a client parses one format),

    {"error": "user_id: unknown user_id 99999",
     "detail": [{"loc": ["user_id"], "msg": "unknown user_id 99999", "type": "unknown_id"}]}

the v2 REST routes to {"error": message} with the status, gRPC to `context.abort(code)`.

Status codes: 400 / INVALID_ARGUMENT for a malformed or inconsistent request (BentoML answers its
Pydantic validation errors with 400 too), 401 / UNAUTHENTICATED without the API key (when one is
set), 404 / NOT_FOUND for ids the catalog does not hold (and
unknown models), 413 for a body over the size limit, 503 / UNAVAILABLE while the models warm up,
503 + Retry-After / RESOURCE_EXHAUSTED when the encoder's queue is full (retry later), 429 +
Retry-After / RESOURCE_EXHAUSTED past the worker's admission limits, 408 / DEADLINE_EXCEEDED once
the request's own deadline has passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Loc = tuple[str | int, ...]


class ServingError(Exception):
    """A request the service cannot answer; `status` is the HTTP code, `grpc_code` the name of
    the grpc.StatusCode, `errors` the detail list [(loc, message)]."""

    status = 400
    grpc_code = "INVALID_ARGUMENT"
    kind = "bad_request"
    retry_after_s: int | None = None  # HTTP Retry-After on 503s

    def __init__(self, errors: Sequence[tuple[Loc, str]]) -> None:
        self.errors = [(tuple(loc), msg) for loc, msg in errors]
        loc, msg = self.errors[0]
        super().__init__(f"{_loc_str(loc)}: {msg}" if loc else msg)

    @property
    def field(self) -> str:
        """The top-level request field of the first error ('' when it concerns the whole body)."""
        loc = self.errors[0][0]
        return str(loc[0]) if loc else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": str(self),
            "detail": [
                {"loc": list(loc), "msg": msg, "type": self.kind} for loc, msg in self.errors
            ],
        }


class BadRequestError(ServingError, ValueError):
    """A request that is well-typed but makes no sense (empty profile, user_id and profile...)."""

    def __init__(self, field: str | Loc, reason: str) -> None:
        super().__init__([(_as_loc(field), reason)])


class UnknownIdError(ServingError, LookupError):
    """Ids the catalog does not hold; `values` and their `positions` in the request's list."""

    status = 404
    grpc_code = "NOT_FOUND"
    kind = "unknown_id"
    MAX_REPORTED = 10

    def __init__(
        self, field: str, values: int | Sequence[int], positions: Sequence[int] | None = None
    ) -> None:
        single = isinstance(values, int)
        vals = [values] if single else list(values)
        self.values = vals
        noun = field[:-1] if field.endswith("_ids") else field  # candidate_ids -> candidate_id
        noun = "item_id" if field == "history" else noun
        if single or positions is None:
            errors = [((field,), f"unknown {noun} {v}") for v in vals[: self.MAX_REPORTED]]
        else:
            errors = [
                ((field, int(p)), f"unknown {noun} {v}")
                for v, p in list(zip(vals, positions, strict=True))[: self.MAX_REPORTED]
            ]
        super().__init__(errors)


class ProtocolError(ServingError):
    """An Open Inference Protocol error whose message names the tensor ("input 'TEXT': ...")."""

    def __init__(self, message: str) -> None:
        super().__init__([((), message)])


class InvalidArgumentError(ProtocolError, ValueError):
    pass


class NotFoundError(ProtocolError, LookupError):
    """An unknown model or version (v2 / gRPC)."""

    status, grpc_code, kind = 404, "NOT_FOUND", "not_found"


class UnavailableError(ProtocolError):
    status, grpc_code, kind = 503, "UNAVAILABLE", "unavailable"
    retry_after_s = 1


class NotReadyError(ServingError):
    status = 503
    grpc_code = "UNAVAILABLE"
    kind = "not_ready"
    retry_after_s = 1

    def __init__(
        self, reason: str = "the models are still loading; retry when /readyz answers 200"
    ) -> None:
        super().__init__([((), reason)])


class OverloadedError(ServingError):
    """The encoder's queue is full, or the request waited in it past its deadline: shed now
    rather than answered late (503 + Retry-After, RESOURCE_EXHAUSTED)."""

    status = 503
    grpc_code = "RESOURCE_EXHAUSTED"
    kind = "overloaded"
    retry_after_s = 1

    def __init__(self, reason: str = "the encoder is overloaded; retry shortly") -> None:
        super().__init__([((), reason)])


class UnauthenticatedError(ServingError):
    """A request without the configured API key, or with another (401, UNAUTHENTICATED)."""

    status, grpc_code, kind = 401, "UNAUTHENTICATED", "unauthorized"

    def __init__(self, reason: str) -> None:
        super().__init__([(("header", "authorization"), reason)])


class TooManyRequestsError(ServingError):
    """More requests in flight and queued than the worker admits (429 + Retry-After)."""

    status, grpc_code, kind = 429, "RESOURCE_EXHAUSTED", "too_many_requests"
    retry_after_s = 1

    def __init__(self, reason: str) -> None:
        super().__init__([((), reason)])


class DeadlineExceededError(ServingError):
    """The request's own deadline (X-Request-Timeout, gRPC deadline) passed before its turn:
    dropped before the encoder (408 Request Timeout, DEADLINE_EXCEEDED). A 4xx: the deadline is
    the client's, and a client's tight deadline should not count as a server failure."""

    status, grpc_code, kind = 408, "DEADLINE_EXCEEDED", "deadline_exceeded"

    def __init__(self, reason: str) -> None:
        super().__init__([((), reason)])


class PayloadTooLargeError(ServingError):
    """A body over the configured size limit (413), refused before it is parsed."""

    status, grpc_code, kind = 413, "RESOURCE_EXHAUSTED", "payload_too_large"

    def __init__(self, limit: int, size: int | None) -> None:
        got = f"{size} bytes" if size is not None else f"more than {limit} bytes"
        reason = f"request body too large ({got}; the limit is {limit} bytes)"
        super().__init__([(("body",), reason)])


class BodyTimeoutError(ServingError):
    """A body that did not arrive in full within the body deadline (408): a client trickling
    it (slow-loris) or stalled mid-body; the rest is never read."""

    status, grpc_code, kind = 408, "DEADLINE_EXCEEDED", "body_timeout"

    def __init__(self, timeout_s: float, received: int) -> None:
        reason = f"the body did not arrive within {timeout_s:g} s ({received} bytes received)"
        super().__init__([(("body",), reason)])


class BundleError(RuntimeError):
    """An artifact that breaks its contract (missing file or key, wrong shape, bad sha256)."""


def _as_loc(field: str | Loc) -> Loc:
    return (field,) if isinstance(field, str) else tuple(field)


def _loc_str(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
