"""Prometheus metrics of the encoder's micro-batcher, on the service's /metrics.

    adrec_encoder_batch_size              histogram: texts per encoder run
    adrec_encoder_batch_seconds           histogram: time of one encoder run
    adrec_encoder_queue_wait_seconds      histogram: time a request waited for its batch
    adrec_encoder_queue_depth             gauge: texts waiting (summed over live workers)

In the BentoML service pass `bentoml.metrics` (its multiprocess-safe drop-in for
prometheus_client, so every worker's samples add up on one /metrics); prometheus_client is
imported only when `metrics` is not given (tests, scripts).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

PREFIX = "adrec_encoder"
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class EncoderMetrics:
    """The batcher's `BatchMetrics`: batch sizes, run times, queue waits and depth."""

    def __init__(self, metrics: ModuleType | None = None, registry: Any = None) -> None:
        if metrics is None:
            import prometheus_client as metrics
        where = {} if registry is None else {"registry": registry}
        self.sizes = metrics.Histogram(
            f"{PREFIX}_batch_size", "texts per encoder run", buckets=BATCH_BUCKETS, **where
        )
        self.seconds = metrics.Histogram(
            f"{PREFIX}_batch_seconds", "time of one encoder run", buckets=SECONDS_BUCKETS, **where
        )
        self.wait = metrics.Histogram(
            f"{PREFIX}_queue_wait_seconds",
            "time a request waited in the encoder queue for its batch",
            buckets=SECONDS_BUCKETS,
            **where,
        )
        self.queue = metrics.Gauge(
            f"{PREFIX}_queue_depth", "texts waiting for the encoder",
            multiprocess_mode="livesum", **where,
        )  # fmt: skip

    def batch(self, size: int, seconds: float) -> None:
        self.sizes.observe(size)
        self.seconds.observe(seconds)

    def waited(self, seconds: float) -> None:
        self.wait.observe(seconds)

    def depth(self, items: int) -> None:
        self.queue.set(items)
