"""The BentoML service: native HTTP routes, the v2 REST routes and the OIP gRPC server, all in
each worker process over one serving core.

    curl -s localhost:3000/recommend -H 'content-type: application/json' -d '{"user_id": 1, "k": 5}'

Start: `make serve` (= `bentoml serve service:Recommender`; HTTP on $PORT, gRPC on
$ADREC_GRPC_PORT, default 8001) or `bentoml serve adrec:<tag>` for the built Bento. A thin shell
over rec_models.serving.core: each worker builds one ServingCore (encoder + micro-batcher +
runtime + index), and every route, v2 and gRPC included, is one call into it plus one error
mapping. Errors: 400 invalid request, 404 unknown id, 413 body too large, 503 + Retry-After not
ready / encoder queue full; the body is {"error": ..., "detail": [{"loc": [...], "msg": ...,
"type": ...}]}. Settings: ADREC_* variables, read once (rec_models/serving/settings.py).
The feedback loop (rec_models/serving/feedback.py, scorers.py): every /recommend answer names
its request_id, A/B arm and scorer version and its items are logged as impressions; POST
/feedback, GET /stats and POST /admin/reload (hot swap) are mounted beside /info.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from typing import Any

# One BLAS thread per process. OpenBLAS's own threads spin and oversubscribe the cores when
# concurrent requests each run a small matrix-vector product: measured 10x slower for one request
# and ~500x slower for 32 concurrent ones. `bentoml serve` imports this module before it starts
# the workers, which inherit the setting; export the variable to override it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import bentoml

from rec_models.serving import admission, front
from rec_models.serving.auth import grpc_interceptors, http_layers
from rec_models.serving.body import BodyReader
from rec_models.serving.client_errors import ClientErrorMiddleware, quiet_client_errors
from rec_models.serving.errors import ServingError
from rec_models.serving.openapi import OpenAPIMiddleware, complete_spec
from rec_models.serving.schemas import (
    EmbedRequest,
    EmbedResponse,
    RecommendRequest,
    RecommendResponse,
    ScoreRequest,
    ScoreResponse,
    SimilarItemsRequest,
    SimilarItemsResponse,
    embed_response,
    recommend_response,
    score_response,
    similar_items_response,
)
from rec_models.serving.settings import ServingSettings
from rec_models.serving.web import error_response

SETTINGS = ServingSettings.from_env(os.environ)
# One per worker process, shared by its HTTP routes and its gRPC server.
ADMISSION = admission.Admission(
    SETTINGS.max_concurrent_requests, SETTINGS.max_queued_requests,
    (SETTINGS.max_queue_wait_ms / 1000) or None, SETTINGS.queue_grace_ms / 1000,
)  # fmt: skip


@bentoml.service(
    workers=SETTINGS.worker_count,
    # Loopback unless told otherwise (--host / BENTOML_HOST; BentoML's own default is every
    # interface); the gRPC server's is ADREC_GRPC_HOST, also 127.0.0.1. CORS: BentoML's
    # default, off unless configured (tests/reliability/test_bind_defaults.py).
    http={"host": "127.0.0.1"},
    traffic={"timeout": 60},
    logging={"access": {"enabled": SETTINGS.access_log}},
)
class Recommender:
    def __init__(self) -> None:
        from rec_models.events.prometheus import EventMetrics
        from rec_models.serving.core import ServingCore
        from rec_models.serving.feedback import FeedbackLoop, load_experiment
        from rec_models.serving.metrics import EncoderMetrics
        from rec_models.serving.scorers import ScorerVersions

        self.core = ServingCore(SETTINGS, EncoderMetrics(bentoml.metrics))
        # The feedback loop: A/B arms, impressions, /feedback, /stats; scorer versions (reload).
        poll_s = SETTINGS.reload_poll_ms / 1000
        experiment = load_experiment(SETTINGS)
        self.scorers = ScorerVersions(self.core, experiment, SETTINGS.events.file.parent, poll_s)
        self.loop = FeedbackLoop.from_settings(
            SETTINGS, self.scorers, lambda: self.core.variant, EventMetrics(bentoml.metrics)
        )
        self.core.router = self.loop
        self.grpc: Any = None
        self._tasks: set[asyncio.Task[None]] = set()

    @bentoml.on_startup
    async def start(self) -> None:
        """Load in the background (/livez answers at once, /readyz once warm) and open gRPC on
        this worker's event loop; its port is shared with the other workers (SO_REUSEPORT)."""
        tag = await asyncio.to_thread(self.scorers.startup_tag)  # the version last reloaded to
        if tag:
            self.core.settings = replace(self.core.settings, scorer_tag=tag)
        for job in (self._load(), self.scorers.watch()):
            task = asyncio.create_task(job)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.loop.start()
        if SETTINGS.grpc_port:
            from rec_models.serving.oip import grpc_server

            admitted = admission.grpc_interceptor(ADMISSION, grpc_server.ADMITTED_METHODS)
            self.grpc = await grpc_server.start(
                self.core, SETTINGS.grpc_host, SETTINGS.grpc_port, SETTINGS.max_message_bytes,
                interceptors=[*grpc_interceptors(SETTINGS), admitted],
            )  # fmt: skip

    async def _load(self) -> None:
        await self.core.load()
        if self.core.ready:
            await self.scorers.load_pins()

    @bentoml.on_shutdown
    async def stop(self) -> None:
        if self.grpc is not None:
            await self.grpc.stop(grace=2.0)
        for task in list(self._tasks):
            task.cancel()
        await self.core.close()
        await self.loop.close()  # writes every impression accepted

    def __is_ready__(self) -> bool:
        return self.core.ready and self.scorers.pins_ready

    @bentoml.api
    async def recommend(self, request: RecommendRequest, /) -> RecommendResponse:
        """Top-k items for a known user {"user_id": 1} or a cold profile {"age": 28, "gender": "F",
        "occupation": "engineer", "history": [50, 181], "text": "..."} (any subset). exclude_seen
        drops the user's history; candidate_ids ranks only those items."""
        try:
            query = request.query()
            route = self.loop.route(query, self.core.runtime) if self.core.ready else None
            runtime = route.runtime if route else None
            args = (request.k, request.exclude_seen, request.candidate_ids)
            recs = await self.core.recommend(query, *args, runtime=runtime)
            probs = self.core.calibrate([r.score for r in recs], runtime=runtime)
        except ServingError as exc:
            return error_response(exc)
        assert route is not None  # recommend() raised NotReadyError otherwise
        served = {
            "request_id": self.loop.log(route, recs, probs),
            "arm": route.arm,
            "model_version": route.model_version,
        }
        return recommend_response(recs, probs, isinstance(query, int), self.core.variant, served)

    @bentoml.api
    async def score(self, request: ScoreRequest, /) -> ScoreResponse:
        """Calibrated click probabilities of item_ids (up to 1000) for a user, in input order."""
        try:
            probs = await self.core.score(request.query(), request.item_ids)
        except ServingError as exc:
            return error_response(exc)
        return score_response(request.item_ids, probs, self.core.variant)

    @bentoml.api
    async def similar_items(self, request: SimilarItemsRequest, /) -> SimilarItemsResponse:
        """Items closest (text-embedding cosine) to an item {"item_id": 50} or a {"text": ...}."""
        try:
            recs = await self.core.similar_items(request.query(), request.k)
        except ServingError as exc:
            return error_response(exc)
        return similar_items_response(recs, self.core.variant)

    @bentoml.api
    async def embed(self, request: EmbedRequest, /) -> EmbedResponse:
        """Sentence embeddings (L2-normalised) of up to 256 texts, batched with every other
        encoder call of this worker."""
        try:
            vectors = await self.core.embed(request.texts)
        except ServingError as exc:
            return error_response(exc)
        return embed_response(vectors, self.core.variant)


