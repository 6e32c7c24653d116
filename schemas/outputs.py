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
    """sla.warning / sla.breached as published on `sla-alerts` (docs/events.md)."""

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


class DeadLetter(BaseModel):
    """A rejected input record as published on `dead-letters` (schemas/decode.py builds it).

    `value` is the record's original text, or its base64 when it is not UTF-8; `reason`
    is the first fault found, in the order of `DEAD_LETTER_REASONS`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID
    type: Literal["dead_letter"]
    schema_version: int
    occurred_at: AwareDatetime
    topic: str
    partition: int
    offset: int
    key: str | None
    value: str | None
    value_encoding: Literal["text", "base64"]
    reason: Literal["not_utf8", "invalid_json", "unknown_type", "wrong_topic",
                    "unsupported_version", "missing_field", "wrong_type", "invalid_value",
                    "naive_timestamp", "too_late"]
    detail: str


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
    repeat_contacts: int = Field(
        description="contacts charged as repeats: the customer came back within the window "
                    "after a resolution by this employee")
    repeat_contact_rate_pct: Num | None = Field(
        description="100 * repeat_contacts / resolved (null when resolved is 0; it may "
                    "exceed 100: a repeat is dated by the new contact, a resolution by its own"
                    " date)")
    cover_minutes: Num = Field(
        description="the share of absent colleagues' plans earned by work beyond one's own "
                    "plan")


class _EmployeeCore(_Figures):
    """An employee object's identity and figures, shared by API answers and snapshots."""

    employee_id: str
    department_id: str | None
    period: str
    generation: int
    quality_score: Num | None = None
    bonus: Bonus | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_absent_not_null)


class EmployeeFigures(_EmployeeCore):
    """An employee's figures for a day or a month. `quality_score` (possibly null) and
    `bonus` are present for months and absent for days.

    `kpi_minutes`, `plan_minutes` and `attainment_pct` of a month are the whole calendar
    month's (its plan counts every working day, future ones included). Beside them, a
    month object from this API carries its figures to date: the same three over the
    month's days up to and including today (the local date in the order's zone; today's
    plan counts whole). A past month's to-date values equal its whole-month ones; a
    future month has `plan_minutes_to_date` 0, `attainment_to_date_pct` and
    `to_date_through` null. Days and `kpi-employee` snapshots do not carry them."""

    to_date_through: str | None = Field(
        default=None, json_schema_extra=_absent_not_null,
        description="the last day counted to date (YYYY-MM-DD); null for a future month")
    kpi_minutes_to_date: Num | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=_absent_not_null,
        description="KPI minutes of the month's days up to and including today")
    plan_minutes_to_date: Num | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=_absent_not_null,
        description="the plan of the month's days up to and including today")
    attainment_to_date_pct: Num | None = Field(
        default=None, json_schema_extra=_absent_not_null,
        description="100 * kpi_minutes_to_date / plan_minutes_to_date; null when that "
                    "plan is 0")


class DepartmentTotals(_Figures):
    """Summed counts and minutes; percentages from summed numerators and denominators."""

    cover_pool_minutes: Num = Field(
        description="the plans of the period's absent members, which the department's "
                    "cover shares out")


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


class EmployeeSnapshot(_EmployeeCore):
    """kpi.employee_snapshot on `kpi-employee`: an employee object as the API answers it,
    less the month-to-date figures (they move with the clock, not with events), published
    whenever its figures change."""

    type: Literal["kpi.employee_snapshot"]
    event_id: str
    emitted_at: str


# -- lists ---------------------------------------------------------------------------

class _Page(_Strict):
    total: int
    offset: int
    limit: int
    next: str | None = Field(description="the next page's path and query; null on the last")


class DepartmentItem(_Strict):
    department_id: str
    employees: int
    href: str


class DepartmentList(_Page):
    items: list[DepartmentItem]


class EmployeeItem(_Strict):
    employee_id: str
    href: str


class EmployeeList(_Page):
    items: list[EmployeeItem]


class TicketRow(_Strict):
    """A ticket in a list: open ones first, the most urgent first."""

    ticket_id: str
    status: str
    open: bool
    owner: str | None
    department_id: str | None
    priority: str | None
    opened_at: str | None
    sla_state: Literal["breached", "warning", "ok", "none"] = Field(
        description="breached: a target passed; warning: a clock still counting is at 75 % "
                    "of its target or more; none: no SLA target")
    at_risk: bool = Field(description="open, and warning or breached")
    minutes_left: Num | None = Field(
        description="the counting clock nearest its target: negative when overdue")
    nearest_target: Literal["first_response", "resolution"] | None
    due_at: str | None


class TicketList(_Page):
    items: list[TicketRow]
    department_id: str | SkipJsonSchema[None] = Field(None, json_schema_extra=_absent_not_null)
    employee_id: str | SkipJsonSchema[None] = Field(None, json_schema_extra=_absent_not_null)


LIST_MODELS = (DepartmentList, EmployeeList, TicketList)


# Every body the HTTP API answers with (the OpenAPI document's components).
API_RESPONSES: tuple[type[BaseModel], ...] = (EmployeeFigures, DepartmentFigures,
                                               TicketProjection, Health, Error, *LIST_MODELS)
