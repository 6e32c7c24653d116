"""Builders of valid input events for tests (dicts as on the wire, and validated models)."""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Any

from schemas.events import EVENT_MODELS, Event

_counter = itertools.count(1)

ORDER_CALENDAR = {
    "timezone": "Europe/Moscow",
    "workdays": [1, 2, 3, 4, 5],
    "work_start": "09:00",
    "work_end": "18:00",
    "holidays": ["2026-11-04"],
    "extra_workdays": [],
}
BONUS_SCALE = {"85": 15.0, "93": 20.0, "94": 22.5, "95": 25.0, "96": 27.5,
               "97": 30.0, "98": 32.5, "99": 35.0, "100": 37.5}
SLA_TARGETS = {
    "P1": {"first_response_minutes": 15, "resolution_minutes": 240, "business_hours": False},
    "P2": {"first_response_minutes": 60, "resolution_minutes": 480, "business_hours": True},
    "P3": {"first_response_minutes": 240, "resolution_minutes": 960, "business_hours": True},
}


def eid() -> str:
    """A fresh, readable, deterministic-per-run UUID."""
    return str(uuid.UUID(int=next(_counter)))


def raw(type_: str, occurred_at: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": fields.pop("event_id", None) or eid(), "type": type_,
            "schema_version": 1, "occurred_at": occurred_at, **fields}


def model(d: dict[str, Any]) -> Event:
    return EVENT_MODELS[d["type"]].model_validate_json(json.dumps(d))


def order(occurred_at: str = "2026-10-01T10:00:00+03:00", **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "order_id": "ord-1", "number": 1, "effective_from": "2026-10-01",
        "decision_weights": {"tariff_change": 6.0, "reactivation": 12.5, "router_reboot": 3.0},
        "daily_plan_minutes": 480, "sla_goal_pct": 95.0, "sla_targets": SLA_TARGETS,
        "calls_per_hour_target": 35.0, "calendar": ORDER_CALENDAR, "bonus_scale": BONUS_SCALE,
    }
    body.update(over)
    return raw("norm_order.issued", occurred_at, **body)


def opened(ticket: str, at: str, emp: str = "e-1", *, decisions: list[str] | None = None,
           origin: str = "manual", priority: str = "P3", dept: str = "d-1",
           **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ticket_id": ticket, "employee_id": emp, "department_id": dept,
                            "line": 1, "priority": priority, "channel": "call",
                            "origin": origin, "customer_id": "c-1", "decisions": decisions or []}
    return raw("ticket.opened", at, **{**body, **over})


def added(ticket: str, at: str, emp: str, decisions: list[str]) -> dict[str, Any]:
    return raw("ticket.decisions_added", at, ticket_id=ticket, employee_id=emp,
               decisions=decisions)


def first_response(ticket: str, at: str, emp: str = "e-1") -> dict[str, Any]:
    return raw("ticket.first_response", at, ticket_id=ticket, employee_id=emp)


def status(ticket: str, at: str, st: str) -> dict[str, Any]:
    return raw("ticket.status_changed", at, ticket_id=ticket, status=st)


def resolved(ticket: str, at: str, emp: str = "e-1") -> dict[str, Any]:
    return raw("ticket.resolved", at, ticket_id=ticket, employee_id=emp)


def closed(ticket: str, at: str) -> dict[str, Any]:
    return raw("ticket.closed", at, ticket_id=ticket)


def merged(ticket: str, at: str, into: str) -> dict[str, Any]:
    return raw("ticket.merged", at, ticket_id=ticket, into_ticket_id=into)


def escalated(ticket: str, at: str, emp: str) -> dict[str, Any]:
    return raw("ticket.escalated", at, ticket_id=ticket, from_employee_id=emp, from_line=1,
               to_line=2, reason="needs line 2")


def returned(ticket: str, at: str, emp: str) -> dict[str, Any]:
    return raw("ticket.escalation_returned", at, ticket_id=ticket, by_employee_id=emp,
               reason="not ours")


def reopened(ticket: str, at: str) -> dict[str, Any]:
    return raw("ticket.reopened", at, ticket_id=ticket, reason="customer called back")


def call(emp: str, at: str, *, answered: bool = True, talk: float = 120, hold: float = 10,
         wrap: float = 30) -> dict[str, Any]:
    return raw("call.completed", at, call_id=f"call-{next(_counter)}", employee_id=emp,
               department_id="d-1", direction="inbound", started_at=at,
               answered_at=at if answered else None, ended_at=at, talk_seconds=talk,
               hold_seconds=hold, wrap_up_seconds=wrap, customer_id="c-1")


def quality(emp: str, at: str, scores: list[int]) -> dict[str, Any]:
    return raw("quality.evaluated", at, employee_id=emp, dialog_id=f"dlg-{next(_counter)}",
               scores=scores)


def csat(emp: str, at: str, score: int, ticket: str = "t-x") -> dict[str, Any]:
    return raw("csat.rated", at, ticket_id=ticket, employee_id=emp, score=score)


def registered(emp: str, dept: str, at: str = "2026-10-01T08:00:00+03:00") -> dict[str, Any]:
    return raw("employee.registered", at, employee_id=emp, department_id=dept, line=1,
               name=f"Employee {emp}")


def absent(emp: str, day: str, at: str = "2026-10-01T08:00:00+03:00") -> dict[str, Any]:
    return raw("employee.absent", at, employee_id=emp, date=day)
