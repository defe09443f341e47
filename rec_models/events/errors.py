"""The one error type of the event log, shaped like the service's request errors.

Every error carries the HTTP status it maps to and a list of (loc, message) pairs naming the
field at fault, so a transport converts it in one place and a client parses one format:

    {"error": "[3].request_id: unknown request_id 'f00'",
     "detail": [{"loc": [3, "request_id"], "msg": "unknown request_id 'f00'",
                 "type": "unknown_request"}]}

The loc starts with the event's index in the list when the body was a list, and with the field
when it was a single object. Statuses:

- 400 `invalid`: a malformed or inconsistent event (bad type, unknown event kind, timestamp outside
  the retention window or in the future, item not shown in that request, conversion before click)
- 404 `unknown_request`: a request_id the log does not hold
- 409 `duplicate`: this event (request_id, item_id, event) is already stored; nothing was written
- 413 `too_many`: more events in one call than allowed (1,000 by default)
- 503 `overloaded`: the writer is behind, so the call was shed before queueing (nothing
  written); or its commit did not come within the caller's timeout (it may still be written:
  a retry then gets 409)
- 503 `unavailable`: the log is closed or a write failed; nothing was written (only a crash
  of the writer thread itself, a bug, leaves a call's fate unknown)

A feedback call is all-or-nothing: one bad event rejects the call and stores none of it. When a
call has several errors, `status` is the lowest of theirs (a malformed event outranks a duplicate).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str, str]  # (loc, message, kind)

STATUS = {
    "invalid": 400,
    "unknown_request": 404,
    "duplicate": 409,
    "too_many": 413,
    "overloaded": 503,
    "unavailable": 503,
}
MAX_REPORTED = 10  # problems listed per call; the rest are summed up in a last line


class EventError(Exception):
    """An event-log call that cannot be honoured; `status` is the HTTP code to answer with."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        if not problems:
            raise ValueError("EventError needs at least one problem")
        for _, _, kind in problems:
            if kind not in STATUS:
                raise ValueError(f"unknown problem kind {kind!r} (valid: {', '.join(STATUS)})")
        self.kinds = frozenset(kind for _, _, kind in problems)  # all, even those not listed
        self.status = min(STATUS[kind] for kind in self.kinds)
        self.kind = next(kind for _, _, kind in problems if STATUS[kind] == self.status)
        shown = [(tuple(loc), msg, kind) for loc, msg, kind in problems]
        if len(shown) > MAX_REPORTED:
            more = len(shown) - (MAX_REPORTED - 1)
            shown = [*shown[: MAX_REPORTED - 1], ((), f"and {more} more", shown[-1][2])]
        self.errors = shown
        loc, msg, _ = shown[0]
        super().__init__(f"{loc_str(loc)}: {msg}" if loc else msg)

    @property
    def field(self) -> str:
        """The field named by the first problem ('' when it concerns the whole call)."""
        names = [part for part in self.errors[0][0] if isinstance(part, str)]
        return names[0] if names else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": str(self),
            "detail": [
                {"loc": list(loc), "msg": msg, "type": kind} for loc, msg, kind in self.errors
            ],
        }


class FeedbackError(EventError, ValueError):
    """Feedback the log refuses (4xx): one problem per bad event, each naming its field."""


class SinkOverloaded(EventError):
    """The writer is behind: feedback is shed at once instead of queueing (503, retry later)."""

    def __init__(self, reason: str) -> None:
        super().__init__([((), reason, "overloaded")])


class SinkUnavailable(EventError):
    """The log is closed, or its storage failed for this call (503); nothing was written."""

    def __init__(self, reason: str) -> None:
        super().__init__([((), reason, "unavailable")])


def loc_str(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
