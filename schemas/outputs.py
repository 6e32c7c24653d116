"""Output records: SLA alerts (their ids are derived, so a re-send carries the same id)."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

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
