"""The OpenAPI document of the HTTP API, built from pydantic models of its responses."""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import models_json_schema

Num = float | int


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Sla(_Strict):
    met: int
    breached: int
    compliance_pct: Num | None
    goal_met: bool | None


class Calls(_Strict):
    answered: int
    aht_seconds: Num | None
    calls_per_hour: Num | None
    productivity_pct: Num | None


class Bonus(_Strict):
    eligible: bool
    quality_score: Num | None
    productivity_pct: Num | None
    deduction: Num | None
    points: Num | None
    bonus_pct: Num | None
    reason: (
        Literal["no_productivity", "productivity_below_90", "no_quality", "points_below_85",
                "no_scale_step"] | None
    ) = None


class EmployeeFigures(_Strict):
    """An employee's figures for a day or a month (bonus and quality_score: months only)."""

    employee_id: str
    department_id: str | None
    period: str
    generation: int
    kpi_minutes: Num
    plan_minutes: Num
    attainment_pct: Num | None
    tickets_handled: int
    unpriced_decisions: int
    sla: Sla
    resolved: int
    fcr_pct: Num | None
    reopened: int
    reopen_rate_pct: Num | None
    escalated: int
    escalation_rate_pct: Num | None
    escalations_returned: int
    bounce_back_pct: Num | None
    calls: Calls
    csat_avg: Num | None
    quality_score: Num | None = None
    bonus: Bonus | None = None


class DepartmentTotals(BaseModel):
    model_config = ConfigDict(extra="allow")

    kpi_minutes: Num
    plan_minutes: Num


class DepartmentFigures(_Strict):
    department_id: str
    period: str
    generation: int
    employees: list[EmployeeFigures]
    totals: DepartmentTotals


class TargetClock(_Strict):
    target_minutes: Num | None
    elapsed_minutes: Num
    remaining_minutes: Num | None
    state: Literal["running", "paused", "met", "breached"]
    due_at: str | None


class TicketSla(_Strict):
    first_response: TargetClock
    resolution: TargetClock


class LastResolution(_Strict):
    employee_id: str
    at: str
    outcome: Literal["met", "breached"] | None


class TicketProjection(_Strict):
    ticket_id: str
    status: str
    owner: str | None
    department_id: str | None
    line: int | None
    priority: str | None
    origin: str
    opened_at: str | None
    clock_start: str | None
    merged_into: str | None
    order_id: str | None
    business_hours: bool
    sla: TicketSla
    last_resolution: LastResolution | None


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    reason: str
    generation: int
    orders: int


class Error(_Strict):
    error: str
    detail: str


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


_ERRORS = {
    "400": _json("Error", "malformed parameter, id or request"),
    "401": _json("Error", "missing or invalid bearer token"),
    "403": _json("Error", "outside the token's scope"),
    "405": _json("Error", "method not allowed"),
}
_PERIOD_PARAMS = [
    {"name": "date", "in": "query", "required": False,
     "schema": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}},
    {"name": "month", "in": "query", "required": False,
     "schema": {"type": "string", "pattern": r"^\d{4}-\d{2}$"}},
]


def _id_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "string", "pattern": r"^[A-Za-z0-9._:@-]{1,128}$"}}


@cache
def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 for every public endpoint (the internal one is not part of the API)."""
    _, defs = models_json_schema(
        [(m, "serialization") for m in (EmployeeFigures, DepartmentFigures, TicketProjection,
                                         Health, Error)],
        ref_template="#/components/schemas/{model}",
    )
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "kpi-engine", "version": "1",
                 "description": "Live KPI and SLA figures per employee, department and ticket."},
        "components": {
            "schemas": defs["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": bearer,
        "paths": {
            "/kpi/employees/{employee_id}": {"get": {
                "summary": "An employee's figures for a day (date) or a month (default: now)",
                "parameters": [_id_param("employee_id"), *_PERIOD_PARAMS],
                "responses": {"200": _json("EmployeeFigures", "the employee object"),
                              "404": _json("Error", "unknown employee"), **_ERRORS},
            }},
            "/kpi/departments/{department_id}": {"get": {
                "summary": "Every registered employee of a department, and totals",
                "parameters": [_id_param("department_id"), *_PERIOD_PARAMS],
                "responses": {"200": _json("DepartmentFigures", "the manager's view"),
                              "404": _json("Error", "unknown department"), **_ERRORS},
            }},
            "/tickets/{ticket_id}": {"get": {
                "summary": "A ticket's projection with its SLA clocks",
                "parameters": [_id_param("ticket_id")],
                "responses": {"200": _json("TicketProjection", "the ticket"),
                              "404": _json("Error", "unknown ticket"), **_ERRORS},
            }},
            "/health": {"get": {
                "summary": "200 once the worker serves its partitions, 503 otherwise",
                "security": [],
                "responses": {"200": _json("Health", "serving"),
                              "503": _json("Health", "not serving, with the reason"),
                              "400": _json("Error", "malformed request"),
                              "405": _json("Error", "method not allowed")},
            }},
            "/metrics": {"get": {
                "summary": "Prometheus text format (scrape token)",
                "responses": {"200": {"description": "metrics",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}},
                              **_ERRORS},
            }},
            "/openapi.json": {"get": {
                "summary": "This document", "security": [],
                "responses": {"200": {"description": "OpenAPI document",
                                      "content": {"application/json": {
                                          "schema": {"type": "object"}}}},
                              "400": _json("Error", "malformed request"),
                              "405": _json("Error", "method not allowed")},
            }},
        },
    }
