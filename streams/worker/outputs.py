"""What the worker publishes about employees: snapshots on `kpi-employee` and the
per-employee Prometheus gauges, each on its own timer."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime
from typing import Any

import orjson
from faust.types import TP

from projections.employees import EmployeeProjector, parse_period
from streams.worker.globalstate import GlobalState
from streams.worker.runtime import Runtime
from streams.worker.tables import partition_of

# Timers computing employee objects (snapshots, gauges) hand the event loop back to the
# agents every so many objects: one object is ~0.1-0.3 ms, and a flush after a backlog or
# a full gauge refresh of a large centre otherwise held every agent for a second or more
# (the p99 of live event latency).
YIELD_EVERY = 50


def set_or_remove(gauge: Any, labels: tuple[str, ...], value: float | None) -> None:
    """A gauge sample is absent, not zero, when its figure is null."""
    if value is not None:
        gauge.labels(*labels).set(value)
        return
    try:
        gauge.remove(*labels)
    except KeyError:
        pass


# Month-to-date figures move with the clock, not with events: a snapshot published when
# the figures changed would go stale at midnight, so snapshots leave them to the API.
_READ_SIDE_ONLY = frozenset(("to_date_through", "kpi_minutes_to_date", "plan_minutes_to_date",
                             "attainment_to_date_pct"))


def snapshot_value(obj: dict[str, Any], emitted_at: datetime) -> bytes:
    """A kpi.employee_snapshot record (schemas/outputs.py `EmployeeSnapshot`) of an
    employee object."""
    figures = {k: v for k, v in obj.items() if k not in _READ_SIDE_ONLY}
    return orjson.dumps({"type": "kpi.employee_snapshot", "event_id": str(uuid.uuid4()),
                         "emitted_at": emitted_at.isoformat(), **figures})


class Snapshots:
    """Publishes the latest state of every (employee, period) changed since its last run."""

    def __init__(self, rt: Runtime, reader: EmployeeProjector) -> None:
        self.settings, self.app, self.metrics = rt.settings, rt.app, rt.metrics
        self.clock = rt.clock
        self.reader = reader
        self.sender = rt.tables.sender
        self.topic_name = rt.settings.topic("kpi-employee")
        self._dirty: set[tuple[str, str]] = set()

    def attach(self) -> None:
        self.app.timer(self.settings.snapshot_interval)(self.flush)

    def changed(self, dirty: set[tuple[str, str]]) -> None:
        self._dirty |= dirty

    async def flush(self) -> None:
        """Publish the latest state of every changed (employee, period)."""
        if not self._dirty or not self.settings.snapshots:
            self._dirty.clear()
            return
        dirty, self._dirty = self._dirty, set()
        gen = self.settings.generation
        todo = sorted(dirty)
        for i, (emp, period) in enumerate(todo):
            if i and i % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # see YIELD_EVERY
                if self.app.rebalancing:  # partitions may be moving: finish afterwards
                    self._dirty.update(todo[i:])
                    return
            obj = self.reader.employee(emp, parse_period(period), gen)
            await self.sender.send(self.topic_name, emp.encode(),
                                   snapshot_value(obj, self.clock()))
            self.metrics.snapshots.inc()


class Gauges:
    """Per-employee gauges for the employees this worker owns, and only those.

    Recomputed on a timer rather than on change, so that "today" rolls over at midnight
    and gauges of partitions that moved away disappear (sums across workers stay right).
    """

    def __init__(self, rt: Runtime, state: GlobalState, reader: EmployeeProjector) -> None:
        self.settings, self.app, self.metrics = rt.settings, rt.app, rt.metrics
        self.cat, self.roster, self.loaded = state.cat, state.roster, state.loaded
        self.today = state.today
        self.reader = reader
        self.facts_name = rt.settings.internal_topic("employee-facts")
        self._seen: set[str] = set()
        self._labels: dict[str, tuple[str, str]] = {}
        # Employees changed since the last refresh; the others keep their gauges until
        # the next full refresh (a new day, a new norm order, or once a minute).
        self._dirty: set[str] = set()
        self._basis: tuple[str, int] | None = None  # (today, catalogue revision)
        self._full_at = 0.0

    def attach(self) -> None:
        self.app.timer(self.settings.gauge_interval)(self.refresh)

    def changed(self, employees: set[str]) -> None:
        self._seen |= employees
        self._dirty |= employees

    def owns(self, topic: str, key: str, assignment: set[TP]) -> bool:
        """Does this worker own the partition of `key` on `topic` right now?"""
        return TP(topic, partition_of(key, self.settings.partitions)) in assignment

    def _full_refresh(self, today: str) -> bool:
        """Recomputing two employee objects for every employee every few seconds was most
        of a live worker's CPU for a large centre: only changed employees are, except on
        a full refresh."""
        basis = (today, self.cat.revision)
        full = (basis != self._basis or time.monotonic() - self._full_at
                >= self.settings.gauge_full_refresh)
        if full:
            self._basis, self._full_at = basis, time.monotonic()
        return full

    async def refresh(self) -> None:
        if not self.loaded.is_set() or self.app.rebalancing:
            return
        today = self.today()
        day, month = parse_period(today), parse_period(today[:7])
        gen = self.settings.generation
        wanted: dict[str, tuple[str, str]] = {}
        m = self.metrics
        assignment = self.app.consumer.assignment()
        full = self._full_refresh(today)
        dirty, self._dirty = self._dirty, set()
        computed = 0
        for emp in sorted(set(self.roster.employees()) | self._seen):
            if not self.owns(self.facts_name, emp, assignment) or not self.reader.known(emp):
                continue
            labels = (emp, self.roster.department_of(emp) or "")
            wanted[emp] = labels
            if not full and emp not in dirty and self._labels.get(emp) == labels:
                continue
            computed += 1
            if computed % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # see YIELD_EVERY
                if self.app.rebalancing:  # the assignment read above may be stale
                    self._dirty |= dirty
                    self._basis = None  # recompute every gauge next time
                    return
            d = self.reader.employee(emp, day, gen)
            mo = self.reader.employee(emp, month, gen)
            m.employee_minutes.labels(*labels).set(d["kpi_minutes"])
            set_or_remove(m.employee_attainment, labels,
                          None if d["attainment_pct"] is None else d["attainment_pct"] / 100)
            set_or_remove(m.employee_bonus, labels, mo["bonus"]["bonus_pct"])
            m.employee_repeat_contacts.labels(*labels).set(mo["repeat_contacts"])
            m.employee_resolved.labels(*labels).set(mo["resolved"])
            m.employee_cover.labels(*labels).set(mo["cover_minutes"])
        for emp, labels in self._labels.items():
            if wanted.get(emp) != labels:
                for g in (m.employee_minutes, m.employee_attainment, m.employee_bonus,
                          m.employee_repeat_contacts, m.employee_resolved, m.employee_cover):
                    set_or_remove(g, labels, None)
        self._labels = wanted
