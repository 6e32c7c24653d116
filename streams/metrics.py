"""Every Prometheus metric, declared once against an injected registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

# Lag buckets from sub-second live processing to hours of replay backlog.
_LAG_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 86400)
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
        self.events = Counter(
            "kpi_events", "Accepted, non-duplicate events", ["topic", "type"], registry=r
        )
        self.duplicates = Counter(
            "kpi_duplicate_events", "Redelivered events ignored", ["topic"], registry=r
        )
        self.dead_letters = Counter(
            "kpi_dead_letters", "Messages sent to dead-letters", ["topic", "reason"], registry=r
        )
        self.employee_minutes = Gauge(
            "kpi_employee_minutes", "KPI minutes today", ["employee_id", "department_id"],
            registry=r,
        )
        self.employee_attainment = Gauge(
            "kpi_employee_attainment_ratio", "Attainment today (attainment_pct / 100)",
            ["employee_id", "department_id"], registry=r,
        )
        self.employee_bonus = Gauge(
            "kpi_employee_bonus_pct", "Bonus percent this month (absent when not eligible)",
            ["employee_id", "department_id"], registry=r,
        )
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
        self.event_lag = Histogram(
            "kpi_event_lag_seconds", "Processing time minus occurred_at", buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.processing_latency = Histogram(
            "kpi_processing_latency_seconds", "Processing time minus the Kafka record timestamp",
            buckets=_LAG_BUCKETS, registry=r,
        )
        self.first_response_seconds = Histogram(
            "kpi_sla_first_response_seconds", "First-response time (SLA clock) per priority",
            ["priority"], buckets=_SLA_BUCKETS, registry=r,
        )
        self.resolution_seconds = Histogram(
            "kpi_sla_resolution_seconds", "Resolution time (SLA clock) per priority",
            ["priority"], buckets=_SLA_BUCKETS, registry=r,
        )
        self.consumer_lag = Gauge(
            "kpi_consumer_lag_messages", "Messages not yet consumed, per input topic",
            ["topic"], registry=r,
        )
        # The process's RocksDB memory against its budget (streams/store.py): the block
        # cache fills up to the budget as state grows, then stays there; a soak reads it
        # to tell that from a leak.
        self.rocksdb_memory = Gauge(
            "kpi_rocksdb_memory_bytes",
            "RocksDB memory of this process: block cache usage (memtables, index and filter "
            "blocks are charged to it), memtables alone, and the budget",
            ["kind"], registry=r,
        )
        self.snapshots = Counter(
            "kpi_snapshots", "kpi.employee_snapshot records published", registry=r
        )
