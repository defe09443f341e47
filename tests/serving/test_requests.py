"""Request handling without models: schemas, error bodies, the body-size limit, the fold-in."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rec_models.serving.body import BodyReader
from rec_models.serving.errors import BadRequestError, NotReadyError, UnknownIdError
from rec_models.serving.schemas import (
    EmbedRequest,
    RecommendRequest,
    ScoreRequest,
    SimilarItemsRequest,
)
from rec_models.serving.towers import fold_in
from rec_models.serving.web import error_response
from rec_models.text.profiles import Profile


def locs(exc: ValidationError) -> list[tuple]:
    return [tuple(e["loc"]) for e in exc.errors()]


def test_recommend_request_known_cold_and_conflicting():
    assert RecommendRequest(user_id=1).query() == 1
    cold = RecommendRequest(age=30, history=[1, 2], text="likes noir").query()
    assert cold == Profile(age=30, history=[1, 2], text="likes noir")
    with pytest.raises(BadRequestError) as err:
        RecommendRequest(user_id=1, age=30).query()
    assert err.value.field == "user_id" and err.value.status == 400
    assert RecommendRequest().query().is_empty()  # the runtime answers 400 "profile"


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"user_id": 1, "k": 0}, ("k",)),
        ({"user_id": 1, "k": 101}, ("k",)),
        ({"user_id": 1, "k": "10"}, ("k",)),  # strict: no string coercion
        ({"user_id": True}, ("user_id",)),
        ({"user_id": 1.5}, ("user_id",)),
        ({"userid": 1}, ("userid",)),  # unknown fields are refused, not ignored
        ({"age": -1}, ("age",)),
        ({"history": ["x"]}, ("history", 0)),
        ({"user_id": 1, "candidate_ids": []}, ("candidate_ids",)),
        ({"user_id": 1, "exclude_seen": "no"}, ("exclude_seen",)),
        ({"text": "x" * 2001}, ("text",)),
    ],
)
def test_recommend_request_bounds_name_the_field(body, loc):
    with pytest.raises(ValidationError) as err:
        RecommendRequest.model_validate_json(json.dumps(body))
    assert loc in locs(err.value)


def test_other_requests():
    with pytest.raises(ValidationError) as err:
        ScoreRequest(user_id=1, item_ids=list(range(1001)))
    assert ("item_ids",) in locs(err.value)
    with pytest.raises(ValidationError) as err:
        EmbedRequest(texts=[])
    assert ("texts",) in locs(err.value)
    with pytest.raises(ValidationError) as err:
        EmbedRequest(texts=["ok", "   "])
    assert ("texts", 1) in locs(err.value)
    with pytest.raises(ValidationError):
        EmbedRequest(texts=["x"] * 257)
    with pytest.raises(BadRequestError, match="exactly one"):
        SimilarItemsRequest(item_id=1, text="space").query()
    with pytest.raises(BadRequestError, match="exactly one"):
        SimilarItemsRequest().query()
    assert SimilarItemsRequest(text="space opera").query() == "space opera"


def test_error_bodies_name_the_field():
    err = UnknownIdError("candidate_ids", [7, 9], [0, 3])
    assert err.status == 404 and err.field == "candidate_ids"
    body = err.to_dict()
    assert body["detail"][1] == {
        "loc": ["candidate_ids", 3],
        "msg": "unknown candidate_id 9",
        "type": "unknown_id",
    }
    assert body["error"] == "candidate_ids[0]: unknown candidate_id 7"
    assert UnknownIdError("user_id", 99).to_dict()["error"] == "user_id: unknown user_id 99"
    resp = error_response(BadRequestError(("texts", 2), "must be a non-empty string"))
    assert resp.status_code == 400 and b'"loc":["texts",2]' in resp.body
    assert NotReadyError().status == 503


def _post(max_bytes: int, content) -> httpx.Response:
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"bytes": len(await request.body())})

    app = BodyReader(Starlette(routes=[Route("/echo", echo, methods=["POST"])]), max_bytes, 5.0)

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post("/echo", content=content)

    return asyncio.run(go())


def test_body_size_limit_declared_and_chunked():
    assert _post(100, b"x" * 100).json() == {"bytes": 100}
    resp = _post(100, b"x" * 101)
    assert resp.status_code == 413 and resp.json()["detail"][0]["loc"] == ["body"]

    async def chunks(n: int):
        for _ in range(n):
            yield b"x" * 30

    assert _post(100, chunks(3)).json() == {"bytes": 90}  # no Content-Length: read and replayed
    assert _post(100, chunks(4)).status_code == 413


def test_fold_in_is_the_ridge_solution():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(5, 3))
    want = np.linalg.solve(q.T @ q + 2.0 * np.eye(3), q.T @ np.ones(5))
    np.testing.assert_allclose(fold_in(q.astype(np.float32), 2.0), want, rtol=1e-5)
    assert fold_in(np.zeros((0, 3), np.float32), 2.0).tolist() == [0, 0, 0]
