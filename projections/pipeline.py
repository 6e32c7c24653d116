"""The pure fold: the whole topology in one process, with no broker and no Faust.

Tests compare the worker's API with this, and replays are checked against it: it routes
ticket facts and notices, contact facts (to the customer projection), employee-day
summaries (to the department projection) and the replacements those two owe employees
directly instead of through Kafka, and nothing else differs.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson

from processors.calendar import NormOrder, OrderCatalogue
from projections.customers import CustomerProjector
from projections.departments import DepartmentProjector
from projections.employees import (
    CUSTOMER_ENTRY,
    DEPARTMENT_ENTRY,
    EmployeeProjector,
    Period,
    parse_period,
)
from projections.roster import Roster
from projections.store import MemoryKV, counted_version
from projections.tickets import TicketOutput, TicketProjector
from schemas.events import Event, NormOrderIssued
from schemas.topics import topic_for_type

TICKET_TOPICS = frozenset({"tickets", "escalations", "reopens"})


@dataclass
class Pipeline:
    """Folds validated events through every projection in memory."""

    live: bool = True
    cat: OrderCatalogue = field(default_factory=OrderCatalogue)
    roster: Roster = field(default_factory=Roster)
    tickets_kv: MemoryKV = field(default_factory=MemoryKV)
    employees_kv: MemoryKV = field(default_factory=MemoryKV)
    customers_kv: MemoryKV = field(default_factory=MemoryKV)
    departments_kv: MemoryKV = field(default_factory=MemoryKV)
    generation: int = 1
    applied: int = 0
    duplicates: int = 0
    # Events per batch in apply_all, as a worker's fetched batch: state changed within a
    # batch is written once at its end (`end_batch`), as in the worker.
    batch_size: int = 500
    # Whether the objects answered carry the repeat-contact and cover figures (they are
    # computed either way), as the worker's do.
    extended: bool = True

    def __post_init__(self) -> None:
        self.tickets = TicketProjector(self.tickets_kv, self.cat, live=self.live)
        self.employees = EmployeeProjector(self.employees_kv, self.cat, self.roster,
                                           live=self.live, extended=self.extended)
        self.customers = CustomerProjector(self.customers_kv)
        self.departments = DepartmentProjector(self.departments_kv, self.cat, live=self.live)
        # Nothing here recovers from a changelog: versions count, so a fold is reproducible.
        for side in (self.employees, self.customers, self.departments):
            side.versions = counted_version
        # (employee, day) pairs changed in the current batch, summarised at its end
        self._pending: set[tuple[str, date]] = set()
        # Contact records of the current batch by customer, applied at its end (the
        # repeat rule runs once per customer and batch, as in the worker)
        self._contacts: dict[str, list[bytes]] = {}

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
        """Apply the batch's contact records, summarise its changed days for their
        departments, apply the covers they owe, and write what the batch changed (as a
        worker does before it commits)."""
        self._flush_contacts()
        self._flush_summaries()
        self.tickets.end_batch()
        self.employees.end_batch()
        self.customers.end_batch()
        self.departments.end_batch()

    def apply_one(self, ev: Event) -> None:
        """Apply one event within the current batch (see `end_batch`)."""
        topic = topic_for_type(ev.type).name
        if topic == "norm-orders":
            assert isinstance(ev, NormOrderIssued)
            self._add_order(NormOrder.from_event(ev))
            self.applied += 1
            return
        if topic in TICKET_TOPICS:
            out = self.tickets.apply_event(ev)
            self._route(out)
            dup = out.duplicate
        else:
            if topic == "roster":
                self.roster.apply(ev)
            dup, days = self.employees.apply_event(ev)
            employee_id: str = ev.employee_id  # type: ignore[attr-defined]
            if ev.type == "employee.registered":
                # a new department: every day of the employee is summarised for it (and
                # the department left is told so)
                days = [date.fromisoformat(d) for d in self.employees.days_of(employee_id)]
            self._summarise(employee_id, days)
        if dup:
            self.duplicates += 1
        else:
            self.applied += 1

    def _add_order(self, order: NormOrder) -> None:
        if not self.cat.add(order):
            return
        # As the worker does: tickets already folded without this order move now (all of
        # them: write the batch's state first so the stores list them), and department
        # days re-run with the plans it sets.
        self.end_batch()
        for out in self.tickets.reconcile(list(self.tickets_kv.keys()), [order]):
            self._route(out)
        self.end_batch()
        for emp, fact in self.departments.reconcile(list(self.departments_kv.keys())):
            self.employees.apply_fact(emp, fact, DEPARTMENT_ENTRY)

    def _route(self, first: TicketOutput) -> None:
        """A ticket's output, and what follows from it until nothing more does."""
        queue: deque[TicketOutput] = deque([first])
        while queue:
            out = queue.popleft()
            for emp, fact in out.facts:
                self._summarise(emp, self.employees.apply_fact(emp, fact))
            for customer, contact in out.contacts:
                self._contacts.setdefault(customer, []).append(contact)
            for _, raw in out.notices:
                queue.append(self.tickets.apply_notice(orjson.loads(raw)))

    def _flush_contacts(self) -> None:
        """Apply the batch's contact records, each customer's together; the repeats they
        owe go to employees (a repeat changes no day's kpi_minutes: no summary follows)."""
        contacts, self._contacts = self._contacts, {}
        for customer, records in contacts.items():
            for emp, fact in self.customers.apply_contacts(customer, records):
                self.employees.apply_fact(emp, fact, CUSTOMER_ENTRY)

    def _summarise(self, employee_id: str, days: Iterable[date]) -> None:
        """Note days whose summary may have moved; they are summarised once per batch (a
        backlog's batch changes a day many times, its department needs the last state)."""
        self._pending.update((employee_id, d) for d in days)

    def _flush_summaries(self) -> None:
        """Tell departments about the batch's changed days; apply the covers they owe in
        return (a cover changes no day's kpi_minutes, so nothing more follows)."""
        by_employee: dict[str, list[date]] = {}
        for employee_id, d in sorted(self._pending):
            by_employee.setdefault(employee_id, []).append(d)
        self._pending.clear()
        for employee_id, days in by_employee.items():
            for department, summary in self.employees.summaries(employee_id, days):
                for emp, fact in self.departments.apply_summary(department, summary):
                    self.employees.apply_fact(emp, fact, DEPARTMENT_ENTRY)

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
        if not self.employees.known(employee_id):
            return None
        at = now or datetime.now(UTC)
        p: Period = dataclasses.replace(parse_period(period),
                                        today=self.cat.local_date(at, at))
        return self.employees.employee(employee_id, p, self.generation)

    def department(self, department_id: str, period: str) -> dict[str, Any] | None:
        if department_id not in self.roster.departments():
            return None
        return self.employees.department(department_id, parse_period(period), self.generation)
