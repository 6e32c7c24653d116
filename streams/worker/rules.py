"""Repeat contacts and cover: the customers and departments agents and their stores.

Both figures cross the partitioning by ticket and by employee, so each has a projection
keyed by what it needs together, fed through a topic of the generation:

    <gen>-customer-contacts [customer_id]  <- ticket agent: each ticket's contact record
        -> customers agent: every contact of a customer -> repeat facts (kind "c")
    <gen>-department-days [department_id]  <- employee agent: each employee-day summary
        -> departments agent: every member's day -> cover facts (kind "d")

(each batch bundles its records per partition of their key: `streams.worker.facts`)

Both answer on `<gen>-employee-facts` with versioned replacements, which the employee
agent applies once per source, day and version, as it does a ticket's contributions.
Every send happens before the batch returns, so before its offsets are committed.
"""

from __future__ import annotations

from typing import Any, cast

import faust

from projections.customers import CustomerProjector
from projections.departments import DepartmentProjector
from projections.employees import CUSTOMER_ENTRY, DEPARTMENT_ENTRY
from projections.store import BatchKV
from streams.worker.facts import FactBundles, keyed_items
from streams.worker.globalstate import GlobalState
from streams.worker.runtime import Runtime
from streams.worker.tables import TableKV

RECONCILE_NOTICE = b'{"type":"kpi.reconcile_orders"}'


class _RuleSide:
    """What both agents share: their input, the facts they send back, a batch's end."""

    name = ""
    kind = ""

    def __init__(self, rt: Runtime, state: GlobalState, inputs: Any) -> None:
        self.settings = s = rt.settings
        self.app, self.edge, self.tables = rt.app, rt.edge, rt.tables
        self.loaded = state.loaded
        self.inputs = inputs
        self.facts_name = s.internal_topic("employee-facts")
        self.sender = rt.tables.sender
        self.proj: Any = None  # the side's projector, set by the subclass
        self.kv: Any = None  # its batch store

    def attach(self) -> None:
        self.app.agent(self.inputs, name=self.name)(self.agent)

    async def agent(self, stream: faust.StreamT) -> None:
        await self.edge.run_batches(stream, self.name, self.loaded, self.batch)

    async def batch(self, records: list[Any]) -> None:
        raise NotImplementedError

    def bundles(self) -> FactBundles:
        return FactBundles(self.settings.partitions, kind=self.kind)

    async def owe(self, facts: FactBundles, owed: list[tuple[str, bytes]]) -> None:
        for emp, fact in owed:
            full = facts.add(emp, fact)
            if full is not None:
                await self.sender.send_bundles(self.facts_name, full)

    async def finish(self, facts: FactBundles) -> None:
        """The batch's end: the facts still owed, then the store and its changelog."""
        await self.sender.send_bundles(self.facts_name, facts.drain())
        self.proj.end_batch()
        self.kv.flush()
        await self.tables.publish()


class CustomerSide(_RuleSide):
    """Owns the customers store: each customer's contacts and the repeats it charged."""

    name, kind = "customers", CUSTOMER_ENTRY

    def __init__(self, rt: Runtime, state: GlobalState, inputs: Any) -> None:
        super().__init__(rt, state, inputs)
        self.kv = BatchKV(TableKV(rt.tables.customers, direct=rt.tables.customers_w))
        self.proj = CustomerProjector(self.kv)

    def forget(self) -> None:
        self.proj.forget()

    async def batch(self, records: list[Any]) -> None:
        facts = self.bundles()
        # Each customer's contacts of the batch together, in order: the rule runs once per
        # customer and batch (`CustomerProjector.apply_contacts`).
        by_customer: dict[str, list[Any]] = {}
        for msg in records:
            key = None if msg.key is None else bytes(msg.key)
            for customer, contact in keyed_items(key, bytes(msg.value)):
                by_customer.setdefault(customer, []).append(contact)
        for customer, contacts in by_customer.items():
            await self.owe(facts, self.proj.apply_contacts(customer, contacts))
        await self.finish(facts)


class DepartmentSide(_RuleSide):
    """Owns the departments store: each department day's members and the covers it owes.

    A norm order may change a day's plan, and so its pool and every cover: each owned
    partition re-runs its department days once per catalogue revision, at the start of
    its next batch (a timer wakes partitions that have no records of their own).
    """

    name, kind = "departments", DEPARTMENT_ENTRY

    def __init__(self, rt: Runtime, state: GlobalState, inputs: Any) -> None:
        super().__init__(rt, state, inputs)
        self.cat = state.cat
        self.topic_name = rt.settings.internal_topic("department-days")
        self.kv = BatchKV(TableKV(rt.tables.departments, direct=rt.tables.departments_w))
        self.proj = DepartmentProjector(self.kv, state.cat, live=True)
        self._reconciled: dict[int, int] = {}  # partition -> catalogue revision
        self._requested: dict[int, int] = {}

    def attach(self) -> None:
        super().attach()
        self.app.timer(1.0)(self.request_reconcile)

    def forget(self) -> None:
        # A partition that comes back may have been changed by another worker meanwhile.
        self._reconciled.clear()
        self._requested.clear()

    async def batch(self, records: list[Any]) -> None:
        facts = self.bundles()
        if records:
            await self.reconcile(records[0].partition, facts)
        for msg in records:
            key = None if msg.key is None else bytes(msg.key)
            value = bytes(msg.value)
            if key is None and value == RECONCILE_NOTICE:
                continue  # its work was done above
            for department, summary in keyed_items(key, value):
                await self.owe(facts, self.proj.apply_summary(department, summary))
        await self.finish(facts)

    async def reconcile(self, partition: int, facts: FactBundles) -> None:
        """Re-run the rule on every department day of the partition under new orders
        (covers already published are replacements: re-running owes only changes)."""
        revision = self.cat.revision
        if self._reconciled.get(partition) == revision:
            return
        # The store's own accessor for one partition's RocksDB, as the tickets side does.
        db = cast(Any, self.tables.departments.data)._db_for_partition(partition)
        keys = [k.decode() for k in (bytes(k) for k in db.keys())
                if not k.startswith((b"\x00", b"__faust\x00"))]
        self.proj.end_batch()  # reconcile reads the store: write what is pending first
        for key in keys:
            await self.owe(facts, list(self.proj.reconcile([key])))
        self._reconciled[partition] = revision

    async def request_reconcile(self) -> None:
        """Wake each owned partition whose department days may lag the known orders."""
        if not self.loaded.is_set() or self.app.rebalancing:
            return
        revision = self.cat.revision
        owned = {tp.partition for tp in self.app.consumer.assignment()
                 if tp.topic == self.topic_name}
        for p in sorted(owned):
            if revision not in (self._reconciled.get(p), self._requested.get(p)):
                await self.sender.send(self.topic_name, None, RECONCILE_NOTICE, p)
                self._requested[p] = revision

