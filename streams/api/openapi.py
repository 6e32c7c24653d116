"""The OpenAPI document of the HTTP API, generated from the pydantic models of its
responses (schemas/outputs.py): the paths, parameters and status codes are declared here,
every response body there.

tests/unit/streams/test_openapi.py checks the real builders against this document, and
schemathesis checks the running worker against it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic.json_schema import models_json_schema

from schemas.outputs import API_RESPONSES

# Path ids: letters, digits and . _ : @ -, at most 128, not starting with a dot, so that
# "." and ".." (which clients and servers normalise away as path segments) are never ids.
ID_PATTERN = r"^[A-Za-z0-9_:@-][A-Za-z0-9._:@-]{0,127}$"
# ASCII digits only (a bare \d would also take other scripts' digits); year 0001-9999.
_YEAR = r"([1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
MONTH_PATTERN = rf"^{_YEAR}-(0[1-9]|1[0-2])$"
DATE_PATTERN = rf"^{_YEAR}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"


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
        [(m, "serialization") for m in API_RESPONSES],
        ref_template="#/components/schemas/{model}",
    )
    return add_payroll_csv({
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
        "paths": {**_paths(), **_list_paths()},
    })


def _paths() -> dict[str, Any]:
    text = {"schema": {"type": "string"}}
    return {
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
    }


# ASCII digits; limit 1-500 without leading zeros, offset below a billion.
LIMIT_PATTERN = r"^([1-9][0-9]?|[1-4][0-9]{2}|500)$"
OFFSET_PATTERN = r"^[0-9]{1,9}$"


def _paging_params(status: bool = False) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"name": "offset", "in": "query", "required": False,
         "schema": {"type": "string", "pattern": OFFSET_PATTERN},
         "description": "items to skip (default 0)"},
        {"name": "limit", "in": "query", "required": False,
         "schema": {"type": "string", "pattern": LIMIT_PATTERN},
         "description": "items per page, 1-500 (default 50)"},
    ]
    if status:
        out.append({"name": "status", "in": "query", "required": False,
                    "schema": {"type": "string", "enum": ["all", "open", "at_risk"]},
                    "description": "all (default), open, or at_risk (open and warning or "
                                   "breached)"})
    return out


def _list_paths() -> dict[str, Any]:
    tickets = "the tickets, open first (the most overdue, then the least time left), " \
              "then the others newest first"
    return {
        "/kpi/departments": _get(
            "The departments this token may read (operations: all; a manager: theirs)",
            {"200": _json("DepartmentList", "a page of departments")},
            parameters=_paging_params()),
        "/kpi/departments/{department_id}/employees": _get(
            "A department's registered employees",
            {"200": _json("EmployeeList", "a page of employees"),
             "404": _json("Error", "no registration names this department")},
            parameters=[_id_param("department_id"), *_paging_params()]),
        "/kpi/departments/{department_id}/tickets": _get(
            f"A department's tickets (by the ticket's current department): {tickets}",
            {"200": _json("TicketList", "a page of tickets"),
             "404": _json("Error", "no registration names this department"),
             **_UNAVAILABLE},
            parameters=[_id_param("department_id"), *_paging_params(True)]),
        "/kpi/employees/{employee_id}/tickets": _get(
            f"The tickets an employee currently owns: {tickets}",
            {"200": _json("TicketList", "a page of tickets"),
             "404": _json("Error", "no registration and no ticket names this employee"),
             **_UNAVAILABLE},
            parameters=[_id_param("employee_id"), *_paging_params(True)]),
    }


def add_payroll_csv(doc: dict[str, Any]) -> dict[str, Any]:
    """`Accept: text/csv` on a department's month: the payroll file."""
    op = doc["paths"]["/kpi/departments/{department_id}"]["get"]
    op["responses"]["200"]["content"]["text/csv"] = {
        "schema": {"type": "string"},
        "description": "with `Accept: text/csv` and month=: the payroll file, one row per "
                       "employee-month, every figure and bonus field flattened "
                       "(`bonus.points`), values as in JSON (null, true)"}
    return doc
