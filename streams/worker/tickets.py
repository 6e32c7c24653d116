"""The ticket side: the tickets agent, its store, and reconciling tickets with new orders.

Tickets, escalations, reopens and this generation's ticket notices come in keyed by
ticket; each batch folds its tickets, publishes the employee facts it changed (one bundle
per facts partition), the notices it owes and the contact records of its customers
(rules.py), and writes its tables' changelog before it returns.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, cast

import faust
import orjson
from faust.types import TP

from processors.calendar import epoch_us
from projections.store import BatchKV
from projections.tickets import TicketOutput, TicketProjector
from projections.timers import IndexedKV, TimerIndex
from streams.worker.edge import observe
from streams.worker.facts import FactBundles
from streams.worker.globalstate import GlobalState
from streams.worker.metrics import BatchObservations
from streams.worker.runtime import Runtime
from streams.worker.tables import TableKV

log = logging.getLogger("kpi.worker")

# A key of each tickets store partition: the orders its tickets were reconciled with.
ORDERS_MARKER = "\x00orders-reconciled"
RECONCILE_NOTICE = "kpi.reconcile_orders"


@dataclass(slots=True)
class Owed:
    """What a batch owes other agents, bundled per partition: employee facts and the
    customers' contact records."""

    facts: FactBundles
    contacts: FactBundles


class ReadProgress:
    """Per ticket input partition: the next offset this process has read, and per
    partition number the latest `occurred_at` (µs) of a ticket event processed: the
    alert timer's clock for a partition still catching up (see alerts.py)."""

    def __init__(self) -> None:
        self.read: dict[TP, int] = {}
        self.frontier: dict[int, int] = {}

    def advance(self, last: Any, frontier: int) -> None:
        self.read[TP(last.topic, last.partition)] = last.offset + 1
        if frontier > self.frontier.get(last.partition, -1):
            self.frontier[last.partition] = frontier

    def forget(self) -> None:
        # Read positions of partitions that may have moved: from Faust's committed
        # offsets again (a stale one would hold a partition "behind" for good).
        self.read.clear()


