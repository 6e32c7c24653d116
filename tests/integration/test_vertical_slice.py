"""An event produced with kafka-python shows up in a real worker's API, metrics and health."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from streams.devtools.broker import EmbeddedBroker
from tests import factory as f
from tests.integration.workers import WorkerProc, fresh_prefix, metric, produce, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def worker(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[WorkerProc]:
    prefix = fresh_prefix(broker)
    w = WorkerProc(broker, prefix, tmp_path / "state", log_path=tmp_path / "worker.log")
    produce(broker, prefix, [f.order()])
    w.start()
    try:
        yield w
    finally:
        w.stop()


def test_ticket_opened_reaches_the_api(worker: WorkerProc, broker: EmbeddedBroker) -> None:
    produce(broker, worker.prefix, [
        f.registered("e-1", "d-1"),
        f.opened("t-1", "2026-11-02T10:00:00+03:00", "e-1",
                 decisions=["tariff_change", "reactivation"]),
    ])

    def minutes() -> float | None:
        r = worker.get("/kpi/employees/e-1?date=2026-11-02")
        return r.body["kpi_minutes"] if r.status == 200 and r.body["kpi_minutes"] else None

    assert wait_for(minutes, what="e-1's minutes") == 18.5
    month = worker.get("/kpi/employees/e-1?month=2026-11").body
    assert month["department_id"] == "d-1" and month["plan_minutes"] == 9600
    metrics = worker.get("/metrics").body
    assert metric(metrics, "kpi_events_total", topic="tickets", type="ticket.opened") == 1.0
    assert worker.get("/health").body["status"] == "ok"


def test_unknown_employee_and_bad_dates(worker: WorkerProc) -> None:
    r = worker.get("/kpi/employees/nobody?date=2026-11-02")
    assert r.status == 404 and r.body["error"] == "unknown_employee"
    for bad in ("date=2026-13-01", "date=yesterday", "month=2026-1", "date=2026-02-30"):
        r = worker.get(f"/kpi/employees/nobody?{bad}")
        assert r.status == 400, bad
        assert set(r.body) == {"error", "detail"}


def test_today_gauges(worker: WorkerProc, broker: EmbeddedBroker) -> None:
    now = datetime.now(UTC)
    produce(broker, worker.prefix, [
        f.registered("e-7", "d-7"),
        f.opened("t-now", now.isoformat(), "e-7", decisions=["reactivation"]),
    ])

    def minutes() -> float | None:
        return metric(worker.get("/metrics").body, "kpi_employee_minutes",
                      employee_id="e-7", department_id="d-7")

    assert wait_for(minutes, what="e-7's gauge") == 12.5


def test_gauges_follow_changed_employees_between_full_refreshes(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    """Only changed employees are recomputed between full refreshes (here: never after
    the first), so a change must mark its employee."""
    prefix = fresh_prefix(broker)
    produce(broker, prefix, [f.order()])
    w = WorkerProc(broker, prefix, tmp_path / "state", log_path=tmp_path / "worker.log",
                   extra_env={"KPI_GAUGE_INTERVAL": "0.5", "KPI_GAUGE_FULL_REFRESH": "3600"})
    w.start()
    try:
        now = datetime.now(UTC)
        produce(broker, prefix, [
            f.registered("e-8", "d-8"), f.registered("e-9", "d-8"),
            f.opened("t-8", now.isoformat(), "e-8", decisions=["reactivation"]),
        ])

        def minutes(emp: str) -> float | None:
            return metric(w.get("/metrics").body, "kpi_employee_minutes",
                          employee_id=emp, department_id="d-8")

        assert wait_for(lambda: minutes("e-8"), what="e-8's gauge") == 12.5
        produce(broker, prefix, [
            f.added("t-8", (now + timedelta(seconds=1)).isoformat(), "e-8", ["reactivation"]),
            f.opened("t-9", now.isoformat(), "e-9", decisions=["reactivation"]),
        ])
        assert wait_for(lambda: minutes("e-8") == 25.0 and minutes("e-9"),
                        what="the changed gauges")
        assert minutes("e-9") == 12.5
    finally:
        w.stop()


def test_rocksdb_memory_is_reported_against_its_budget(worker: WorkerProc) -> None:
    # The tables are open once the worker serves; the probe timer publishes the gauge.
    def cache() -> float | None:
        text = worker.get("/metrics").body
        return metric(text, "kpi_rocksdb_memory_bytes", kind="cache") or None

    assert wait_for(cache, what="RocksDB cache usage") > 0
    text = worker.get("/metrics").body
    budget = metric(text, "kpi_rocksdb_memory_bytes", kind="budget")
    assert budget == 192 * 1024 * 1024  # KPI_ROCKSDB_MEMORY_MB's default
    memtables = metric(text, "kpi_rocksdb_memory_bytes", kind="memtables")
    assert memtables is not None and memtables <= budget
