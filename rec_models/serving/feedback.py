"""The feedback loop inside a worker: A/B arm per request, impressions, feedback, online stats.

    loop = FeedbackLoop.from_settings(settings, scorers, metrics=EventMetrics(bentoml.metrics))
    route = loop.route(query, core.runtime)       # the user's arm and the runtime it serves
    request_id = loop.log(route, recs, probs)     # queued for the event log, never blocks
    receipt = await loop.feedback(body)           # POST /feedback: durable when it returns
    stats = await loop.stats()                    # GET /stats

A user (a known user id, or a cold profile's fingerprint) lands in one arm of the `[ab]`
experiment by a salted hash (rec_models.abtest.config): the same arm on every request, worker
and restart. An arm may pin a scorer version (`model_version`); the others serve the current
version, the one `POST /admin/reload` swaps (serving/scorers.py). Without an `[ab]` table every
request is arm "default". With the event log off (ADREC_EVENT_LOG=0) responses still carry a
request_id, nothing is logged and /feedback answers 503.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rec_models.abtest.config import Experiment, load_ab
from rec_models.events import (
    EventSink,
    Impressions,
    SinkUnavailable,
    SQLiteSink,
    new_request_id,
    parse_feedback,
    profile_fingerprint,
    user_key,
)
from rec_models.serving.errors import NotReadyError
from rec_models.serving.runtime import Recommendation
from rec_models.serving.settings import ServingSettings

logger = logging.getLogger("bentoml.adrec")
DEFAULT_ARM = "default"
FEEDBACK_TIMEOUT_S = 5.0  # a commit slower than this answers 503 (a retry then gets 409)
METRICS_EVERY_S = 5.0  # how often the Prometheus gauges are refreshed from the log


@dataclass(frozen=True, slots=True)
class Route:
    """Who asked and what serves them: the arm, its runtime and that runtime's version."""

    arm: str
    runtime: Any
    model_version: str
    user_id: int | None
    fingerprint: str | None


def model_version(runtime: Any) -> str:
    """The store version string of a runtime's scorer ('2' of 'adrec-scorer:2')."""
    tag = str(runtime.source.get("tag", ""))
    return tag.partition(":")[2] or "unknown"


def load_experiment(settings: ServingSettings) -> Experiment | None:
    """The [ab] experiment of ADREC_AB_CONFIG (None when unset); errors name the variable."""
    if not settings.ab_config:
        return None
    try:
        experiment, _ = load_ab(settings.ab_config)
    except (OSError, ValueError) as exc:
        raise ValueError(f"ADREC_AB_CONFIG: {exc}") from None
    if experiment is None:
        raise ValueError(f"ADREC_AB_CONFIG: {settings.ab_config} has no [[ab.variants]]")
    return experiment


class FeedbackLoop:
    def __init__(
        self,
        sink: EventSink | None,
        experiment: Experiment | None,
        scorers: Any,
        encoder_variant: Any = lambda: "unknown",
        metrics: Any = None,
    ) -> None:
        self.sink = sink
        self.experiment = experiment
        self.scorers = scorers  # serving.scorers.ScorerVersions: pinned versions per arm
        self.encoder_variant = encoder_variant  # () -> the worker's encoder variant
        self.metrics = metrics  # events.prometheus.EventMetrics
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls, settings: ServingSettings, scorers: Any, encoder_variant: Any, metrics: Any = None
    ) -> FeedbackLoop:
        experiment = load_experiment(settings)
        sink = SQLiteSink(settings=settings.events) if settings.event_log else None
        return cls(sink, experiment, scorers, encoder_variant, metrics)

    # -- responses ----------------------------------------------------------------------------
    def route(self, query: Any, current: Any) -> Route:
        """The arm of `query` (a user id or a cold Profile) and the runtime serving that arm."""
        user_id = query if isinstance(query, int) else None
        fingerprint = None if user_id is not None else profile_fingerprint(query)
        if self.experiment is None:
            return Route(DEFAULT_ARM, current, model_version(current), user_id, fingerprint)
        arm = self.experiment.assign(user_key(user_id, fingerprint))
        runtime = current
        if arm.model_version:
            runtime = self.scorers.pinned(arm.model_version)
            if runtime is None:  # never serve a pinned arm from another version: not ready
                raise NotReadyError(f"arm {arm.name}: scorer version {arm.model_version} loading")
        return Route(arm.name, runtime, model_version(runtime), user_id, fingerprint)

    def log(
        self,
        route: Route,
        recs: Sequence[Recommendation],
        probs: np.ndarray,
        request_id: str | None = None,
    ) -> str:
        """The response's request_id (a fresh one when not given); its items queued as
        impressions (dropped and counted when the log is behind: the response never waits)."""
        request_id = request_id or new_request_id()
        if self.sink is None or not recs:
            return request_id
        ranked = [(r.item_id, r.score, float(p)) for r, p in zip(recs, probs, strict=True)]
        impressions = Impressions.ranked(
            request_id,
            ranked,
            model_version=route.model_version,
            variant=route.arm,
            encoder_variant=self.encoder_variant() or "unknown",
            timestamp=time.time(),
            user_id=route.user_id,
            profile_fingerprint=route.fingerprint,
        )
        self.sink.log_impressions(impressions)
        return request_id

    # -- feedback and stats -------------------------------------------------------------------
    def _sink(self) -> EventSink:
        if self.sink is None:
            raise SinkUnavailable("the event log is off (ADREC_EVENT_LOG=0): feedback not taken")
        return self.sink

    async def feedback(self, body: object) -> dict[str, Any]:
        """Parse and store one event or a list (EventError with the status on refusal)."""
        sink = self._sink()
        events = parse_feedback(body, sink.settings.max_feedback_events)  # type: ignore[attr-defined]
        receipt = await sink.record_feedback(events, timeout=FEEDBACK_TIMEOUT_S)
        return {"stored": receipt.stored}

    async def stats(self) -> dict[str, Any]:
        """GET /stats: the log's counts (every worker's) and this worker's own counters."""
        sink = self._sink()
        stats = await asyncio.to_thread(sink.stats)
        out = stats.to_dict()
        out["process"] = sink.counters().to_dict()
        if self.experiment is not None:
            out["experiment"] = {
                "name": self.experiment.name,
                "control": self.experiment.control,
                "shares": self.experiment.shares,
            }
        return out

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        if self.sink is not None and self.metrics is not None:
            self._task = asyncio.create_task(self._export_metrics())

    async def _export_metrics(self) -> None:
        sink = self.sink
        assert sink is not None
        while True:
            try:
                stats = await asyncio.to_thread(sink.stats)
                self.metrics.update(stats, sink.counters())
            except Exception:  # a metrics refresh must never take the worker down
                logger.warning("refreshing the event-log metrics failed", exc_info=True)
            await asyncio.sleep(METRICS_EVERY_S)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.sink is not None:
            await asyncio.to_thread(self.sink.close, 10.0)
