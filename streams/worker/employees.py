"""The employee side: the employees agent and its store.

Calls, evaluations, roster changes and this generation's employee facts come in keyed by
employee; each batch adds their figures to the employees' days and marks what changed
for the snapshots and gauges (outputs.py) once it is written.
"""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import faust

from projections.employees import EmployeeProjector
from projections.store import BatchKV
from projections.tickets import read_facts
from streams.worker.edge import observe
from streams.worker.facts import FactBundles
from streams.worker.globalstate import GlobalState
from streams.worker.metrics import BatchObservations
from streams.worker.outputs import Gauges, Snapshots
from streams.worker.runtime import Runtime
from streams.worker.tables import TableKV


class EmployeeSide:
    """Owns the employees store as the agent writes it."""

    def __init__(self, rt: Runtime, state: GlobalState, inputs: Any) -> None:
        self.settings = s = rt.settings
        self.app, self.metrics, self.edge = rt.app, rt.metrics, rt.edge
        cat, roster = state.cat, state.roster
        self.roster = roster
        self.tables = tables = rt.tables
        self.loaded = state.loaded
        self.inputs = inputs
        self.facts_name = s.internal_topic("employee-facts")
        self.days_name = s.internal_topic("department-days")
        self.sender = tables.sender
        self.kv = BatchKV(TableKV(tables.employees, direct=tables.employees_w))
        # Days are listed (after a registration) from the partition's RocksDB, which the
        # direct writes reach at once; the batch's unwritten days are the projector's own.
        self.proj = EmployeeProjector(self.kv, cat, roster, live=True, extended=True,
                                      ranges=TableKV(tables.employees, s.partitions))
        # The read side (API, snapshots, gauges) reads the table directly, never the
        # agent's uncommitted batch cache.
        self.reader = EmployeeProjector(TableKV(tables.employees, s.partitions), cat,
                                        roster, live=True, extended=True)
        self.snapshots: Snapshots | None = None
        self.gauges: Gauges | None = None

    def attach(self, snapshots: Snapshots, gauges: Gauges) -> None:
        self.snapshots, self.gauges = snapshots, gauges
        self.app.agent(self.inputs, name="employees")(self.agent)

    def forget(self) -> None:
        self.proj.forget()

    async def agent(self, stream: faust.StreamT) -> None:
        await self.edge.run_batches(stream, "employees", self.loaded, self.batch)

    async def batch(self, records: list[Any]) -> None:
        # Marked for snapshots and gauges only once written: a timer running while this
        # batch awaits (a dead letter's send) must not read the days before they land.
        changed: set[str] = set()
        dirty: set[tuple[str, str]] = set()
        registered: set[str] = set()
        seen = BatchObservations()
        for msg in records:
            touched: list[tuple[str, list[date]]]
            if msg.topic == self.facts_name:
                touched = [(emp, self.proj.apply_fact(emp, fact, kind))
                           for emp, fact, kind in read_facts(bytes(msg.value))]
            else:
                ev = await self.edge.decode(msg)
                if ev is None:
                    continue
                topic = self.edge.topic_name(msg.topic)
                if topic == "roster":
                    # The roster reader may lag this agent by a moment; apply here too so the
                    # snapshot below already sees the absence or the new department.
                    self.roster.apply(ev)
                dup, days = self.proj.apply_event(ev)
                if dup:
                    self.metrics.duplicates.labels(topic).inc()
                    continue
                observe(seen, msg, ev, topic)
                touched = [(ev.employee_id, days)]  # type: ignore[attr-defined]
                if ev.type == "employee.registered":
                    registered.add(ev.employee_id)  # type: ignore[attr-defined]
            for emp, days in touched:
                changed.add(emp)
                for d in days:
                    day = d.isoformat()
                    dirty.add((emp, day))
                    dirty.add((emp, day[:7]))
        await self.summarise(dirty, registered)
        self.proj.end_batch()
        self.kv.flush()
        await self.tables.publish()
        seen.flush(self.metrics, time.time())
        if self.gauges is not None:
            self.gauges.changed(changed)
        if self.snapshots is not None:
            self.snapshots.changed(dirty)

    async def summarise(self, dirty: set[tuple[str, str]], registered: set[str]) -> None:
        """Tell departments about the batch's changed days, once per day and batch (a
        backlog's batch changes a day many times; its department needs the last state).
        A registration summarises every day of the employee for the new department."""
        days: dict[str, set[str]] = {}
        for emp, period in dirty:
            if len(period) == 10:
                days.setdefault(emp, set()).add(period)
        for emp, day in self.proj.again():  # redelivered: its summary may never have left
            days.setdefault(emp, set()).add(day)
        for emp in registered:
            days.setdefault(emp, set()).update(self.proj.days_of(emp))
        bundles = FactBundles(self.settings.partitions)
        for emp in sorted(days):
            # A registration has no id to know it again by: all its days are said again.
            sends = self.proj.summaries(emp, sorted(days[emp]), again=emp in registered)
            for department, summary in sends:
                full = bundles.add(department, summary)
                if full is not None:
                    await self.sender.send_bundles(self.days_name, full)
        await self.sender.send_bundles(self.days_name, bundles.drain())
