"""The current request's deadline, set by the transport and read where work is queued.

The HTTP admission middleware (from `X-Request-Timeout`, seconds) and the gRPC interceptor (from
the call's deadline) set it for the request's task; the encoder's micro-batcher reads it when the
request is queued and drops the request, unencoded, once it has passed (DeadlineExceededError).
"""

from __future__ import annotations

import contextvars
import time

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "adrec_deadline", default=None
)


def set_deadline(timeout_s: float | None) -> contextvars.Token[float | None]:
    """Deadline `timeout_s` from now (None: none) for the current request."""
    return _DEADLINE.set(None if timeout_s is None else time.monotonic() + timeout_s)


def reset_deadline(token: contextvars.Token[float | None]) -> None:
    _DEADLINE.reset(token)


def current_deadline() -> float | None:
    """time.monotonic() value past which the current request is no longer wanted."""
    return _DEADLINE.get()
