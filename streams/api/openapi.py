"""The OpenAPI document of the HTTP API, built from pydantic models of its responses.

The models mirror what the views return (processors/figures.py `employee_object` and
`department_totals`, processors/ticket.py `describe`, the health view, the error body);
tests/unit/streams/test_openapi.py checks the real builders against this document, and
schemathesis checks the running worker against it.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonDict, SkipJsonSchema, models_json_schema

Num = float  # JSON Schema "number" takes integers too


def _absent_not_null(schema: JsonDict) -> None:
    """For keys that may be missing but are never null: drop the `default: null` that
    pydantic writes, which would contradict the (non-null) type."""
    schema.pop("default", None)

# Path ids: letters, digits and . _ : @ -, at most 128, not starting with a dot, so that
# "." and ".." (which clients and servers normalise away as path segments) are never ids.
ID_PATTERN = r"^[A-Za-z0-9_:@-][A-Za-z0-9._:@-]{0,127}$"
# ASCII digits only (a bare \d would also take other scripts' digits); year 0001-9999.
_YEAR = r"([1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
MONTH_PATTERN = rf"^{_YEAR}-(0[1-9]|1[0-2])$"
DATE_PATTERN = rf"^{_YEAR}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"


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
    """Rule 12 step by step; `reason` names the first failing step and is absent when
    eligible."""

    eligible: bool
    quality_score: Num | None
    productivity_pct: Num | None
    deduction: Num | None
    points: Num | None
    bonus_pct: Num | None
    # SkipJsonSchema[None]: the key may be missing but is never null.
    reason: (
        Literal["no_productivity", "productivity_below_90", "no_quality", "points_below_85",
                "no_scale_step"] | SkipJsonSchema[None]
    ) = Field(default=None, json_schema_extra=_absent_not_null)


class _Figures(_Strict):
    """The figures shared by an employee object and a department's totals."""

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


class EmployeeFigures(_Figures):
    """An employee's figures for a day or a month. `quality_score` (possibly null) and
    `bonus` are present for months and absent for days."""

    employee_id: str
    department_id: str | None
    period: str
    generation: int
    quality_score: Num | None = None
    bonus: Bonus | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_absent_not_null)


class DepartmentTotals(_Figures):
    """Summed counts and minutes; percentages from summed numerators and denominators."""


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


class Health(_Strict):
    status: Literal["ok", "unavailable"]
    reason: str
    generation: int
    orders: int


class Error(_Strict):
    """Every error: a short machine-readable code and a sentence for people."""

    error: str
    detail: str


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str, **headers: str) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description,
                           "content": {"application/json": {"schema": _ref(name)}}}
    if headers:
        out["headers"] = {h.replace("_", "-"): {"description": d, "required": True,
                                                "schema": {"type": "string"}}
                          for h, d in headers.items()}
    return out


# Answered by every endpoint: malformed requests and methods other than GET/HEAD.
_COMMON = {
    "400": _json("Error", "unknown or repeated query parameter, malformed id or period, "
                          "or a request body"),
    "405": _json("Error", "only GET and HEAD are served", Allow="the allowed methods"),
    "500": _json("Error", "internal error (logged; no internals in the body)"),
}
_AUTH = {
    "401": _json("Error", "missing, unknown or revoked bearer token",
                 WWW_Authenticate="the Bearer challenge (RFC 6750)"),
    "403": _json("Error", "outside the token's scope; a scoped token gets 403, not 404, for "
                          "ids it may not see, so that their existence does not leak"),
}
_UNAVAILABLE = {
    "503": _json("Error", "the worker owning the key is rebalancing or unreachable; retry"),
}
# date and month exclude each other. Two plain parameters cannot say so, so they are
# documented as the properties of one form-exploded object (serialised as ?date=... or
# ?month=..., exactly as with two parameters), of which at most one may be given.
# A Prometheus sample name as this worker exposes them: every one has a `_` in it, so a
# stray word (`?name[]=false`) is a client error, not an empty answer.
METRIC_NAME_PATTERN = r"^[a-zA-Z_:][a-zA-Z0-9:]*_[a-zA-Z0-9_:]+$"

_PERIOD_PARAMS = [{
    "name": "period", "in": "query", "required": False, "style": "form", "explode": True,
    "description": "date=YYYY-MM-DD (a day) or month=YYYY-MM, not both; default: the "
                   "current month",
    "schema": {
        "type": "object", "additionalProperties": False, "maxProperties": 1,
        "properties": {
            "date": {"type": "string", "format": "date", "pattern": DATE_PATTERN},
            "month": {"type": "string", "pattern": MONTH_PATTERN},
        },
    },
}]


def _id_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "string", "pattern": ID_PATTERN}}


def _get(summary: str, responses: dict[str, Any], *,
         parameters: list[dict[str, Any]] | None = None, public: bool = False) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "parameters": parameters or [],
                          "responses": {**responses, **_COMMON, **({} if public else _AUTH)}}
    if public:
        op["security"] = []
    return {"get": op}


@cache
def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 for every public endpoint (the internal one is not part of the API)."""
    _, defs = models_json_schema(
        [(m, "serialization") for m in (EmployeeFigures, DepartmentFigures, TicketProjection,
                                         Health, Error)],
        ref_template="#/components/schemas/{model}",
    )
    text = {"schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "kpi-engine", "version": "1",
                 "description": "Live KPI and SLA figures per employee, department and ticket. "
                                "Every endpoint answers GET and HEAD; errors are "
                                '{"error": code, "detail": text}.'},
        "components": {
            "schemas": defs["$defs"],
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "roles: employee (self), manager (departments), operations "
                               "(all), metrics (/metrics only)"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/kpi/employees/{employee_id}": _get(
                "An employee's figures for a day (date) or a month (default: now)",
                {"200": _json("EmployeeFigures", "the employee object"),
                 "404": _json("Error", "no accepted event names this employee"),
                 **_UNAVAILABLE},
                parameters=[_id_param("employee_id"), *_PERIOD_PARAMS]),
            "/kpi/departments/{department_id}": _get(
                "Every registered employee of a department, and totals",
                {"200": _json("DepartmentFigures", "the manager's view"),
                 "404": _json("Error", "no registration names this department"),
                 **_UNAVAILABLE},
                parameters=[_id_param("department_id"), *_PERIOD_PARAMS]),
            "/tickets/{ticket_id}": _get(
                "A ticket's projection with its SLA clocks (operations, or a manager of the "
                "ticket's department)",
                {"200": _json("TicketProjection", "the ticket"),
                 "404": _json("Error", "no event names this ticket"),
                 **_UNAVAILABLE},
                parameters=[_id_param("ticket_id")]),
            "/health": _get(
                "200 once the worker serves its partitions, 503 otherwise",
                {"200": _json("Health", "serving"),
                 "503": _json("Health", "not serving, with the reason")},
                public=True),
            "/metrics": _get(
                "Prometheus exposition (a metrics or operations token); OpenMetrics when the "
                "Accept header asks for it",
                {"200": {"description": "metrics",
                         "content": {"text/plain": text,
                                     "application/openmetrics-text": text}}},
                parameters=[{"name": "name[]", "in": "query", "required": False,
                             "description": "only these series (sample names, e.g. "
                                            "kpi_events_total); repeat for several",
                             "schema": {"type": "array",
                                        "items": {"type": "string",
                                                  "pattern": METRIC_NAME_PATTERN}},
                             "style": "form", "explode": True}]),
            "/openapi.json": _get(
                "This document",
                {"200": {"description": "OpenAPI document",
                         "content": {"application/json": {"schema": {"type": "object"}}}}},
                public=True),
        },
    }
