"""The framework's ceiling on this machine: a trivial BentoML service, measured beside ours.

    bentoml serve benchmarks.trivial_service:Trivial

Two workers (as ours on 2 cores), one async route taking the body /recommend takes and returning
ten constant items, access logging off (as ours by default): everything BentoML, uvicorn and the
load generator cost per request, and nothing else.
"""

from __future__ import annotations

import bentoml
from pydantic import BaseModel, ConfigDict

ITEMS = [
    {"item_id": i, "title": f"item {i}", "score": 1.0 - i / 10, "probability": 0.5}
    for i in range(10)
]


class Request(BaseModel):
    model_config = ConfigDict(extra="allow")

    user_id: int = 1
    k: int = 10


@bentoml.service(workers=2, logging={"access": {"enabled": False}})
class Trivial:
    @bentoml.api
    async def recommend(self, request: Request, /) -> dict:
        return {"items": ITEMS, "user": "known", "variant": "constant"}
