"""BentoML's own answers to bad bodies, in the service's one error shape, and out of the log."""

from __future__ import annotations

import httpx
import pytest
from harness import Service

from rec_models.serving.client_errors import reshape

BAD_BODIES = [
    ('{"user_id": "x"}', ["user_id"], "int_type"),
    ("not json", ["body"], "json_invalid"),
    ("[]", ["body"], "model_type"),
    ('{"user_id": 1, "k": 0}', ["k"], "greater_than_equal"),
    ('{"user_id": 1, "unknown": 2}', ["unknown"], "extra_forbidden"),
    ('{"history": [1, 2.5]}', ["history", 1], "int_type"),
]


@pytest.mark.parametrize(("body", "loc", "kind"), BAD_BODIES)
def test_validation_errors_have_the_one_shape(service: Service, body, loc, kind):
    r = httpx.post(f"{service.url}/recommend", content=body,
                   headers={"content-type": "application/json"}, timeout=30)  # fmt: skip
    assert r.status_code == 400
    payload = r.json()
    assert set(payload) == {"error", "detail"} and "IODescriptor" not in r.text
    assert payload["detail"][0] == {"loc": loc, "msg": payload["detail"][0]["msg"], "type": kind}
    assert payload["error"].startswith(f"{loc[0]}")  # "field: reason"


def test_multipart_and_internal_media_types_are_refused(service: Service):
    for media in ("multipart/form-data", "multipart/form-data; boundary=x",
                  "application/vnd.bentoml+pickle"):  # fmt: skip
        r = httpx.post(f"{service.url}/embed", content=b'{"texts": ["a"]}',
                       headers={"content-type": media}, timeout=30)  # fmt: skip
        assert r.status_code == 415, (media, r.text)
        assert r.json()["detail"][0]["loc"] == ["header", "content-type"]
    # A form body is parsed by BentoML and refused 400 in the same shape (curl -d needs -H).
    form = {"content-type": "application/x-www-form-urlencoded"}
    r = httpx.post(f"{service.url}/embed", content=b'{"texts": ["a"]}', headers=form, timeout=30)
    assert r.status_code == 400 and set(r.json()) == {"error", "detail"}, r.text


def test_bad_requests_leave_no_traceback_or_values_in_the_log(service: Service):
    marker = "zz-secret-looking-value-zz"
    r = httpx.post(f"{service.url}/recommend", json={"user_id": marker}, timeout=30)
    assert r.status_code == 400
    log = service.log.read_text(errors="replace")
    assert marker not in log and "ValidationError" not in log


def test_reshape_leaves_the_services_own_errors_alone():
    ours = {"error": "user_id: unknown user_id 9", "detail": [
        {"loc": ["user_id"], "msg": "unknown user_id 9", "type": "unknown_id"}]}  # fmt: skip
    assert reshape(ours) is None
    assert reshape([{"error": "bad"}]) == {
        "error": "bad", "detail": [{"loc": [], "msg": "bad", "type": "bad_request"}]}  # fmt: skip


def test_unknown_routes_answer_json(service: Service):
    r = httpx.get(f"{service.url}/v2/models/a%0Ab", timeout=30)  # no route matches a newline
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/json")
    assert r.json()["detail"][0]["type"] == "not_found"
    r = httpx.get(f"{service.url}/recommend", timeout=30)
    assert r.status_code == 405 and r.json()["detail"][0]["type"] == "method_not_allowed"
