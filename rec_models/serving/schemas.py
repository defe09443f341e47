"""Request field types (bounds in the types) and response models of the HTTP API.

Integers are strict: "k": "10" or "user_id": true are type errors, not silently coerced.
BentoML validates a request against these before the API method runs (and before any batching),
answering 400 with the failing field's `loc`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import numpy as np
from annotated_types import Ge, Le, MaxLen, MinLen
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, StringConstraints

from rec_models.serving.errors import BadRequestError
from rec_models.serving.runtime import (
    MAX_CANDIDATES,
    MAX_HISTORY,
    MAX_K,
    MAX_SCORE_ITEMS,
    MAX_TEXT_CHARS,
    MAX_TEXTS,
    Recommendation,
)
from rec_models.serving.web import json_response
from rec_models.text.profiles import Profile

SAMPLE_TEXTS = [
    "A fast-paced space adventure with rebels, droids and a galactic empire.",
    "A quiet romantic comedy set in a small bookshop in Paris.",
]


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be blank")
    return text


# Ids are int64 in the catalog: a larger integer is a 400 here, not an overflow further on.
INT64 = (Ge(-(2**63)), Le(2**63 - 1))
Id = Annotated[int, Strict(), *INT64]
UserId = Annotated[int, Strict(), *INT64, Field(description="a known user's id")]
K = Annotated[int, Strict(), Ge(1), Le(MAX_K), Field(description=f"number of results, 1-{MAX_K}")]
Age = Annotated[int, Strict(), Ge(0), Le(130)]
Gender = Annotated[
    str, StringConstraints(min_length=1, max_length=32), Field(description="e.g. F, M")
]
Occupation = Annotated[str, StringConstraints(min_length=1, max_length=64)]
History = Annotated[
    list[Id], MaxLen(MAX_HISTORY), Field(description="liked item ids, oldest first")
]
ProfileText = Annotated[
    str, StringConstraints(max_length=MAX_TEXT_CHARS), Field(description="free text")
]
Text = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS), AfterValidator(_not_blank)
]
Texts = Annotated[list[Text], MinLen(1), MaxLen(MAX_TEXTS)]
ItemIds = Annotated[list[Id], MinLen(1), MaxLen(MAX_SCORE_ITEMS)]
CandidateIds = Annotated[
    list[Id], MinLen(1), MaxLen(MAX_CANDIDATES), Field(description="rank only among these item ids")
]


def _example(example: dict[str, Any]) -> ConfigDict:
    # BentoML 1.4's OpenAPI model takes a schema-level "example" (not "examples"); /docs shows it.
    return ConfigDict(extra="forbid", json_schema_extra={"example": example})


class UserFields(BaseModel):
    """A known user (user_id) or a cold profile (any of age, gender, occupation, history, text)."""

    model_config = ConfigDict(extra="forbid")

    user_id: UserId | None = None
    age: Age | None = None
    gender: Gender | None = None
    occupation: Occupation | None = None
    history: History | None = None
    text: ProfileText | None = None

    def query(self) -> int | Profile:
        """The user id, or a cold Profile; never both (400 naming user_id)."""
        profile = Profile(
            self.age, self.gender, self.occupation, list(self.history or []), self.text
        )
        if self.user_id is not None:
            if not profile.is_empty():
                raise BadRequestError(
                    "user_id",
                    "give either user_id or profile fields (age, gender, occupation, history, text)",  # noqa: E501
                )
            return self.user_id
        return profile


class RecommendRequest(UserFields):
    model_config = _example({"user_id": 1, "k": 10, "exclude_seen": True})

    k: K = 10
    exclude_seen: Annotated[bool, Strict()] = True
    candidate_ids: CandidateIds | None = None


class ScoreRequest(UserFields):
    model_config = _example({"user_id": 1, "item_ids": [50, 172, 1]})

    item_ids: ItemIds


class SimilarItemsRequest(BaseModel):
    model_config = _example({"item_id": 50, "k": 10})

    item_id: Id | None = None
    text: Text | None = None
    k: K = 10

    def query(self) -> int | str:
        if (self.item_id is None) == (self.text is None):
            raise BadRequestError("item_id", "give exactly one of item_id or text")
        return self.item_id if self.item_id is not None else str(self.text)


class EmbedRequest(BaseModel):
    model_config = _example({"texts": SAMPLE_TEXTS})

    texts: Texts


class ScoredItem(BaseModel):
    item_id: int
    title: str
    score: float = Field(description="hybrid score: per-user z-scores of text and MF, blended")
    probability: float = Field(description="calibrated click probability sigmoid(a * score + b)")


class SimilarItem(BaseModel):
    item_id: int
    title: str
    score: float = Field(description="cosine similarity of the item text embeddings")


class RecommendResponse(BaseModel):
    items: list[ScoredItem]
    user: Literal["known", "cold"]
    variant: str = Field(description="the encoder variant (int8, fp16, ...)")
    request_id: str = Field(description="what POST /feedback names; every item is an impression")
    arm: str = Field(description='the A/B arm that served this user ("default" without [ab])')
    model_version: str = Field(description="the scorer version (model store) that ranked them")


class ItemProbability(BaseModel):
    item_id: int
    probability: float


class ScoreResponse(BaseModel):
    items: list[ItemProbability]
    variant: str


class EmbedResponse(BaseModel):
    embeddings: list[list[float]]
    dim: int
    variant: str


class SimilarItemsResponse(BaseModel):
    items: list[SimilarItem]
    variant: str


# -- responses: built from the core's results, one function per route --------------------------
# The models above document the answers (OpenAPI); the answers themselves are encoded straight
# from plain values (web.json_response), which costs a fraction of building and re-validating
# the models for every request.
def recommend_response(
    recs: Sequence[Recommendation],
    probs: np.ndarray,
    known: bool,
    variant: str,
    served: dict[str, str] | None = None,
) -> Any:
    """`served`: request_id, arm and model_version (the feedback loop's names for it)."""
    items = [
        {"item_id": r.item_id, "title": r.title, "score": r.score, "probability": float(p)}
        for r, p in zip(recs, probs, strict=True)
    ]
    payload = {"items": items, "user": "known" if known else "cold", "variant": variant}
    return json_response(payload | (served or {}))


def score_response(item_ids: Sequence[int], probs: np.ndarray, variant: str) -> Any:
    items = [
        {"item_id": int(i), "probability": float(p)} for i, p in zip(item_ids, probs, strict=True)
    ]
    return json_response({"items": items, "variant": variant})


def similar_items_response(recs: Sequence[Recommendation], variant: str) -> Any:
    items = [{"item_id": r.item_id, "title": r.title, "score": r.score} for r in recs]
    return json_response({"items": items, "variant": variant})


def embed_response(vectors: np.ndarray, variant: str) -> Any:
    payload = {"embeddings": vectors.tolist(), "dim": int(vectors.shape[1]), "variant": variant}
    return json_response(payload)
