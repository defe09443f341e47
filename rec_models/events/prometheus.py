"""Prometheus metrics of the event log, for the service's /metrics.

Two kinds, because they live in different places:
- the log's counts (`EventStats`: per variant and model version, `window` = "1h" | "all_time"),
  read from the shared file, so every worker reads the same numbers: gauges in
  "mostrecent" multiprocess mode (the freshest read wins, nothing is summed twice);
- this process's own counters (`SinkCounters`: drops, shed and failed calls, writes), which
  only this worker knows: counters, summed over the workers by Prometheus' multiprocess mode;
  the queue depth and the writer's lag are gauges (summed / maximum over live workers).

In a BentoML service pass `bentoml.metrics` as `metrics` (its multiprocess-safe drop-in for
prometheus_client) and call `update(sink.stats(), sink.counters())` every few seconds from a
background task (in a thread: it reads the file). prometheus_client is imported only when
`metrics` is not given.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from rec_models.events.sink import SinkCounters
from rec_models.events.stats import Counts, EventStats

PREFIX = "adrec_events"
COUNT_FIELDS = ("impressions", "clicks", "conversions", "dropped")
PROCESS_COUNTERS = (
    "impressions_dropped", "impressions_written", "impressions_lost", "feedback_written",
    "feedback_rejected", "feedback_shed", "feedback_failed", "commits",
)  # fmt: skip


class EventMetrics:
    def __init__(self, metrics: ModuleType | None = None, registry: Any = None) -> None:
        if metrics is None:
            import prometheus_client as metrics
        where = {} if registry is None else {"registry": registry}
        labels = ("variant", "model_version", "window")
        self.counts = {
            name: metrics.Gauge(
                f"{PREFIX}_{name}", f"{name} in the event log", labels,
                multiprocess_mode="mostrecent", **where,
            )
            for name in COUNT_FIELDS
        }  # fmt: skip
        self.rates = {
            "ctr": metrics.Gauge(f"{PREFIX}_ctr", "clicks / impressions", labels,
                                 multiprocess_mode="mostrecent", **where),
            "cvr": metrics.Gauge(f"{PREFIX}_cvr", "conversions / clicks", labels,
                                 multiprocess_mode="mostrecent", **where),
        }  # fmt: skip
        self.process = {
            name: metrics.Counter(f"{PREFIX}_process_{name}", f"{name} by this process", **where)
            for name in PROCESS_COUNTERS
        }
        self.queue_rows = metrics.Gauge(f"{PREFIX}_queue_rows", "rows waiting for the writer",
                                        multiprocess_mode="livesum", **where)  # fmt: skip
        self.lag = metrics.Gauge(f"{PREFIX}_writer_lag_seconds", "how far the writer is behind",
                                 multiprocess_mode="livemax", **where)  # fmt: skip
        self._seen = SinkCounters()

    def update(self, stats: EventStats, counters: SinkCounters) -> None:
        for arm in stats.arms:
            for window, counts in (("all_time", arm.all_time), ("1h", arm.last_hour)):
                self._set(counts, arm.variant, arm.model_version, window)
        for name in PROCESS_COUNTERS:
            delta = getattr(counters, name) - getattr(self._seen, name)
            if delta > 0:
                self.process[name].inc(delta)
        self._seen = counters
        self.queue_rows.set(counters.queue_rows)
        self.lag.set(counters.lag_s)

    def _set(self, counts: Counts, variant: str, version: str, window: str) -> None:
        for name in COUNT_FIELDS:
            self.counts[name].labels(variant, version, window).set(getattr(counts, name))
        for name, value in (("ctr", counts.ctr), ("cvr", counts.cvr)):
            if value is not None:  # no impressions (clicks) yet: no rate, rather than 0
                self.rates[name].labels(variant, version, window).set(value)
