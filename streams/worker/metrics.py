"""Every Prometheus metric, declared once against an injected registry."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter as _Tally
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

# Lag buckets from sub-second live processing to hours of replay backlog. Finer around
# the 2 seconds a snapshot may take: with only 1 and 2.5, a p99 moving from
# 0.95 to 1.05 s read as a jump to ~1.8 s (Prometheus interpolates inside a bucket).
_LAG_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 2.5, 5, 10, 30, 60,
                300, 900, 3600, 86400)
_SLA_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 57600, 86400, 172800, 604800)


class Metrics:
    """The worker's metrics; label sets are bounded (topics, types, reasons, priorities,
    and employees of the partitions this worker owns)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # process_resident_memory_bytes, process_cpu_seconds_total, open fds (Linux /proc):
        # the worker's memory beside kpi_rocksdb_memory_bytes on the operations dashboard.
        self.process = ProcessCollector(registry=r)
        self._events(r)
        self._employees(r)
        self._sla(r)
        self._runtime(r)

    def _events(self, r: CollectorRegistry) -> None:
        self.events = Counter(
            "kpi_events", "Accepted, non-duplicate events", ["topic", "type"], registry=r
        )
        self.duplicates = Counter(
            "kpi_duplicate_events", "Redelivered events ignored", ["topic"], registry=r
        )
        self.dead_letters = Counter(
            "kpi_dead_letters", "Messages sent to dead-letters", ["topic", "reason"], registry=r
        )
        self.event_lag = Histogram(
            "kpi_event_lag_seconds", "Processing time minus occurred_at", buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.processing_latency = Histogram(
            "kpi_processing_latency_seconds", "Processing time minus the Kafka record timestamp",
            buckets=_LAG_BUCKETS, registry=r,
        )

    def _employees(self, r: CollectorRegistry) -> None:
        self.employee_minutes = Gauge(
            "kpi_employee_minutes", "KPI minutes today", ["employee_id", "department_id"],
            registry=r,
        )
        self.employee_attainment = Gauge(
            "kpi_employee_attainment_ratio", "Attainment today (attainment_pct / 100)",
            ["employee_id", "department_id"], registry=r,
        )
        self.employee_repeat_contacts = Gauge(
            "kpi_employee_repeat_contacts", "Repeat contacts charged this month",
            ["employee_id", "department_id"], registry=r,
        )
        self.employee_resolved = Gauge(
            "kpi_employee_resolved_tickets",
            "Tickets resolved this month (the denominator of the repeat-contact rate)",
            ["employee_id", "department_id"], registry=r,
        )
        self.employee_cover = Gauge(
            "kpi_employee_cover_minutes", "Cover minutes for absent colleagues this month",
            ["employee_id", "department_id"], registry=r,
        )
        self.employee_bonus = Gauge(
            "kpi_employee_bonus_pct", "Bonus percent this month (absent when not eligible)",
            ["employee_id", "department_id"], registry=r,
        )
        self.snapshots = Counter(
            "kpi_snapshots", "kpi.employee_snapshot records published", registry=r
        )

    def _sla(self, r: CollectorRegistry) -> None:
        self.sla_tickets = Counter(
            "kpi_sla_tickets", "SLA outcomes as they are decided", ["priority", "outcome"],
            registry=r,
        )
        self.sla_open_breached = Gauge(
            "kpi_sla_open_breached_tickets", "Open tickets past a target", ["priority"],
            registry=r,
        )
        self.sla_alerts = Counter(
            "kpi_sla_alerts", "SLA alerts published", ["target", "kind"], registry=r
        )
        self.first_response_seconds = Histogram(
            "kpi_sla_first_response_seconds", "First-response time (SLA clock) per priority",
            ["priority"], buckets=_SLA_BUCKETS, registry=r,
        )
        self.resolution_seconds = Histogram(
            "kpi_sla_resolution_seconds", "Resolution time (SLA clock) per priority",
            ["priority"], buckets=_SLA_BUCKETS, registry=r,
        )

    def _runtime(self, r: CollectorRegistry) -> None:
        self.consumer_lag = Gauge(
            "kpi_consumer_lag_messages", "Messages not yet consumed, per input topic",
            ["topic"], registry=r,
        )
        # Records fetched and queued for an agent, not yet processed: the read-ahead a
        # backlog holds in memory (KPI_BUFFER_BATCHES chunks per agent on the fast path).
        self.buffered_records = Gauge(
            "kpi_agent_buffered_records",
            "Records fetched and waiting in an agent's queue, per agent", ["agent"],
            registry=r,
        )
        # The process's RocksDB memory against its budget (streams/worker/store.py): the block
        # cache fills up to the budget as state grows, then stays there; a soak reads it
        # to tell that from a leak.
        self.rocksdb_memory = Gauge(
            "kpi_rocksdb_memory_bytes",
            "RocksDB memory of this process: block cache usage (memtables, index and filter "
            "blocks are charged to it), memtables alone, and the budget",
            ["kind"], registry=r,
        )


def observe_many(histogram: Any, values: Iterable[float]) -> None:
    """`histogram.observe(v)` for every value, with one update per bucket touched.

    prometheus_client takes a lock per bucket and per sum on every observation, which a
    worker paid twice per event. This counts the values per bucket first and adds the
    counts; `le` semantics are those of `Histogram.observe` (the first bound >= value).
    Relies on the histogram's `_upper_bounds`, `_buckets` and `_sum`; without them (a
    future prometheus_client) it falls back to observing one value at a time.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None:
        for v in values:
            histogram.observe(v)
        return
    tally: _Tally[int] = _Tally()
    s = 0.0
    for v in values:
        tally[bisect_left(bounds, v)] += 1
        s += v
    if not tally:
        return
    total.inc(s)
    for i, n in tally.items():
        buckets[i].inc(n)


class BatchObservations:
    """What one batch of events adds to the event counters and lag histograms, applied
    to the metrics once at the end of the batch (`flush`) instead of once per event."""

    __slots__ = ("events", "lags", "latencies")

    def __init__(self) -> None:
        self.events: _Tally[tuple[str, str]] = _Tally()
        self.lags: list[float] = []  # occurred_at of each event, epoch seconds
        self.latencies: list[float] = []  # Kafka record timestamp, epoch seconds

    def add(self, topic: str, type_: str, occurred_at: float, record_ts: float | None) -> None:
        self.events[(topic, type_)] += 1
        self.lags.append(occurred_at)
        if record_ts:
            self.latencies.append(record_ts)

    def flush(self, metrics: Metrics, now: float) -> None:
        """Count the batch's events as processed at `now` (its state written), and reset."""
        for (topic, type_), n in self.events.items():
            metrics.events.labels(topic, type_).inc(n)
        observe_many(metrics.event_lag, (max(0.0, now - t) for t in self.lags))
        observe_many(metrics.processing_latency, (max(0.0, now - t) for t in self.latencies))
        self.events.clear()
        self.lags.clear()
        self.latencies.clear()
