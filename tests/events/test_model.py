"""The event model: impressions built by the service, feedback parsed from clients."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from rec_models.events import (
    EventKind,
    EventLogSettings,
    Feedback,
    FeedbackError,
    Impressions,
    ShownItem,
    default_events_path,
    parse_feedback,
    profile_fingerprint,
    user_key,
)
from rec_models.events.errors import MAX_REPORTED, EventError
from rec_models.text.profiles import Profile

from .support import impressions


def test_ranked_impressions_number_items_in_response_order() -> None:
    imp = impressions("r1", items=(5, 3, 9))
    assert [(i.item_id, i.rank) for i in imp.items] == [(5, 1), (3, 2), (9, 3)]
    assert imp.user_key == "u:7"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"request_id": "has space"}, "request_id"),
        ({"request_id": ""}, "request_id"),
        ({"variant": ""}, "variant"),
        ({"model_version": "x" * 129}, "model_version"),
        ({"timestamp": math.nan}, "timestamp"),
        ({"user_id": None}, "user_id"),  # neither user_id nor fingerprint
        ({"profile_fingerprint": "ab"}, "user_id"),  # both
        ({"user_id": True}, "user_id"),
    ],
)
def test_impressions_refuse_bad_fields(change: dict, field: str) -> None:
    good = impressions("r1")
    fields = {
        "request_id": good.request_id,
        "items": good.items,
        "model_version": "1",
        "variant": "A",
        "encoder_variant": "int8",
        "timestamp": 1.0,
        "user_id": 7,
    } | change
    with pytest.raises(ValueError, match=field):
        Impressions(**fields)


def test_impressions_refuse_repeated_items_and_wrong_ranks() -> None:
    with pytest.raises(ValueError, match=r"items\[1\].item_id: 5 appears twice"):
        impressions("r1", items=(5, 5))
    items = (ShownItem(1, 2, 0.1, 0.1),)
    with pytest.raises(ValueError, match=r"items\[0\].rank"):
        Impressions("r1", items, "1", "A", "int8", 1.0, user_id=1)
    items = (ShownItem(1, 1, math.inf, 0.1),)
    with pytest.raises(ValueError, match=r"items\[0\].score"):
        Impressions("r1", items, "1", "A", "int8", 1.0, user_id=1)


def test_fingerprint_is_stable_up_to_case_and_spaces_and_tracks_the_profile() -> None:
    a = Profile(age=30, gender="F", occupation="Engineer", history=[1, 2], text="Likes  Sci-Fi")
    b = Profile(age=30, gender=" f ", occupation="engineer", history=[1, 2], text="likes sci-fi")
    assert profile_fingerprint(a) == profile_fingerprint(b)
    assert len(profile_fingerprint(a)) == 32 and int(profile_fingerprint(a), 16) >= 0
    c = Profile(age=30, gender="F", occupation="Engineer", history=[1, 2, 3], text="Likes Sci-Fi")
    d = Profile(age=31, gender="F", occupation="Engineer", history=[1, 2], text="Likes Sci-Fi")
    assert len({profile_fingerprint(p) for p in (a, c, d)}) == 3
    assert user_key(None, profile_fingerprint(a)) == f"p:{profile_fingerprint(a)}"
    with pytest.raises(ValueError):
        user_key(1, "ab")


def test_parse_feedback_keeps_the_body_shape() -> None:
    one = parse_feedback({"request_id": "r1", "item_id": 5, "event": "click"})
    assert one == Feedback("r1", 5, EventKind.CLICK, None)
    many = parse_feedback(
        [
            {"request_id": "r1", "item_id": 5, "event": "click", "timestamp": 1_700_000_000},
            {
                "request_id": "r1",
                "item_id": 5,
                "event": "conversion",
                "timestamp": "2023-11-14T22:13:20Z",
            },
        ]
    )
    assert isinstance(many, list) and [e.event for e in many] == ["click", "conversion"]
    assert many[1].timestamp == 1_700_000_000.0


def test_parse_feedback_names_every_bad_field_by_index() -> None:
    with pytest.raises(FeedbackError) as info:
        parse_feedback(
            [
                {"request_id": "r1", "item_id": 5, "event": "click"},
                {"request_id": "r1", "item_id": 5, "event": "like"},
                {"request_id": "r 1", "item_id": "5", "event": "click", "colour": "red"},
                {"request_id": "r1", "item_id": 5, "event": "click", "timestamp": "2023-11-14"},
                "not an object",
            ]
        )
    err = info.value
    assert err.status == 400 and err.kind == "invalid"
    locs = [d["loc"] for d in err.to_dict()["detail"]]
    assert locs == [
        [1, "event"],
        [2, "colour"],
        [2, "request_id"],
        [2, "item_id"],
        [3, "timestamp"],
        [4],
    ]
    assert "unknown event 'like' (valid: click, conversion)" in err.to_dict()["detail"][0]["msg"]
    assert "time zone" in err.to_dict()["detail"][4]["msg"]
    assert str(err).startswith("[1].event: unknown event 'like'")


def test_parse_feedback_single_object_errors_have_no_index() -> None:
    with pytest.raises(FeedbackError) as info:
        parse_feedback({"request_id": "r1", "event": "click", "item_id": True})
    assert info.value.errors[0][0] == ("item_id",) and info.value.field == "item_id"
    with pytest.raises(FeedbackError, match="request_id: missing"):
        parse_feedback({"item_id": 1, "event": "click"})


def test_parse_feedback_limits_the_list() -> None:
    event = {"request_id": "r1", "item_id": 5, "event": "click"}
    assert len(parse_feedback([event] * 1000)) == 1000
    with pytest.raises(FeedbackError) as info:
        parse_feedback([event] * 1001)
    assert info.value.status == 413 and "1001 events in one call; at most 1000" in str(info.value)
    with pytest.raises(FeedbackError, match="at least one"):
        parse_feedback([])
    with pytest.raises(FeedbackError, match="expected a feedback object"):
        parse_feedback("click")


def test_feedback_checks_its_own_fields() -> None:
    assert Feedback("r1", 1, "click").event is EventKind.CLICK  # a plain string is coerced
    with pytest.raises(FeedbackError, match="event: unknown event 'view'"):
        Feedback("r1", 1, "view")
    with pytest.raises(FeedbackError, match="timestamp"):
        Feedback("r1", 1, EventKind.CLICK, math.inf)


def test_error_status_is_the_lowest_and_long_lists_are_summed_up() -> None:
    mixed = EventError(
        [((0, "event"), "dup", "duplicate"), ((1, "request_id"), "?", "unknown_request")]
    )
    assert (mixed.status, mixed.kind) == (404, "unknown_request")
    many = EventError([((i, "event"), "dup", "duplicate") for i in range(25)])
    assert len(many.errors) == MAX_REPORTED and many.errors[-1][1] == "and 16 more"
    assert many.status == 409
    with pytest.raises(ValueError, match="unknown problem kind"):
        EventError([((), "x", "teapot")])


def test_settings_check_their_fields_and_read_their_variables(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"events\.max_queue_rows: expected int"):
        EventLogSettings(max_queue_rows=10.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"events\.synchronous: 'OFF'"):
        EventLogSettings(synchronous="OFF")
    with pytest.raises(ValueError, match=r"events\.max_lag_s: must be at least 0"):
        EventLogSettings(max_lag_s=-1.0)
    env = {"ADREC_EVENTS_SYNCHRONOUS": "NORMAL", "ADREC_EVENTS_MAX_QUEUE_ROWS": "1000",
           "ADREC_EVENTS_PATH": str(tmp_path / "e.sqlite"), "HOME": "/root"}  # fmt: skip
    settings = EventLogSettings.from_env(env)
    assert (settings.synchronous, settings.max_queue_rows) == ("NORMAL", 1000)
    assert settings.file == tmp_path / "e.sqlite"
    assert EventLogSettings().file == default_events_path()
    with pytest.raises(ValueError, match="ADREC_EVENTS_MAX_LAG: unknown variable"):
        EventLogSettings.from_env({"ADREC_EVENTS_MAX_LAG": "2"})
    with pytest.raises(ValueError, match="ADREC_EVENTS_MAX_QUEUE_ROWS='lots': expected int"):
        EventLogSettings.from_env({"ADREC_EVENTS_MAX_QUEUE_ROWS": "lots"})
    with pytest.raises(ValueError, match="ADREC_EVENTS_SYNCHRONOUS: 'off'"):
        EventLogSettings.from_env({"ADREC_EVENTS_SYNCHRONOUS": "off"})


def test_the_default_log_follows_the_artifacts_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADREC_ARTIFACTS", "/srv/adrec")
    assert default_events_path() == Path("/srv/adrec/events/events.sqlite")
    monkeypatch.delenv("ADREC_ARTIFACTS")
    assert default_events_path().parts[-3:] == ("artifacts", "events", "events.sqlite")
