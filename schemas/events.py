"""Input event models (docs/events.md): one frozen, strict pydantic model per event type."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

Priority = Literal["P1", "P2", "P3", "P4"]
Channel = Literal["call", "chat", "email", "crm", "portal"]
Origin = Literal["auto", "manual"]
# A strict int, not Literal[1, 2, 3]: a Literal also accepts true and 1.0 (equal to 1).
Line = Annotated[int, Field(ge=1, le=3)]
TicketStatus = Literal["open", "in_progress", "waiting_customer"]
Id = Annotated[str, Field(min_length=1, max_length=200)]
NonNegDecimal = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]


class Event(BaseModel):
    """The envelope every input event carries."""

    model_config = ConfigDict(frozen=True, strict=True, extra="ignore")

    event_id: UUID
    type: str
    schema_version: Annotated[int, Field(ge=1)]
    occurred_at: AwareDatetime


class TicketOpened(Event):
    type: Literal["ticket.opened"]
    ticket_id: Id
    employee_id: Id
    department_id: Id
    line: Line = 1
    priority: Priority
    channel: Channel
    origin: Origin
    customer_id: Id
    call_id: Id | None = None
    decisions: list[Id]


class TicketDecisionsAdded(Event):
    type: Literal["ticket.decisions_added"]
    ticket_id: Id
    employee_id: Id
    decisions: list[Id]


class TicketFirstResponse(Event):
    type: Literal["ticket.first_response"]
    ticket_id: Id
    employee_id: Id


class TicketStatusChanged(Event):
    type: Literal["ticket.status_changed"]
    ticket_id: Id
    status: TicketStatus


class TicketResolved(Event):
    type: Literal["ticket.resolved"]
    ticket_id: Id
    employee_id: Id


class TicketClosed(Event):
    type: Literal["ticket.closed"]
    ticket_id: Id


class TicketMerged(Event):
    type: Literal["ticket.merged"]
    ticket_id: Id
    into_ticket_id: Id


class CallCompleted(Event):
    type: Literal["call.completed"]
    call_id: Id
    employee_id: Id
    department_id: Id
    direction: Literal["inbound", "outbound"]
    started_at: AwareDatetime
    answered_at: AwareDatetime | None = None
    ended_at: AwareDatetime
    talk_seconds: NonNegDecimal
    hold_seconds: NonNegDecimal
    wrap_up_seconds: NonNegDecimal
    customer_id: Id
    ticket_id: Id | None = None


class TicketEscalated(Event):
    type: Literal["ticket.escalated"]
    ticket_id: Id
    from_employee_id: Id
    from_line: Line
    to_line: Line
    reason: str


class TicketEscalationReturned(Event):
    type: Literal["ticket.escalation_returned"]
    ticket_id: Id
    by_employee_id: Id
    reason: str


class TicketReopened(Event):
    type: Literal["ticket.reopened"]
    ticket_id: Id
    reason: str


class SlaTarget(BaseModel):
    model_config = ConfigDict(frozen=True, strict=True, extra="ignore")

    first_response_minutes: Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
    resolution_minutes: Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
    business_hours: bool


class CalendarSpec(BaseModel):
    model_config = ConfigDict(frozen=True, strict=True, extra="ignore")

    timezone: str
    workdays: list[Annotated[int, Field(ge=1, le=7)]]
    work_start: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
    work_end: Annotated[str, Field(pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$")]
    holidays: list[date] = []
    extra_workdays: list[date] = []

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except Exception as exc:  # unknown key, bad path, empty: an invalid value
            raise ValueError(f"unknown time zone {v[:80]!r}") from exc
        return v


class NormOrderIssued(Event):
    type: Literal["norm_order.issued"]
    order_id: Id
    number: int
    effective_from: date
    decision_weights: dict[str, NonNegDecimal]
    daily_plan_minutes: NonNegDecimal
    sla_goal_pct: Annotated[Decimal, Field(ge=0, le=100, allow_inf_nan=False)]
    sla_targets: dict[Priority, SlaTarget]
    calls_per_hour_target: Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
    calendar: CalendarSpec
    bonus_scale: dict[str, NonNegDecimal]
    # Days of the repeat-contact window; absent or null means 7. A strict int: 7.0,
    # "7" and true are wrong types, not 7.
    repeat_window_days: Annotated[int, Field(ge=1)] | None = None


class QualityEvaluated(Event):
    type: Literal["quality.evaluated"]
    employee_id: Id
    dialog_id: Id
    scores: list[Annotated[int, Field(ge=1, le=4)]]


class CsatRated(Event):
    type: Literal["csat.rated"]
    ticket_id: Id
    employee_id: Id
    score: Annotated[int, Field(ge=1, le=5)]


class EmployeeRegistered(Event):
    type: Literal["employee.registered"]
    employee_id: Id
    department_id: Id
    line: Line
    name: str


class EmployeeAbsent(Event):
    type: Literal["employee.absent"]
    employee_id: Id
    date: date


EVENT_MODELS: dict[str, type[Event]] = {
    m.model_fields["type"].annotation.__args__[0]: m  # type: ignore[union-attr]
    for m in (
        TicketOpened,
        TicketDecisionsAdded,
        TicketFirstResponse,
        TicketStatusChanged,
        TicketResolved,
        TicketClosed,
        TicketMerged,
        CallCompleted,
        TicketEscalated,
        TicketEscalationReturned,
        TicketReopened,
        NormOrderIssued,
        QualityEvaluated,
        CsatRated,
        EmployeeRegistered,
        EmployeeAbsent,
    )
}
