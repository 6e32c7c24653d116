"""The pure fold: the whole topology in one process, with no broker and no Faust.

Tests compare the worker's API with this, and replays are checked against it: it routes
ticket facts and notices directly instead of through Kafka, and nothing else differs.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from processors.calendar import NormOrder, OrderCatalogue
from projections.employees import EmployeeProjector, Period
from projections.roster import Roster
from projections.store import MemoryKV
from projections.tickets import TicketProjector
from schemas.events import Event, NormOrderIssued
from schemas.topics import topic_for_type

TICKET_TOPICS = frozenset({"tickets", "escalations", "reopens"})


@dataclass
class Pipeline:
    """Folds validated events through both projections in memory."""

    live: bool = True
    cat: OrderCatalogue = field(default_factory=OrderCatalogue)
    roster: Roster = field(default_factory=Roster)
    tickets_kv: MemoryKV = field(default_factory=MemoryKV)
    employees_kv: MemoryKV = field(default_factory=MemoryKV)
    generation: int = 1
    applied: int = 0
    duplicates: int = 0
    # Events per batch in apply_all, as a worker's fetched batch: state changed within a
    # batch is written once at its end (`end_batch`), as in the worker.
    batch_size: int = 500

    def __post_init__(self) -> None:
        self.tickets = TicketProjector(self.tickets_kv, self.cat, live=self.live)
        self.employees = EmployeeProjector(self.employees_kv, self.cat, self.roster,
                                           live=self.live)

    def load_orders(self, events: Iterable[Event]) -> None:
        """Make orders known before anything else (a worker loads the topic first)."""
        for ev in events:
            if isinstance(ev, NormOrderIssued):
                self.cat.add(NormOrder.from_event(ev))

    def apply(self, ev: Event) -> None:
        """Apply one event as a batch of its own."""
        self.apply_one(ev)
        self.end_batch()

    def end_batch(self) -> None:
        """Write what the batch changed (as a worker does before it commits)."""
        self.tickets.end_batch()
        self.employees.end_batch()

    def apply_one(self, ev: Event) -> None:
        """Apply one event within the current batch (see `end_batch`)."""
        topic = topic_for_type(ev.type).name
        if topic == "norm-orders":
            assert isinstance(ev, NormOrderIssued)
            order = NormOrder.from_event(ev)
            if self.cat.add(order):
                # As the worker does: tickets already folded without this order move now
                # (all of them: write the batch's tickets first so the store lists them).
                self.end_batch()
                for out in self.tickets.reconcile(list(self.tickets_kv.keys()), [order]):
                    self._route(out.facts, out.notices)
            self.applied += 1
            return
        if topic in TICKET_TOPICS:
            out = self.tickets.apply_event(ev)
            self._route(out.facts, out.notices)
            dup = out.duplicate
        else:
            if topic == "roster":
                self.roster.apply(ev)
            dup, _ = self.employees.apply_event(ev)
        if dup:
            self.duplicates += 1
        else:
            self.applied += 1

    def _route(self, facts: list[tuple[str, bytes]], notices: list[tuple[str, bytes]]) -> None:
        queue: deque[tuple[str, bytes]] = deque(notices)
        for emp, fact in facts:
            self.employees.apply_fact(emp, fact)
        while queue:
            _, raw = queue.popleft()
            out = self.tickets.apply_notice(orjson.loads(raw))
            for emp, fact in out.facts:
                self.employees.apply_fact(emp, fact)
            queue.extend(out.notices)

    def apply_all(self, events: Iterable[Event]) -> Pipeline:
        """Fold events in order; a replay (live=False) knows every order from the start."""
        if not self.live:
            events = list(events)
            self.load_orders(events)
        n = 0
        for ev in events:
            self.apply_one(ev)
            n += 1
            if n % self.batch_size == 0:
                self.end_batch()
        self.end_batch()
        return self

    def employee(self, employee_id: str, period: str, *,
                 now: datetime | None = None) -> dict[str, Any] | None:
        """The employee object as the API answers it: a month also carries its figures to
        date, today being the local date of `now` (the clock when not given) in the
        order's zone, as a worker reckons it."""
        from projections.employees import parse_period

        if not self.employees.known(employee_id):
            return None
        at = now or datetime.now(UTC)
        p: Period = dataclasses.replace(parse_period(period),
                                        today=self.cat.local_date(at, at))
        return self.employees.employee(employee_id, p, self.generation)
