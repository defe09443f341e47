"""What the log records: the impressions of one response, and feedback on them.

- `Impressions`: one `/recommend` response (request_id, user, model version, A/B variant, encoder
  variant, time) and its shown items (`ShownItem`: item_id, rank, score, probability). Built by the
  service from its own data, so a bad value is a bug: plain ValueError.
- `Feedback`: {request_id, item_id, event: click | conversion, timestamp}; comes from clients, so
  `parse_feedback` checks a JSON body and raises `FeedbackError` naming each bad field.

A user is a known `user_id` or, for a cold profile, `profile_fingerprint(profile)`: a stable
hash of the normalised profile (case and whitespace folded). The fingerprint changes when the
profile does (a cold user who likes one more item is a new fingerprint); `user_key` is what A/B
assignment and the per-user statistics group by.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from rec_models.events.errors import FeedbackError, Loc, Problem

MAX_FEEDBACK_EVENTS = 1000  # events in one feedback call
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
MAX_NAME = 128  # characters of a model version, variant or encoder variant
FEEDBACK_FIELDS = ("request_id", "item_id", "event", "timestamp")


class EventKind(StrEnum):
    CLICK = "click"
    CONVERSION = "conversion"


def new_request_id() -> str:
    """A fresh request id (32 hex characters, random): what the service puts in a response."""
    return uuid.uuid4().hex


class ProfileLike(Protocol):
    age: int | None
    gender: str | None
    occupation: str | None
    history: list[int]
    text: str | None


def _fold(text: str | None) -> str | None:
    folded = " ".join(text.split()).casefold() if text else ""
    return folded or None


def profile_fingerprint(profile: ProfileLike) -> str:
    """32 hex characters identifying a cold profile; equal for profiles equal up to case/spaces."""
    canonical = [
        profile.age,
        _fold(profile.gender),
        _fold(profile.occupation),
        [int(i) for i in profile.history or []],
        _fold(profile.text),
    ]
    blob = json.dumps(canonical, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


def user_key(user_id: int | None, fingerprint: str | None) -> str:
    """'u:<id>' for a known user, 'p:<fingerprint>' for a cold profile."""
    if (user_id is None) == (fingerprint is None):
        raise ValueError("give exactly one of user_id or fingerprint")
    return f"u:{user_id}" if user_id is not None else f"p:{fingerprint}"


def _name(value: object, field: str) -> None:
    if not isinstance(value, str) or not value or len(value) > MAX_NAME:
        raise ValueError(f"{field}: expected a non-empty string of at most {MAX_NAME} characters")


def _finite(value: object, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{field}: expected a finite number, got {value!r}")


@dataclass(frozen=True, slots=True)
class ShownItem:
    item_id: int
    rank: int  # 1 = first in the response
    score: float
    probability: float


@dataclass(frozen=True, slots=True)
class Impressions:
    """One response's impressions. Exactly one of user_id / profile_fingerprint is set."""

    request_id: str
    items: tuple[ShownItem, ...]
    model_version: str
    variant: str  # the A/B arm that served it
    encoder_variant: str
    timestamp: float  # unix seconds, when the response was built
    user_id: int | None = None
    profile_fingerprint: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.request_id, str) or not REQUEST_ID.fullmatch(self.request_id):
            raise ValueError(f"request_id: expected {REQUEST_ID.pattern}, got {self.request_id!r}")
        user_key(self.user_id, self.profile_fingerprint)  # exactly one of them
        if self.user_id is not None and (
            isinstance(self.user_id, bool) or not isinstance(self.user_id, int)
        ):
            raise ValueError(f"user_id: expected an integer, got {self.user_id!r}")
        for field in ("model_version", "variant", "encoder_variant"):
            _name(getattr(self, field), field)
        _finite(self.timestamp, "timestamp")
        seen: set[int] = set()
        for i, item in enumerate(self.items):
            if item.item_id in seen:
                raise ValueError(f"items[{i}].item_id: {item.item_id} appears twice")
            seen.add(item.item_id)
            if item.rank != i + 1:
                raise ValueError(f"items[{i}].rank: expected {i + 1} (ranks follow the order)")
            _finite(item.score, f"items[{i}].score")
            _finite(item.probability, f"items[{i}].probability")

    @property
    def user_key(self) -> str:
        return user_key(self.user_id, self.profile_fingerprint)

    @classmethod
    def ranked(
        cls,
        request_id: str,
        ranked: Sequence[tuple[int, float, float]],
        **fields: Any,
    ) -> Impressions:
        """From (item_id, score, probability) in response order; ranks follow that order."""
        items = tuple(
            ShownItem(int(i), rank, float(s), float(p))
            for rank, (i, s, p) in enumerate(ranked, start=1)
        )
        return cls(request_id=request_id, items=items, **fields)