def _core() -> Any:
    return bentoml.get_current_service().core


def _mount_apps() -> None:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from rec_models.serving import feedback_routes
    from rec_models.serving.oip.rest import PREFIX, create_app

    async def info(request: Any) -> Any:
        service = bentoml.get_current_service()
        out = service.core.info() | {"max_body_bytes": SETTINGS.max_body_bytes}
        out["worker_pid"] = os.getpid()  # which worker answered (restarts, balance)
        out["admission"] = ADMISSION.info()
        out["scorer"] = service.scorers.info()
        if service.scorers.error and not service.scorers.pins_ready:
            out["error"] = out["error"] or service.scorers.error
        return JSONResponse(out)

    Recommender.mount_asgi_app(Starlette(routes=[Route("/info", info, methods=["GET"])]))
    Recommender.mount_asgi_app(
        feedback_routes.create_app(bentoml.get_current_service, SETTINGS.api_key)
    )
    # Open Inference Protocol (KServe v2) REST routes, /v2/...: the app carries the /v2 prefix
    # itself (mounted at "/", so GET /v2 answers too); they enforce their own message limit
    # (400, naming the tensor), so the body-size middleware leaves them alone.
    Recommender.mount_asgi_app(create_app(lambda: _core().protocol), path="/")
    # BentoML's layers reshaped: the docs, its validation errors (rec_models/serving/*.py).
    Recommender.add_asgi_middleware(OpenAPIMiddleware, build=_openapi)
    Recommender.add_asgi_middleware(ClientErrorMiddleware, exempt=(PREFIX + "/",))
    quiet_client_errors()
    # The front door, outermost first and outside all of BentoML's layers (front.py: a refusal
    # costs the event loop next to nothing). The key is checked before any body is read (401
    # unread); the body is read in full (size limit, deadline) before admission, so a
    # slow-loris holds no slot.
    body = {
        "max_bytes": SETTINGS.max_body_bytes, "timeout_s": SETTINGS.body_timeout_ms / 1000,
        "exempt": (PREFIX + "/",),
        "exempt_ceiling": 2 * SETTINGS.max_message_bytes,  # the v2 routes' own hard stop
    }  # fmt: skip
    front.install(Recommender, [
        *http_layers(SETTINGS), (BodyReader, body),
        (admission.AdmissionMiddleware, {"admission": ADMISSION}),
    ])  # fmt: skip


def _openapi() -> dict[str, Any]:
    spec = Recommender.openapi_spec.asdict()
    return complete_spec(spec, bool(SETTINGS.api_key), SETTINGS.max_body_bytes)


_mount_apps()
