"""EventMetrics: the log's counts as gauges, this process's counters as counters."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rec_models.events import Feedback, SQLiteSink
from rec_models.events.prometheus import EventMetrics

from .support import CLICK, NOW, impressions, write_lock

prometheus_client = pytest.importorskip("prometheus_client")  # installed with bentoml

Make = Callable[..., SQLiteSink]


def _value(registry: object, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)  # type: ignore[attr-defined]


def test_counts_and_process_counters_are_exported(make_sink: Make, log_path: Path) -> None:
    registry = prometheus_client.CollectorRegistry()
    metrics = EventMetrics(registry=registry)
    sink = make_sink(clock=lambda: NOW, max_queue_rows=3, impression_linger_s=60.0)
    sink.log_impressions(impressions("a1", ts=NOW - 60))
    sink.submit_feedback(Feedback("a1", 10, CLICK, NOW - 30)).result(20)
    sink.log_impressions(impressions("b1", variant="B", model_version="2", ts=NOW - 7200))
    sink.flush(20)
    metrics.update(sink.stats(), sink.counters())
    a_hour = {"variant": "A", "model_version": "1", "window": "1h"}
    assert _value(registry, "adrec_events_impressions", **a_hour) == 3
    assert _value(registry, "adrec_events_clicks", **a_hour) == 1
    assert _value(registry, "adrec_events_ctr", **a_hour) == pytest.approx(1 / 3)
    assert _value(registry, "adrec_events_cvr", **a_hour) == 0.0
    b_hour = {"variant": "B", "model_version": "2", "window": "1h"}
    assert _value(registry, "adrec_events_impressions", **b_hour) == 0
    assert _value(registry, "adrec_events_ctr", **b_hour) is None  # no impressions: no rate
    b_all = b_hour | {"window": "all_time"}
    assert _value(registry, "adrec_events_impressions", **b_all) == 3
    assert _value(registry, "adrec_events_process_impressions_written_total") == 6
    assert _value(registry, "adrec_events_process_feedback_written_total") == 1
    # a drop (the queue holds 3 rows): counted by the process at once, by the log on commit
    with write_lock(log_path):
        assert sink.log_impressions(impressions("x0", ts=NOW - 10))
        assert not sink.log_impressions(impressions("x1", ts=NOW - 10))
        metrics.update(sink.stats(), sink.counters())
        assert _value(registry, "adrec_events_queue_rows") == 3
        assert _value(registry, "adrec_events_process_impressions_dropped_total") == 3
    sink.flush(20)
    metrics.update(sink.stats(), sink.counters())
    assert _value(registry, "adrec_events_dropped", **a_hour) == 3
    assert _value(registry, "adrec_events_queue_rows") == 0
    text = prometheus_client.generate_latest(registry).decode()
    assert 'adrec_events_impressions{model_version="1",variant="A",window="all_time"}' in text


def test_process_counters_only_grow_by_what_changed(make_sink: Make) -> None:
    registry = prometheus_client.CollectorRegistry()
    metrics = EventMetrics(registry=registry)
    sink = make_sink()
    for round_ in range(3):
        sink.log_impressions(impressions(f"r{round_}"))
        sink.flush(20)
        metrics.update(sink.stats(), sink.counters())
        metrics.update(sink.stats(), sink.counters())  # twice: nothing new the second time
        written = _value(registry, "adrec_events_process_impressions_written_total")
        assert written == 3 * (round_ + 1)
