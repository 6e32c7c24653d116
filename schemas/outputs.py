"""What the engine outputs, declared once: the records it publishes (SLA alerts, employee
snapshots) and the bodies its HTTP API answers with. The OpenAPI document and the JSON
Schemas are generated from these models.

The API models mirror what the builders return (processors/figures.py `employee_object`
and `department_totals`, processors/ticket.py `describe`, the health view, the error
body); tests check the real builders against them.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonDict, SkipJsonSchema

_ALERT_NAMESPACE = uuid.UUID("2d6f7a4e-93c1-4b8a-8f0e-5a7c1d2e3f40")


def alert_event_id(ticket_id: str, target: str, kind: str) -> uuid.UUID:
    """Deterministic per (ticket, target, kind): a redelivery after a crash has the same id."""
    return uuid.uuid5(_ALERT_NAMESPACE, f"{ticket_id}\x1f{target}\x1f{kind}")


class SlaAlert(BaseModel):
    """sla.warning / sla.breached as published on `sla-alerts` (contract rule 6)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID
    type: Literal["sla.warning", "sla.breached"]
    schema_version: int
    occurred_at: AwareDatetime
    ticket_id: str
    target: Literal["first_response", "resolution"]
    priority: Literal["P1", "P2", "P3", "P4"]
    employee_id: str | None
    department_id: str | None
    due_at: AwareDatetime | None
    target_minutes: float
    elapsed_minutes: float


Num = float  # JSON Schema "number" takes integers too


def _absent_not_null(schema: JsonDict) -> None:
    """For keys that may be missing but are never null: drop the `default: null` that
    pydantic writes, which would contradict the (non-null) type."""
    schema.pop("default", None)


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


class EmployeeSnapshot(EmployeeFigures):
    """kpi.employee_snapshot on `kpi-employee`: an employee object as the API answers it,
    published whenever its figures change."""

    type: Literal["kpi.employee_snapshot"]
    event_id: str
    emitted_at: str


# Every body the HTTP API answers with (the OpenAPI document's components).
API_RESPONSES: tuple[type[BaseModel], ...] = (EmployeeFigures, DepartmentFigures,
                                               TicketProjection, Health, Error)
