"""Open Inference Protocol (KServe v2) inference over the serving core, for gRPC and v2 REST alike.

The transports (grpc_server.py, rest.py) only turn wire tensors into `InputTensor`s and numpy
arrays back (codecs.py); everything else happens here, once: look the model up, check each
input against its spec (specs.py: the models, their tensors and metadata), then call the runtime
and the batched encoder of the serving core, the same code path as the native HTTP routes, on
the worker's event loop. Errors are `ServingError`s naming the tensor; each transport maps them
in one place.

A PROFILE element is the JSON object /recommend takes for a cold user ({"age": 28, "history":
[50], "text": "..."}). SCORES are the hybrid scores of /recommend (best first); PROBABILITY the
calibrated click probabilities of /score. A user with fewer than k unseen items gets rows padded
with ITEM_ID -1 and SCORE NaN. Each row is one response of /recommend: REQUEST_ID is what
feedback on its items names, ARM the A/B arm that served it (its impressions are logged).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np

from rec_models.events.model import new_request_id
from rec_models.serving.errors import (
    InvalidArgumentError,
    NotFoundError,
    ServingError,
    UnavailableError,
)
from rec_models.serving.oip.codecs import InputTensor
from rec_models.serving.oip.specs import DEFAULT_K, ModelSpec, model_specs
from rec_models.serving.runtime import check_text

FIELDS = {"user_id": "USER_ID", "item_ids": "ITEM_IDS", "k": "K", "texts": "TEXT"}

Embed = Callable[[list[str]], Awaitable[np.ndarray]]  # texts -> (N, d) float32, batched


class InferenceProtocol:
    """Model metadata, readiness and inference of the v2 models over one `RecommenderRuntime`
    and the core's batched encoder `embed`."""

    def __init__(
        self,
        runtime: Any,
        embed: Embed,
        encoder_version: str,
        scorer_version: str,
        max_message_bytes: int = 4 << 20,
        router: Any = None,
    ) -> None:
        self.runtime, self.embed = runtime, embed
        self.router = router  # serving.feedback.FeedbackLoop: A/B arm and impressions per row
        self._after: Callable[[], None] | None = None  # what a model leaves for after the answer
        dim = int(runtime.bundle.config["embedding_dim"])
        self.models = model_specs(dim, encoder_version, scorer_version)
        self.max_message_bytes = max_message_bytes
        self._run = {"encoder": self._encoder, "recommender": self._recommender,
                     "scorer": self._scorer}  # fmt: skip

    @property
    def ready(self) -> bool:
        return bool(self.runtime.ready)

    def model(self, name: str, version: str = "") -> ModelSpec:
        spec = self.models.get(name)
        if spec is None:
            raise NotFoundError(f"model '{name}' not found (models: {', '.join(self.models)})")
        if version and version != spec.version:
            raise NotFoundError(
                f"model '{name}' has no version '{version}' (versions: {spec.version})"
            )
        return spec

    async def infer(
        self, name: str, version: str, inputs: Sequence[InputTensor], outputs: Sequence[str] = ()
    ) -> tuple[ModelSpec, dict[str, np.ndarray]]:
        """Run `name` on `inputs`; returns the spec and the requested outputs (all when none)."""
        spec = self.model(name, version)
        known = [t.name for t in spec.outputs]
        for out in outputs:
            if out not in known:
                raise InvalidArgumentError(
                    f"output '{out}': model '{name}' has no such output ({', '.join(known)})"
                )
        if not self.ready:
            raise UnavailableError(f"model '{name}' is not ready: the models are still loading")
        arrays = spec.decode_inputs(inputs)
        try:
            result = await self._run[name](arrays)
        except ServingError as exc:
            raise _name_tensor(exc) from None
        after, self._after = self._after, None  # set by the model just run, no await since
        result = {k: v for k, v in result.items() if not outputs or k in outputs}
        size = sum(_wire_bytes(v) for v in result.values())
        if size > self.max_message_bytes:
            biggest = max(result, key=lambda k: _wire_bytes(result[k]))
            raise InvalidArgumentError(
                f"output '{biggest}': the response would be {size} bytes, over the "
                f"{self.max_message_bytes}-byte message limit; send fewer elements"
            )
        if after is not None:
            after()
        return spec, result

    # -- the models ---------------------------------------------------------------------------
    async def _encoder(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """TEXT -> EMBEDDING with the rules of the native /embed."""
        texts = [_utf8(raw, "TEXT", i) for i, raw in enumerate(inputs["TEXT"])]
        for i, text in enumerate(texts):
            check_text(("texts", i), text)
        embeddings = await self.embed(texts)
        return {"EMBEDDING": np.asarray(embeddings, dtype=np.float32)}

    async def _recommender(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if ("USER_ID" in inputs) == ("PROFILE" in inputs):
            raise InvalidArgumentError("input 'USER_ID': give exactly one of USER_ID or PROFILE")
        k = int(inputs["K"][0]) if "K" in inputs else DEFAULT_K
        if "USER_ID" in inputs:
            queries: list[Any] = inputs["USER_ID"].tolist()
            tensor, embeddings = "USER_ID", [None] * len(queries)
        else:
            queries = [_profile(raw, i) for i, raw in enumerate(inputs["PROFILE"])]
            tensor = "PROFILE"
            embeddings = await self._encode_queries(queries, tensor)
        results, served = [], []
        for row, (query, emb) in enumerate(zip(queries, embeddings, strict=True)):
            route = self.router.route(query, self.runtime) if self.router else None
            runtime = route.runtime if route else self.runtime
            try:  # the runtime checks k before anything is allocated
                results.append(runtime.recommend(query, k=k, embedding=emb))
            except ServingError as exc:
                raise _name_tensor(exc, tensor, row if len(queries) > 1 else None) from None
            served.append(route)
        request_ids = [new_request_id() for _ in queries]
        arms = [route.arm if route else "" for route in served]

        def log() -> None:  # once the response is sure to go out (infer's size check)
            for rid, route, recs in zip(request_ids, served, results, strict=True):
                if route is not None:
                    probs = route.runtime.calibrate(np.asarray([r.score for r in recs]))
                    self.router.log(route, recs, probs, rid)

        self._after = log
        ids = np.full((len(queries), k), -1, dtype=np.int64)  # (N, k), padded with -1 / NaN
        scores = np.full((len(queries), k), np.nan, dtype=np.float32)
        for row, recs in enumerate(results):
            ids[row, : len(recs)] = [r.item_id for r in recs]
            scores[row, : len(recs)] = [r.score for r in recs]
        return {
            "ITEM_IDS": ids,
            "SCORES": scores,
            "REQUEST_ID": np.asarray([r.encode() for r in request_ids], dtype=np.object_),
            "ARM": np.asarray([a.encode() for a in arms], dtype=np.object_),
        }

    async def _encode_queries(self, profiles: list[Any], tensor: str) -> list[Any]:
        """The (1, d) embedding of each cold profile's text, encoded in one batcher call."""
        texts = []
        for row, profile in enumerate(profiles):
            try:
                texts.append(self.runtime.query_text(profile))
            except ServingError as exc:
                raise _name_tensor(exc, tensor, row if len(profiles) > 1 else None) from None
        emb = await self.embed(texts)
        return [emb[i : i + 1] for i in range(len(texts))]

    async def _scorer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        user, items = int(inputs["USER_ID"][0]), inputs["ITEM_IDS"].tolist()
        return {"PROBABILITY": np.asarray(self.runtime.score(user, items), dtype=np.float32)}


def _wire_bytes(arr: np.ndarray) -> int:
    """A tensor's size on the wire (BYTES: each element's length prefix and bytes)."""
    if arr.dtype == np.object_:
        return sum(4 + len(v) for v in arr.reshape(-1))
    return int(arr.nbytes)


def _utf8(raw: bytes, tensor: str, i: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgumentError(f"input '{tensor}': element {i} is not UTF-8 text") from None


def _profile(raw: bytes, i: int) -> Any:
    """A PROFILE element (JSON, the fields /recommend takes for a cold user) as a Profile."""
    from pydantic import ValidationError

    from rec_models.serving.schemas import UserFields

    try:
        fields = UserFields.model_validate_json(_utf8(raw, "PROFILE", i))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "element"
        raise InvalidArgumentError(f"input 'PROFILE': element {i}: {loc}: {err['msg']}") from None
    if fields.user_id is not None:
        raise InvalidArgumentError(
            f"input 'PROFILE': element {i}: user_id: a known user goes in USER_ID"
        )
    return fields.query()


def _name_tensor(exc: ServingError, tensor: str = "", element: int | None = None) -> ServingError:
    """A runtime error re-worded to name the input tensor (and the element, when known); errors
    about no field (not ready, overloaded, the protocol's own) keep their status as they are."""
    loc, msg = exc.errors[0]
    if not loc:
        return exc
    if tensor == "PROFILE":  # the field lies inside the element's JSON object
        name, index = tensor, element
        msg = f"{_loc_str(loc)}: {msg}"
    else:
        name = FIELDS.get(str(loc[0]), str(loc[0]))
        index = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else element
    where = f"element {index}: " if index is not None else ""
    cls = NotFoundError if exc.status == 404 else InvalidArgumentError
    return cls(f"input '{name}': {where}{msg}")


def _loc_str(loc: tuple[Any, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
