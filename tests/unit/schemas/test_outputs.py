"""The output models describe the records the worker publishes: snapshots as the worker
builds them, alerts as the ticket projector builds them."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from projections.pipeline import Pipeline
from projections.tickets import TicketProjector
from schemas.outputs import EmployeeSnapshot, SlaAlert
from streams.worker.outputs import snapshot_value
from tests import factory as f

AT = "2026-11-02T{}:00+03:00"


def _fold() -> Pipeline:
    p = Pipeline(live=False)
    p.apply_all(f.model(e) for e in [
        f.order("2026-10-01T00:00:00+03:00"),
        f.opened("t-1", AT.format("10:00"), "e-1", priority="P2", decisions=["reactivation"]),
        f.resolved("t-1", AT.format("11:00"), "e-1"),
        f.call("e-1", AT.format("12:00")),
    ])
    return p


def test_a_snapshot_of_a_day_and_of_a_month_is_an_employee_snapshot() -> None:
    p = _fold()
    for period in ("2026-11-02", "2026-11"):
        obj = p.employee("e-1", period)
        assert obj is not None
        raw = snapshot_value(obj, datetime(2026, 11, 2, 12, tzinfo=UTC))
        snap = EmployeeSnapshot.model_validate(orjson.loads(raw))
        assert snap.type == "kpi.employee_snapshot" and snap.employee_id == "e-1"
        assert snap.kpi_minutes == obj["kpi_minutes"]
        assert (snap.bonus is not None) == (period == "2026-11")


def test_the_alerts_a_ticket_owes_are_sla_alerts() -> None:
    p = Pipeline(live=True)
    p.apply_all(f.model(e) for e in [
        f.order("2026-10-01T00:00:00+03:00"),
        f.opened("t-1", AT.format("10:00"), "e-1", priority="P1", decisions=["reactivation"]),
    ])
    # As the worker's alert timer reads the tickets store.
    reader = TicketProjector(p.tickets_kv, p.cat, live=True, alerts=True)
    owed = reader.due_alerts("t-1", datetime(2026, 11, 30, tzinfo=UTC))
    assert {(a["target"], a["type"]) for a in owed} >= {("first_response", "sla.breached")}
    for alert in owed:
        SlaAlert.model_validate(alert)
