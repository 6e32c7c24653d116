"""Batched metric updates expose exactly what one update per event would."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from streams.worker.metrics import _LAG_BUCKETS, BatchObservations, Metrics, observe_many

values = st.lists(
    st.one_of(st.sampled_from([0.0, *_LAG_BUCKETS, math.inf]),
              st.floats(min_value=0, max_value=1e6, allow_nan=False)),
    max_size=60,
)


def _pair() -> tuple[Histogram, Histogram, CollectorRegistry, CollectorRegistry]:
    ra, rb = CollectorRegistry(), CollectorRegistry()
    a = Histogram("h", "x", buckets=_LAG_BUCKETS, registry=ra)
    b = Histogram("h", "x", buckets=_LAG_BUCKETS, registry=rb)
    return a, b, ra, rb


def _exposition(registry: CollectorRegistry) -> list[str]:
    # _created differs between two histograms made a moment apart
    return [line for line in generate_latest(registry).decode().splitlines()
            if "_created" not in line]


@given(values)
def test_observe_many_equals_observing_each_value(vs: list[float]) -> None:
    a, b, ra, rb = _pair()
    for v in vs:
        a.observe(v)
    observe_many(b, vs)
    assert _exposition(ra) == _exposition(rb)


def test_observe_many_falls_back_without_the_internals() -> None:
    seen: list[float] = []

    class Plain:
        def observe(self, v: float) -> None:
            seen.append(v)

    observe_many(Plain(), [1.0, 2.0])
    assert seen == [1.0, 2.0]


def test_a_batch_counts_events_and_lags_once_flushed() -> None:
    m = Metrics()
    batch = BatchObservations()
    batch.add("calls", "call.ended", occurred_at=100.0, record_ts=101.0)
    batch.add("calls", "call.ended", occurred_at=100.0, record_ts=None)
    batch.add("tickets", "ticket.opened", occurred_at=90.0, record_ts=99.5)
    assert m.registry.get_sample_value(
        "kpi_events_total", {"topic": "calls", "type": "call.ended"}) is None
    batch.flush(m, now=102.0)
    got = m.registry.get_sample_value
    assert got("kpi_events_total", {"topic": "calls", "type": "call.ended"}) == 2
    assert got("kpi_events_total", {"topic": "tickets", "type": "ticket.opened"}) == 1
    assert got("kpi_event_lag_seconds_count", {}) == 3
    assert got("kpi_event_lag_seconds_sum", {}) == 2 + 2 + 12
    assert got("kpi_event_lag_seconds_bucket", {"le": "2.5"}) == 2
    assert got("kpi_processing_latency_seconds_count", {}) == 2  # one had no timestamp
    assert got("kpi_processing_latency_seconds_sum", {}) == 1 + 2.5
    batch.flush(m, now=200.0)  # reset: nothing counted twice
    assert got("kpi_event_lag_seconds_count", {}) == 3
