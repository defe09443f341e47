"""Errors of the serving runtime, each naming the request field at fault.

The runtime raises them; the HTTP service (and the gRPC server) map them to a status code and a
JSON body shaped like BentoML's own validation errors, so a client parses one format:

    {"error": "user_id: unknown user_id 99999",
     "detail": [{"loc": ["user_id"], "msg": "unknown user_id 99999", "type": "unknown_id"}]}

Status codes: 400 for a malformed or inconsistent request (BentoML answers its Pydantic
validation errors with 400 too), 404 for ids the catalog does not hold, 413 for a body over the
size limit, 503 while the models warm up or when the encoder sheds load (retry later).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Loc = tuple[str | int, ...]


class ServingError(Exception):
    """A request the runtime cannot answer; `status` is the HTTP code, `errors` the detail list."""

    status = 400
    kind = "bad_request"

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


class NotReadyError(ServingError):
    status = 503
    kind = "not_ready"

    def __init__(
        self, reason: str = "the models are still loading; retry when /readyz answers 200"
    ) -> None:
        super().__init__([((), reason)])


class OverloadedError(ServingError):
    """The encoder's batcher refused the request: it would have missed its latency deadline."""

    status = 503
    kind = "overloaded"

    def __init__(self, reason: str = "the encoder is overloaded; retry shortly") -> None:
        super().__init__([((), reason)])


class BundleError(RuntimeError):
    """An artifact that breaks its contract (missing file or key, wrong shape, bad sha256)."""


def _as_loc(field: str | Loc) -> Loc:
    return (field,) if isinstance(field, str) else tuple(field)


def _loc_str(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
