"""One topic registry: each topic's name, key field and the event types it carries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key_field: str | None
    types: frozenset[str]
    direction: Literal["in", "out", "internal"]


INPUT_TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("tickets", "ticket_id", frozenset({
        "ticket.opened", "ticket.decisions_added", "ticket.first_response",
        "ticket.status_changed", "ticket.resolved", "ticket.closed", "ticket.merged",
    }), "in"),
    TopicSpec("calls", "employee_id", frozenset({"call.completed"}), "in"),
    TopicSpec("escalations", "ticket_id",
              frozenset({"ticket.escalated", "ticket.escalation_returned"}), "in"),
    TopicSpec("reopens", "ticket_id", frozenset({"ticket.reopened"}), "in"),
    TopicSpec("norm-orders", "order_id", frozenset({"norm_order.issued"}), "in"),
    TopicSpec("evaluations", "employee_id", frozenset({"quality.evaluated", "csat.rated"}),
              "in"),
    TopicSpec("roster", "employee_id", frozenset({"employee.registered", "employee.absent"}),
              "in"),
)
OUTPUT_TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("kpi-employee", "employee_id", frozenset({"kpi.employee_snapshot"}), "out"),
    TopicSpec("sla-alerts", "ticket_id", frozenset({"sla.warning", "sla.breached"}), "out"),
    TopicSpec("dead-letters", None, frozenset({"dead_letter"}), "out"),
)
TOPICS: dict[str, TopicSpec] = {t.name: t for t in (*INPUT_TOPICS, *OUTPUT_TOPICS)}
_BY_TYPE: dict[str, TopicSpec] = {ty: t for t in INPUT_TOPICS for ty in t.types}


def topic_for_type(event_type: str) -> TopicSpec:
    """The input topic that carries an event type (KeyError for unknown types)."""
    return _BY_TYPE[event_type]


def prefixed(name: str, prefix: str) -> str:
    return f"{prefix}{name}"
