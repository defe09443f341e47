"""The serving core: everything a request needs, built once per worker process.

    core = ServingCore(settings, metrics=EncoderMetrics(bentoml.metrics))
    await core.load()                  # off the event loop; core.ready once warmed up
    recs = await core.recommend(1, k=10)

One tokenizer + encoder ONNX Runtime session, one scorer runtime (towers + top-k index), and one
async micro-batcher in front of the encoder. Every transport (the native HTTP routes, the v2
REST routes, the in-worker gRPC server) calls these methods and nothing else, so one input gets
one answer whatever the transport. The methods run on the worker's event loop: known-user work
(a matrix-vector product and a top-k over the catalog, tens of microseconds) runs inline, as a
thread-pool hop would cost more than the work; every encoder call (cold profiles, texts) awaits
the batcher, whose one thread runs ONNX Runtime with the GIL released. Validation lives in the
runtime; errors are `ServingError`s that each transport maps in one place.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from rec_models.serving.batcher import BatchMetrics, MicroBatcher
from rec_models.serving.errors import NotReadyError
from rec_models.serving.runtime import (
    Query,
    Recommendation,
    RecommenderRuntime,
    check_text,
    check_texts,
)
from rec_models.serving.settings import ServingSettings

logger = logging.getLogger("bentoml.adrec")

WARM_UP_TEXTS = [
    "A fast-paced space adventure with rebels, droids and a galactic empire.",
    "A quiet romantic comedy set in a small bookshop in Paris.",
]


def encode_each(encode: Any, texts: list[str]) -> np.ndarray | None:
    """(N, d) embeddings of `texts`, each encoded alone. Dynamic int8 scales activations per
    batch, so a text's embedding depends on its batch-mates; alone, the known users' profile
    embeddings (so their vectors and scores) are the same in every worker and every start."""
    return np.concatenate([encode([t]) for t in texts]) if texts else None


class ServingCore:
    def __init__(self, settings: ServingSettings, metrics: BatchMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.encoder: Any = None
        self.runtime: RecommenderRuntime | None = None
        self.batcher: MicroBatcher[str] | None = None
        self.protocol: Any = None  # the Open Inference Protocol models, once loaded
        self.choice: Any = None
        self.encoder_source: dict[str, Any] = {}
        self.versions: tuple[str, str] = ("", "")
        self.load_error: str | None = None
        self.load_s: float | None = None
        # Picks each request's runtime (A/B arm) and logs its impressions (serving/feedback.py);
        # None: every request gets `runtime` and nothing is logged.
        self.router: Any = None
        self._profiles: dict[str, np.ndarray] = {}  # profile text -> (1, d), see build_runtime

    # -- start-up -----------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.protocol is not None

    async def load(self) -> None:
        """Load, verify and warm up everything (in a thread: the loop keeps answering probes).
        A failure is kept in `load_error` (GET /info, every API's 503) and logged."""
        t0 = time.monotonic()
        try:
            await asyncio.to_thread(self._load_models)
            self._start_batcher()
            await self.encode(WARM_UP_TEXTS[:1])  # the batcher's thread, warm
        except Exception as exc:
            logger.exception("loading the serving core failed")
            self.load_error = f"{type(exc).__name__}: {exc}"
            return
        from rec_models.serving.oip.protocol import InferenceProtocol

        self.protocol = InferenceProtocol(
            self.runtime, self.encode, *self.versions, self.settings.max_message_bytes,
            router=self.router,
        )  # fmt: skip
        self.load_s = round(time.monotonic() - t0, 1)
        info = self.runtime.info() if self.runtime else {}
        logger.info(
            "ready in %.1f s: encoder %s on %s (%d threads), %d items (%s index), %d users",
            self.load_s,
            self.encoder.variant,
            self.encoder.provider,
            self.settings.intra_op_threads,
            info["catalog"]["items"],
            info["index"]["kind"],
            info["catalog"]["users"],
        )

    def _load_models(self) -> None:
        from rec_models.serving import loading

        self.encoder, self.choice, self.encoder_source = loading.load_encoder(self.settings)
        runtime = self.build_runtime(self.settings.scorer_tag)
        self.versions = loading.model_versions(
            self.encoder.variant, self.encoder_source["tag"], runtime
        )
        self.runtime = runtime

    def build_runtime(self, scorer_tag: str) -> RecommenderRuntime:
        """A prepared runtime over store scorer `scorer_tag` (blocking: call it in a thread)."""
        from rec_models.serving import loading

        settings = replace(self.settings, scorer_tag=scorer_tag)
        runtime = loading.load_runtime(self.encoder.encode, self.encoder_source["tag"], settings)
        runtime.prepare(self._profile_embeddings(runtime.profile_texts()))
        return runtime

    def _profile_embeddings(self, texts: list[str]) -> np.ndarray | None:
        """encode_each(texts), remembering each text's embedding: a new scorer version over the
        same users (a retrain) reuses them, so a reload costs seconds, not a re-encoding."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._profiles]
        encoded = encode_each(self.encoder.encode, missing)
        for i, text in enumerate(missing):
            self._profiles[text] = encoded[i : i + 1]  # type: ignore[index]
        return np.concatenate([self._profiles[t] for t in texts]) if texts else None

    def swap_runtime(self, runtime: RecommenderRuntime) -> None:
        """Serve `runtime` from now on. No await in here: on the event loop, every request sees
        the old runtime or the new one, never a mix (one in flight finishes on the one it began)."""
        from rec_models.serving.loading import model_versions
        from rec_models.serving.oip.protocol import InferenceProtocol

        versions = model_versions(self.encoder.variant, self.encoder_source["tag"], runtime)
        protocol = InferenceProtocol(
            runtime, self.encode, *versions, self.settings.max_message_bytes, router=self.router
        )
        self.runtime, self.versions, self.protocol = runtime, versions, protocol

    def _start_batcher(self) -> None:
        s = self.settings
        self.batcher = MicroBatcher(
            self.encoder.encode,
            max_batch_size=s.batch_max_size,
            max_latency_ms=s.batch_max_latency_ms,
            max_queue=s.batch_max_queue,
            metrics=self.metrics,
        )

    async def close(self) -> None:
        if self.batcher is not None:
            await self.batcher.close()

    def _runtime(self) -> RecommenderRuntime:
        if self.protocol is None or self.runtime is None:
            if self.load_error:
                raise NotReadyError(f"loading failed: {self.load_error}")
            raise NotReadyError()
        return self.runtime

    # -- requests -----------------------------------------------------------------------------
    async def encode(self, texts: list[str]) -> np.ndarray:
        """(N, d) embeddings of `texts` through the micro-batcher (no validation: callers)."""
        if self.batcher is None:
            raise NotReadyError()
        return await self.batcher.submit(texts)

    async def _embedding(self, runtime: RecommenderRuntime, query: Query) -> np.ndarray | None:
        text = runtime.query_text(query)  # None for a known user; checks a profile first
        return None if text is None else await self.encode([text])

    async def recommend(
        self,
        query: Query,
        k: int = 10,
        exclude_seen: bool = True,
        candidate_ids: Sequence[int] | None = None,
        runtime: RecommenderRuntime | None = None,
    ) -> list[Recommendation]:
        """`runtime`: the one to rank with (an A/B arm's version); default the current one."""
        current = self._runtime()
        runtime = runtime or current
        embedding = await self._embedding(runtime, query)
        return runtime.recommend(query, k, exclude_seen, candidate_ids, embedding=embedding)

    async def score(self, query: Query, item_ids: Sequence[int]) -> np.ndarray:
        runtime = self._runtime()
        embedding = await self._embedding(runtime, query)
        return runtime.score(query, item_ids, embedding=embedding)

    async def similar_items(self, query: int | str, k: int = 10) -> list[Recommendation]:
        runtime = self._runtime()
        embedding = None
        if isinstance(query, str):
            check_text("text", query)
            embedding = await self.encode([query])
        return runtime.similar_items(query, k, embedding=embedding)

    async def embed(self, texts: list[str]) -> np.ndarray:
        self._runtime()
        check_texts(texts)
        return await self.encode(texts)

    def calibrate(
        self, scores: Sequence[float], runtime: RecommenderRuntime | None = None
    ) -> np.ndarray:
        return (runtime or self._runtime()).calibrate(np.asarray(scores))

    @property
    def variant(self) -> str:
        return str(getattr(self.encoder, "variant", ""))

    def info(self) -> dict[str, Any]:
        """What GET /info returns: readiness, encoder, batching, settings, catalog, index."""
        from rec_models.serving.loading import versions

        encoder: dict[str, Any] = {}
        if self.encoder is not None:
            encoder = {
                "variant": self.encoder.variant,
                "provider": self.encoder.provider,
                "providers": list(self.choice.provider_list),
                "reason": self.choice.reason,
                "dim": self.encoder.dim,
                "max_length": self.encoder.max_length,
                **self.encoder_source,
            }
        s = self.settings
        batching: dict[str, Any] = {
            "max_batch_size": s.batch_max_size,
            "max_queue": s.batch_max_queue,
            "max_latency_ms": s.batch_max_latency_ms,
        }
        if self.batcher is not None:
            stats = self.batcher.stats()
            batching |= {"batches": stats.batches, "texts": stats.items, "refused": stats.refused}
        return {
            "ready": self.ready,
            "error": self.load_error,
            "load_s": self.load_s,
            "provider": encoder.get("provider"),
            "variant": encoder.get("variant"),
            "encoder": encoder,
            "batching": batching,
            "settings": s.public(),
            "versions": versions(),
            **(self.runtime.info() if self.runtime is not None else {}),
        }
