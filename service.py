"""BentoML services: a batched sentence Encoder and the Recommender API in front of it.

    curl -s localhost:3000/recommend -H 'content-type: application/json' -d '{"user_id": 1, "k": 5}'

Start: `make serve` (python -m rec_models.serving.launch) or `bentoml serve service:Recommender`.
A thin shell over rec_models.serving: routing, validation (the request models), batching. Every
encoder call goes through `Encoder.embed`, whose adaptive batcher merges concurrent calls; the
Recommender reaches it through `bentoml.depends` (a direct call on self would not be batched).
Errors: 400 invalid request, 404 unknown id, 413 body too large, 503 not ready / overloaded; the
body is {"error": ..., "detail": [{"loc": [field, ...], "msg": ..., "type": ...}]}.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# One BLAS thread per request thread. OpenBLAS's own threads spin and oversubscribe the cores when
# concurrent requests each run a small matrix-vector product: measured 10x slower for one request
# and ~500x slower for 32 concurrent ones. The `bentoml serve` process imports this module before
# it starts the workers, which inherit the setting; export the variable to override it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import bentoml
import numpy as np

from rec_models.serving import v2_http
from rec_models.serving.errors import NotReadyError, ServingError
from rec_models.serving.schemas import (
    SAMPLE_TEXTS,
    BulkTexts,
    EmbedRequest,
    EmbedResponse,
    EncoderTexts,
    ItemProbability,
    RecommendRequest,
    RecommendResponse,
    ScoredItem,
    ScoreRequest,
    ScoreResponse,
    SimilarItem,
    SimilarItemsRequest,
    SimilarItemsResponse,
)
from rec_models.serving.web import BodySizeLimit, error_response

logger = logging.getLogger("bentoml.adrec")

# Adaptive batching of the encoder. In BentoML 1.4, max_latency_ms is the deadline past which the
# dispatcher refuses queued requests with 503; it adds no fixed wait. On a busy 2-core CPU a burst
# of 32 cold profiles takes 1-2 s: with 50 or 500 ms, ~80% of such a burst was refused, with 2000
# none (lone requests right after a burst then wait a few hundred ms for some seconds, as the
# dispatcher's window follows the recent waits). Both can be set per deployment.
BATCH_MAX_SIZE = int(os.environ.get("ADREC_BATCH_MAX_SIZE", "64"))
BATCH_MAX_LATENCY_MS = int(os.environ.get("ADREC_BATCH_MAX_LATENCY_MS", "2000"))
REQUEST_THREADS = 64  # runtime calls in flight; cold profiles wait in them for an encoder batch


@bentoml.service(workers=1, traffic={"timeout": 60})
class Encoder:
    def __init__(self) -> None:
        from rec_models.serving.loading import load_encoder

        self.model, self.choice, self.source = load_encoder()
        self.model.encode(SAMPLE_TEXTS)  # warm-up: the first run allocates ONNX Runtime buffers
        logger.info(
            "encoder %s on %s (%s)", self.model.variant, self.model.provider, self.choice.reason
        )

    @bentoml.api(batchable=True, max_batch_size=BATCH_MAX_SIZE, max_latency_ms=BATCH_MAX_LATENCY_MS)
    def embed(self, texts: EncoderTexts = SAMPLE_TEXTS) -> np.ndarray:
        """(N,) texts -> (N, d) float32 L2-normalised embeddings; concurrent calls are batched."""
        return self.model.encode(texts)

    @bentoml.api
    def embed_bulk(self, texts: BulkTexts) -> np.ndarray:
        """Start-up bulk encoding (the known users' profiles), outside the latency batcher."""
        return self.model.encode(texts)

    @bentoml.api
    def info(self) -> dict[str, Any]:
        return {
            "variant": self.model.variant,
            "provider": self.model.provider,
            "providers": list(self.choice.provider_list),
            "reason": self.choice.reason,
            "dim": self.model.dim,
            "max_length": self.model.max_length,
            **self.source,
        }


@bentoml.service(workers=1, traffic={"timeout": 60})
class Recommender:
    encoder = bentoml.depends(Encoder)

    def __init__(self) -> None:
        from rec_models.serving.encoder_client import EncoderClient

        self.client = EncoderClient(self.encoder, max_texts=BATCH_MAX_SIZE)
        self.runtime: Any = None
        self.encoder_info: dict[str, Any] = {}
        self.load_error: str | None = None
        self._pool = ThreadPoolExecutor(REQUEST_THREADS, thread_name_prefix="adrec")
        self._tasks: set[asyncio.Task[None]] = set()

    @bentoml.on_startup
    async def start_loading(self) -> None:
        """Load in the background: /livez answers at once, /readyz once everything is warm."""
        task = asyncio.create_task(self._load())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _load(self) -> None:
        from rec_models.serving.loading import load_runtime

        loop = asyncio.get_running_loop()
        try:
            await self._wait_for_encoder()
            self.encoder_info = await self.client.info()
            encode = self.client.blocking(loop)
            load = functools.partial(load_runtime, encode, self.encoder_info["tag"])
            runtime = await loop.run_in_executor(self._pool, load)
            texts = runtime.profile_texts()
            profile_emb = await self.client.embed_bulk(texts)
            await self.client.warm_up_batcher(texts or SAMPLE_TEXTS)
            await loop.run_in_executor(self._pool, runtime.prepare, profile_emb)
            self.runtime = runtime
            info = runtime.info()
            logger.info(
                "ready: encoder %s on %s, %d items (%s index), %d users",
                self.encoder_info["variant"],
                self.encoder_info["provider"],
                info["catalog"]["items"],
                info["index"]["kind"],
                info["catalog"]["users"],
            )
        except Exception as exc:  # readiness stays false; /info and every API say why
            logger.exception("loading the recommender failed")
            self.load_error = f"{type(exc).__name__}: {exc}"

    async def _wait_for_encoder(self) -> None:
        """Until the Encoder answers /readyz (while it loads, the probe may also time out)."""
        while True:
            try:
                if await self.encoder.is_ready(5):
                    return
            except Exception as exc:  # a probe that fails means "not yet"
                logger.debug("Encoder not ready yet: %r", exc)
            await asyncio.sleep(0.5)

    def __is_ready__(self) -> bool:
        return self.runtime is not None

    def _ready(self) -> Any:
        if self.runtime is None:
            raise (
                NotReadyError(f"loading failed: {self.load_error}")
                if self.load_error
                else NotReadyError()
            )
        return self.runtime

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, functools.partial(fn, *args)
        )

    @property
    def variant(self) -> str:
        return str(self.encoder_info.get("variant", ""))

    @bentoml.api
    async def recommend(self, request: RecommendRequest, /) -> RecommendResponse:
        """Top-k items for a known user {"user_id": 1} or a cold profile {"age": 28, "gender": "F",
        "occupation": "engineer", "history": [50, 181], "text": "..."} (any subset). exclude_seen
        drops the user's history; candidate_ids ranks only those items."""
        try:
            query = request.query()
            runtime = self._ready()
            args = (query, request.k, request.exclude_seen, request.candidate_ids)
            recs = await self._in_thread(runtime.recommend, *args)
        except ServingError as exc:
            return error_response(exc)
        probs = runtime.calibrate([r.score for r in recs])
        items = [
            ScoredItem(item_id=r.item_id, title=r.title, score=r.score, probability=float(p))
            for r, p in zip(recs, probs, strict=True)
        ]
        user = "known" if isinstance(query, int) else "cold"
        return RecommendResponse(items=items, user=user, variant=self.variant)

    @bentoml.api
    async def score(self, request: ScoreRequest, /) -> ScoreResponse:
        """Calibrated click probabilities of item_ids (up to 1000) for a user, in input order."""
        try:
            query = request.query()
            probs = await self._in_thread(self._ready().score, query, request.item_ids)
        except ServingError as exc:
            return error_response(exc)
        items = [
            ItemProbability(item_id=i, probability=float(p))
            for i, p in zip(request.item_ids, probs, strict=True)
        ]
        return ScoreResponse(items=items, variant=self.variant)

    @bentoml.api
    async def similar_items(self, request: SimilarItemsRequest, /) -> SimilarItemsResponse:
        """Items closest (text-embedding cosine) to an item {"item_id": 50} or a {"text": ...}."""
        try:
            query = request.query()
            recs = await self._in_thread(self._ready().similar_items, query, request.k)
        except ServingError as exc:
            return error_response(exc)
        items = [SimilarItem(item_id=r.item_id, title=r.title, score=r.score) for r in recs]
        return SimilarItemsResponse(items=items, variant=self.variant)

    @bentoml.api
    async def embed(self, request: EmbedRequest, /) -> EmbedResponse:
        """Sentence embeddings (L2-normalised) of up to 256 texts, through the batched Encoder."""
        try:
            self._ready()
            vectors = await self.client.embed(request.texts)
        except ServingError as exc:
            return error_response(exc)
        return EmbedResponse(
            embeddings=vectors.tolist(), dim=int(vectors.shape[1]), variant=self.variant
        )

    def info(self) -> dict[str, Any]:
        """What GET /info returns: provider, variant, versions, catalog, index, batching."""
        from rec_models.serving.loading import versions
        from rec_models.serving.web import max_body_bytes

        return {
            "ready": self.runtime is not None,
            "error": self.load_error,
            "provider": self.encoder_info.get("provider"),
            "variant": self.encoder_info.get("variant"),
            "encoder": self.encoder_info,
            "batching": {"max_batch_size": BATCH_MAX_SIZE, "max_latency_ms": BATCH_MAX_LATENCY_MS},
            "max_body_bytes": max_body_bytes(),
            "versions": versions(),
            **(self.runtime.info() if self.runtime is not None else {}),
        }


async def _get_info(request: Any) -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse(bentoml.get_current_service().info())


def _mount_info() -> None:
    from starlette.applications import Starlette
    from starlette.routing import Route

    Recommender.mount_asgi_app(Starlette(routes=[Route("/info", _get_info, methods=["GET"])]))


_mount_info()
# Open Inference Protocol (KServe v2) REST routes, /v2/...: the app carries the /v2 prefix itself
# (mounted at "/", so GET /v2 answers too); they enforce their own message limit (400, naming
# the tensor), so the body-size middleware leaves them alone.
Recommender.mount_asgi_app(v2_http.app, path="/")
Recommender.add_asgi_middleware(BodySizeLimit, exempt=(v2_http.PREFIX + "/",))
