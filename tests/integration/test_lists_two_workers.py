"""Ticket lists and pages across two workers: each holds part of the tickets and of the
employees, and either answers for all of them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streams.admin import create_topics
from streams.devtools.broker import EmbeddedBroker
from tests import factory as f
from tests.integration.workers import WorkerProc, produce, settings_for, unique_prefix, wait_for

pytestmark = pytest.mark.integration

DAY = "2026-11-02"
TICKETS = [f"t-{i}" for i in range(12)]
EMPLOYEES = [f"e-{i}" for i in range(6)]


@pytest.fixture(scope="module")
def workers(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[WorkerProc, WorkerProc]]:
    tmp = tmp_path_factory.mktemp("lists2")
    prefix = unique_prefix()
    create_topics(settings_for(broker, prefix))
    events = [f.order(), *(f.registered(e, "d-1") for e in EMPLOYEES)]
    for i, t in enumerate(TICKETS):
        events.append(f.opened(t, f"{DAY}T1{i % 8}:00:00+03:00", EMPLOYEES[i % 6],
                               decisions=["tariff_change"], dept="d-1"))
        if i % 3 == 0:
            events.append(f.resolved(t, f"{DAY}T18:00:00+03:00", EMPLOYEES[i % 6]))
    produce(broker, prefix, events)
    a = WorkerProc(broker, prefix, tmp / "a", log_path=tmp / "a.log").start()
    b = WorkerProc(broker, prefix, tmp / "b", log_path=tmp / "b.log")
    try:
        b.start()
        yield a, b
    finally:
        b.stop()
        a.stop()


def test_each_worker_lists_every_ticket_of_the_department(
        workers: tuple[WorkerProc, WorkerProc]) -> None:
    a, b = workers

    def both_serve_all() -> bool:
        for w in (a, b):
            r = w.get("/kpi/departments/d-1/tickets?limit=500")
            if r.status != 200 or r.body["total"] != len(TICKETS):
                return False
        return True

    wait_for(both_serve_all, 120, what="both workers to list every ticket")
    # each worker holds only some of the tickets, so the lists above were gathered
    shares = [w.get("/internal/tickets?department=d-1").body for w in (a, b)]
    assert all(s["items"] for s in shares) and sorted(
        p for s in shares for p in s["partitions"]) == [0, 1]
    rows = a.get("/kpi/departments/d-1/tickets?limit=500").body["items"]
    assert rows == b.get("/kpi/departments/d-1/tickets?limit=500").body["items"]
    assert [r["open"] for r in rows] == sorted((r["open"] for r in rows), reverse=True)
    assert sum(r["open"] for r in rows) == 8
    # at_risk reads the alert timers' index of open tickets: the same rows as filtering all
    risky = a.get("/kpi/departments/d-1/tickets?status=at_risk&limit=500").body["items"]
    assert [r["ticket_id"] for r in risky] == [r["ticket_id"] for r in rows if r["at_risk"]]
    mine = a.get("/kpi/employees/e-1/tickets").body
    assert sorted(r["ticket_id"] for r in mine["items"]) == ["t-1", "t-7"]


def test_pages_are_whole_on_either_worker(workers: tuple[WorkerProc, WorkerProc]) -> None:
    a, b = workers
    for w in (a, b):
        page = w.get("/ui/departments/d-1?month=2026-11")
        assert page.status == 200
        assert all(f'data-employee="{e}"' in page.body for e in EMPLOYEES)
        assert page.body.count('data-ticket="') == 8  # every open ticket is long overdue
        for e in EMPLOYEES:
            emp = w.get(f"/ui/employees/{e}?month=2026-11")
            api = w.get(f"/kpi/employees/{e}?month=2026-11").body
            assert emp.status == 200
            assert f'<span data-field="kpi_minutes">{api["kpi_minutes"]}</span>' in emp.body