class TicketSide:
    """Owns the tickets and alert-timers stores as the agent writes them, the read
    positions of the ticket inputs, and which orders each partition was reconciled with."""

    def __init__(self, rt: Runtime, state: GlobalState, *, inputs: Any,
                 input_names: list[str], notices: Any) -> None:
        s = self.settings = rt.settings
        self.app, self.metrics, self.edge = rt.app, rt.metrics, rt.edge
        self.cat = cat = state.cat
        self.tables = tables = rt.tables
        self.loaded = state.loaded
        self.inputs = inputs  # the source topics and this generation's notices
        self.input_names = frozenset(input_names)  # the source topics only
        self.notices = notices
        self.notices_name = s.internal_topic("ticket-notices")
        self.facts_name = s.internal_topic("employee-facts")
        self.contacts_name = s.internal_topic("customer-contacts")
        self.sender = tables.sender
        self.kv = BatchKV(TableKV(tables.tickets, direct=tables.tickets_w))
        # The alert timer scans this parsed mirror of the table, kept current by the
        # projector's writes and rebuilt after a rebalance (projections/timers.py).
        self.timer_index = TimerIndex()
        self.timers_kv = BatchKV(IndexedKV(TableKV(tables.timers, direct=tables.timers_w),
                                           self.timer_index))
        self.proj = TicketProjector(self.kv, cat, live=True, alerts=s.alerts,
                                    timers=self.timers_kv)
        # The read side (API, alerts) reads the table directly, never the agent's
        # uncommitted batch cache.
        self.reader = TicketProjector(TableKV(tables.tickets, s.partitions), cat,
                                      live=True, alerts=s.alerts)
        self.progress = ReadProgress()
        self._reconciled: dict[int, int] = {}  # partition -> catalogue revision
        self._reconcile_requested: dict[int, int] = {}

    def attach(self) -> None:
        self.app.agent(self.inputs, name="tickets")(self.agent)
        self.app.timer(1.0)(self.request_reconcile)

    def forget(self) -> None:
        self.proj.forget()
        self.timer_index.invalidate()
        self.progress.forget()

    async def agent(self, stream: faust.StreamT) -> None:
        await self.edge.run_batches(stream, "tickets", self.loaded, self.batch)

    def owed(self) -> Owed:
        partitions = self.settings.partitions
        return Owed(FactBundles(partitions), FactBundles(partitions))

    async def batch(self, records: list[Any]) -> None:
        seen = BatchObservations()
        owed = self.owed()
        frontier = -1
        if records:
            await self.reconcile_orders(records[0].partition, owed)
        for msg in records:
            if msg.topic == self.notices_name:
                notice = orjson.loads(bytes(msg.value))
                if notice.get("type") == RECONCILE_NOTICE:
                    continue  # its work was done above, at the start of the batch
                out = self.proj.apply_notice(notice)
            else:
                ev = await self.edge.decode(msg)
                if ev is None:
                    continue
                out = self.proj.apply_event(ev)
                frontier = max(frontier, epoch_us(ev.occurred_at))
                topic = self.edge.topic_name(msg.topic)
                if out.duplicate:
                    self.metrics.duplicates.labels(topic).inc()
                else:
                    observe(seen, msg, ev, topic)
            await self.emit(out, owed)
        # Sent before the batch returns, so before its offsets can be committed.
        await self.sender.send_bundles(self.facts_name, owed.facts.drain())
        await self.sender.send_bundles(self.contacts_name, owed.contacts.drain())
        self.proj.end_batch()
        self.kv.flush()
        self.timers_kv.flush()
        await self.tables.publish()
        seen.flush(self.metrics, time.time())
        if records and records[0].topic != self.notices_name:
            self.progress.advance(records[-1], frontier)

    async def emit(self, out: TicketOutput, owed: Owed) -> None:
        for emp, fact in out.facts:
            full = owed.facts.add(emp, fact)
            if full is not None:
                await self.sender.send_bundles(self.facts_name, full)
        for ticket_id, notice in out.notices:
            await self.sender.send(self.notices_name, ticket_id.encode(), notice)
        for customer_id, contact in out.contacts:
            full = owed.contacts.add(customer_id, contact)
            if full is not None:
                await self.sender.send_bundles(self.contacts_name, full)
        for priority, outcome, fr_s, res_s in out.outcomes:
            self.metrics.sla_tickets.labels(priority, outcome).inc()
            self.metrics.first_response_seconds.labels(priority).observe(float(fr_s))
            self.metrics.resolution_seconds.labels(priority).observe(float(res_s))

    async def request_reconcile(self) -> None:
        """Wake each owned tickets partition whose store may lag the known orders.

        Reconciling needs the partition's own event context, which only a record of that
        partition gives; a partition with no new records (all read before the order, or
        just moved here) gets one through a notice addressed to it.
        """
        if not self.loaded.is_set() or self.app.rebalancing:
            return
        rev = self.cat.revision
        owned = {tp.partition for tp in self.app.consumer.assignment()
                 if tp.topic == self.notices_name}
        for p in list(self._reconcile_requested):
            if p not in owned:
                del self._reconcile_requested[p]
                self._reconciled.pop(p, None)
        for p in sorted(owned):
            if rev not in (self._reconciled.get(p), self._reconcile_requested.get(p)):
                await self.notices.send(key=b"", partition=p,
                                        value=orjson.dumps({"type": RECONCILE_NOTICE}))
                self._reconcile_requested[p] = rev

    async def reconcile_orders(self, partition: int, owed: Owed) -> None:
        """Bring one partition's tickets up to the orders known now (see `reconcile`).

        Which orders a partition was reconciled with is a key in its own store, written
        in the same batch as the re-folded tickets, so a crash or a move to another
        worker neither skips nor repeats the work. Runs inside the batch's event, so
        every read and write goes to this partition's store and changelog.
        """
        if self._reconciled.get(partition) == self.cat.revision:
            return
        raw = self.kv.get(ORDERS_MARKER)
        done = orjson.loads(raw) if raw is not None else None
        new = self.cat.changed_since(done)
        if new:
            # Faust's store keeps one RocksDB per partition; only this one's keys are ours
            # to rewrite here (Store._db_for_partition is the store's own accessor).
            db = cast(Any, self.tables.tickets.data)._db_for_partition(partition)
            # Skip our marker and Faust's own offset key (b"__faust\0offset__").
            ids = [k.decode() for k in (bytes(k) for k in db.keys())
                   if not k.startswith((b"\x00", b"__faust\x00"))]
            moved = 0
            for out in self.proj.reconcile(ids, new):
                moved += 1
                await self.emit(out, owed)
            if moved:
                log.info("partition %d: %d tickets re-folded under %d new norm order(s)",
                         partition, moved, len(new))
        if new or done is None:
            self.kv.put(ORDERS_MARKER, orjson.dumps(self.cat.digests()))
        self._reconciled[partition] = self.cat.revision