@dataclass(frozen=True, slots=True)
class Feedback:
    """A click or a conversion on one shown item. timestamp None: when the log receives it.

    Checks its own fields (FeedbackError naming them), so every way of building one is safe.
    """

    request_id: str
    item_id: int
    event: EventKind
    timestamp: float | None = None  # unix seconds

    def __post_init__(self) -> None:
        problems: list[Problem] = []
        rid, item_id, event, ts = self.request_id, self.item_id, self.event, self.timestamp
        if not isinstance(rid, str) or not REQUEST_ID.fullmatch(rid):
            what = "missing" if rid is None else f"expected {REQUEST_ID.pattern}, got {rid!r}"
            problems.append((("request_id",), what, "invalid"))
        if isinstance(item_id, bool) or not isinstance(item_id, int):
            what = "missing" if item_id is None else f"expected an integer, got {item_id!r}"
            problems.append((("item_id",), what, "invalid"))
        if event in _KINDS:
            object.__setattr__(self, "event", EventKind(event))
        else:
            what = "missing" if event is None else f"unknown event {event!r}"
            problems.append((("event",), f"{what} (valid: click, conversion)", "invalid"))
        if ts is not None and (
            isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts)
        ):
            problems.append((("timestamp",), f"expected unix seconds, got {ts!r}", "invalid"))
        if problems:
            raise FeedbackError(problems)


_KINDS = tuple(k.value for k in EventKind)


def parse_timestamp(value: object) -> float | None:
    """Unix seconds (a number) or an ISO-8601 string with a time zone; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError("expected unix seconds or an ISO-8601 time") from None
        if moment.tzinfo is None:
            raise ValueError("an ISO-8601 time needs a time zone (e.g. Z or +01:00)")
        return moment.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("expected unix seconds or an ISO-8601 time")
    return float(value)


def _parse_one(raw: object, loc: Loc, problems: list[Problem]) -> Feedback | None:
    if not isinstance(raw, Mapping):
        problems.append((loc, "expected an object with request_id, item_id, event", "invalid"))
        return None
    before = len(problems)
    valid = ", ".join(FEEDBACK_FIELDS)
    for key in raw:
        if key not in FEEDBACK_FIELDS:
            problems.append(((*loc, str(key)), f"unknown field (valid: {valid})", "invalid"))
    timestamp = None
    try:
        timestamp = parse_timestamp(raw.get("timestamp"))
    except ValueError as exc:
        problems.append(((*loc, "timestamp"), str(exc), "invalid"))
    try:
        event = Feedback(raw.get("request_id"), raw.get("item_id"), raw.get("event"), timestamp)  # type: ignore[arg-type]
    except FeedbackError as exc:
        problems.extend(((*loc, *where), msg, kind) for where, msg, kind in exc.errors)
        return None
    return event if len(problems) == before else None


def parse_feedback(
    body: object, max_events: int = MAX_FEEDBACK_EVENTS
) -> Feedback | list[Feedback]:
    """A JSON body (one object or a list of them) -> Feedback or a list, the same shape.

    Raises FeedbackError listing every bad field, located by list index when the body is a list.
    """
    if isinstance(body, Mapping):
        problems: list[Problem] = []
        one = _parse_one(body, (), problems)
        if one is None:
            raise FeedbackError(problems)
        return one
    if not isinstance(body, list):
        raise FeedbackError([((), "expected a feedback object or a list of them", "invalid")])
    if not body:
        raise FeedbackError([((), "expected at least one feedback event", "invalid")])
    if len(body) > max_events:
        raise FeedbackError(
            [((), f"{len(body)} events in one call; at most {max_events}", "too_many")]
        )
    problems = []
    events = [_parse_one(raw, (i,), problems) for i, raw in enumerate(body)]
    if problems:
        raise FeedbackError(problems)
    return [e for e in events if e is not None]
