"""The Faust worker: wiring only. Decode at the edge, call the projectors, write, send, count.

Topology (keys, or the partition's key, in brackets):

    tickets, escalations, reopens, <gen>-ticket-notices   [ticket_id]
        -> ticket agent: tickets table (history, clocks, published contributions)
        -> <gen>-employee-facts [employee_id's partition: one bundle per partition and
           batch], <gen>-ticket-notices (merges, alerts sent)
    calls, evaluations, roster, <gen>-employee-facts      [employee_id]
        -> employee agent: employees table (per-day additive figures)
        -> kpi-employee snapshots, gauges
    norm-orders, roster -> read in full by every worker (orders catalogue, roster)
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from typing import Any, cast

import faust
import orjson
from faust.types import TP
from kafka.partitioner.default import murmur2

from processors.calendar import NormOrder, OrderCatalogue, epoch_us, from_epoch_us, with_cutoff
from projections.employees import EmployeeProjector, Period, parse_period
from projections.roster import Roster
from projections.store import BatchKV, rocks_prefix_items
from projections.tickets import (
    TicketOutput,
    TicketProjector,
    alert_sent_notice,
    fact_bundle,
    read_facts,
)
from projections.timers import IndexedKV, TimerIndex
from schemas.decode import Rejection, dead_letter_value, decode
from schemas.events import Event, NormOrderIssued
from schemas.topics import INPUT_TOPICS
from streams.api.web import register_web
from streams.settings import Settings
from streams.worker.changelog import DirectSender, DirectTable
from streams.worker.fastpath import RecordBatch, fetch_wait_for
from streams.worker.generations import registry_topic
from streams.worker.memory import trim
from streams.worker.metrics import BatchObservations, Metrics
from streams.worker.store import budget_usage

log = logging.getLogger("kpi.worker")

TICKET_INPUTS = ("tickets", "escalations", "reopens")
EMPLOYEE_INPUTS = ("calls", "evaluations", "roster")
GLOBAL_INPUTS = ("norm-orders", "roster")
# A key of each tickets store partition: the orders its tickets were reconciled with.
ORDERS_MARKER = "\x00orders-reconciled"
RECONCILE_NOTICE = "kpi.reconcile_orders"


class TableKV:
    """A Faust table (raw keys and values) behind the projectors' KV interface."""

    def __init__(self, table: Any, partitions: int = 0,
                 direct: DirectTable | None = None) -> None:
        self.table = table
        self.partitions = partitions
        # The agents' write path (streams/worker/changelog.py); None: Faust's table as is.
        self.direct = direct

    def scoped(self, owner: str) -> Any:
        """Reads of keys stored in `owner`'s partition (a ticket's, an employee's keys),
        straight from that partition's RocksDB. Outside an event, Faust's table looks a
        key up in every partition, twice (`in`, then the read): that was most of what
        snapshots and gauges cost a live worker. Falls back to the table when the
        partition is not open here."""
        if self.partitions <= 0:
            return self
        db = getattr(self.table.data, "_dbs", {}).get(partition_of(owner, self.partitions))
        return self if db is None else PartitionReader(db)

    def get(self, key: str) -> bytes | None:
        if self.direct is not None:
            return _as_bytes(self.direct.get(key.encode()))
        return _as_bytes(self.table.get(key.encode()))

    def put(self, key: str, value: bytes) -> None:
        if self.direct is not None:
            self.direct.put(key.encode(), value)
        else:
            self.table[key.encode()] = value

    def delete(self, key: str) -> None:
        if self.direct is not None:
            self.direct.put(key.encode(), None)
        else:
            self.table.pop(key.encode(), None)


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a key (and so the table partition
    holding every key written while processing it)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


class PartitionReader:
    """One partition's RocksDB of a table, read-only, behind the KV interface."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def get(self, key: str) -> bytes | None:
        return _as_bytes(self.db.get(key.encode()))

    def prefix_items(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        return rocks_prefix_items(self.db, prefix)

    def put(self, key: str, value: bytes) -> None:
        raise TypeError("a partition reader is read-only")

    def delete(self, key: str) -> None:
        raise TypeError("a partition reader is read-only")


def queued_records(events: Iterable[Any]) -> int:
    """The Kafka records that queued agent events stand for (a batch counts its records)."""
    return sum(len(e.value.records) if isinstance(e.value, RecordBatch) else 1 for e in events)


def _as_bytes(value: Any) -> Any:
    """Table values are bytes, or a bytes-like view straight from RocksDB."""
    return value if value is None or isinstance(value, bytes) else bytes(value)


def _set_or_remove(gauge: Any, labels: tuple[str, ...], value: float | None) -> None:
    """A gauge sample is absent, not zero, when its figure is null."""
    if value is not None:
        gauge.labels(*labels).set(value)
        return
    try:
        gauge.remove(*labels)
    except KeyError:
        pass


@functools.lru_cache(maxsize=65_536)
def _ticket_partition(ticket_id: str, partitions: int) -> int:
    """A ticket's partition (its key's), memoised: the alert timer asks every half second
    for the open tickets of partitions catching up, and murmur2 is Python code."""
    return partition_of(ticket_id, partitions)


def _snapshot_id() -> str:
    return str(uuid.uuid4())


# Timers computing employee objects (snapshots, gauges) hand the event loop back to the
# agents every so many objects: one object is ~0.1-0.3 ms, and a flush after a backlog or
# a full gauge refresh of a large centre otherwise held every agent for a second or more
# (the p99 of live event latency).
YIELD_EVERY = 50


class FactBundles:
    """One batch's employee facts, grouped by the facts partition of their employee.

    Each bundle becomes one record (`projections.tickets.fact_bundle`); a bundle is
    handed out for sending as soon as it reaches `limit` bytes (a norm-order reconcile
    may re-publish a whole partition), the rest by `drain()` at the end of the batch.
    """

    def __init__(self, partitions: int, limit: int = 128 * 1024) -> None:
        self.partitions = partitions
        self.limit = limit
        self._facts: dict[int, list[tuple[str, bytes]]] = {}
        self._size: dict[int, int] = {}

    def add(self, employee_id: str, fact: bytes) -> list[tuple[int, bytes]] | None:
        p = partition_of(employee_id, self.partitions)
        self._facts.setdefault(p, []).append((employee_id, fact))
        size = self._size[p] = self._size.get(p, 0) + len(fact) + len(employee_id) + 8
        if size < self.limit:
            return None
        self._size[p] = 0
        return [(p, fact_bundle(self._facts.pop(p)))]

    def drain(self) -> list[tuple[int, bytes]]:
        out = [(p, fact_bundle(facts)) for p, facts in sorted(self._facts.items())]
        self._facts.clear()
        self._size.clear()
        return out


class KpiWorker:
    """One worker process: the Faust app plus the state that every worker holds in full."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.settings = s = settings
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.live = True
        self.cat = OrderCatalogue()
        self.roster = Roster()
        self.loaded = asyncio.Event()
        self.broker_error: str | None = None
        self._global_consumer: Any = None
        self._dirty: set[tuple[str, str]] = set()
        self._seen_employees: set[str] = set()
        self._gauge_labels: dict[str, tuple[str, str]] = {}
        # Employees changed since the last gauge refresh; the others keep their gauges
        # until the next full refresh (a new day, a new norm order, or once a minute).
        self._gauge_dirty: set[str] = set()
        self._gauge_basis: tuple[str, int] | None = None  # (today, catalogue revision)
        self._gauge_full_at = 0.0
        self._prefix_len = len(s.topic_prefix)
        self.app = faust.App(
            # The topic prefix isolates tenants: group, changelogs and local state too.
            f"{s.topic_prefix}{s.app_id}",
            version=s.generation,
            broker=[f"{'kpikafka' if s.fast_path else 'kafka'}://{b}" for b in s.bootstrap_list],
            broker_credentials=self._credentials(),
            store="kpirocksdb://",  # streams/worker/store.py: one memory budget
            datadir=str(s.data_dir),
            web_host=s.web_host,
            web_port=s.web_port,
            web_bind=s.web_host,
            canonical_url=f"http://{s.web_host}:{s.web_port}",
            web_router_enabled=False,
            web_tables_enabled=False,
            web_graph_enabled=False,
            web_stats_enabled=False,
            web_metrics_enabled=False,
            topic_partitions=s.partitions,
            topic_replication_factor=s.replication_factor,
            topic_allow_declare=True,
            broker_session_timeout=s.session_timeout,
            broker_heartbeat_interval=min(3.0, s.session_timeout / 3),
            broker_rebalance_timeout=max(30.0, s.session_timeout * 3),
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            producer_linger=s.producer_linger_ms / 1000,
            producer_max_batch_size=s.producer_batch_kb * 1024,
            consumer_max_fetch_size=s.fetch_max_kb * 1024,
            broker_max_poll_records=s.max_poll_records,
            broker_commit_interval=s.commit_interval,
            stream_wait_empty=False,
            table_standby_replicas=s.standby_replicas,
            logging_config=None,
            loghandlers=[],
        )
        app = self.app
        # Read by the fast path's consumer thread (streams/worker/fastpath.py). A worker starts
        # as if behind (it may be, after downtime); the first lag it measures, within a
        # broker probe interval, sets the wait it runs with (_pace_fetches).
        cast(Any, app).kpi_fetch_max_wait_ms = s.backlog_fetch_max_wait_ms
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        self.ticket_topic_names = [s.topic(t) for t in TICKET_INPUTS]
        self._ticket_inputs = frozenset(self.ticket_topic_names)
        self.notices_name = s.internal_topic("ticket-notices")
        self.facts_name = s.internal_topic("employee-facts")
        self.employee_topic_names = [s.topic(t) for t in EMPLOYEE_INPUTS]
        # The agents' inputs: on the fast path each queued message is a fetched chunk, so
        # settings.buffer_batches bounds the queue in chunks; the consumer stops fetching a
        # partition while its agent's queue is near full, which bounds what a backlog
        # holds in memory at (agents x chunks x fetch size).
        self.ticket_topics = app.topic(*self.ticket_topic_names, self.notices_name, **raw)
        self.employee_topics = app.topic(*self.employee_topic_names, self.facts_name, **raw)
        self.orders_topic = app.topic(s.topic("norm-orders"), **raw)
        if s.fast_path:
            # `app.topic(maxsize=...)` accepts the argument but does not pass it on to the
            # Topic (faust-streaming 0.15.3), so it is set on the description itself; every
            # clone (the agent's channel and its queue) copies it.
            for topic in (self.ticket_topics, self.employee_topics, self.orders_topic):
                topic.maxsize = s.buffer_batches
        self.notices = app.topic(self.notices_name, partitions=s.partitions, **raw)
        self.facts = app.topic(self.facts_name, partitions=s.partitions, **raw)
        self.snapshots_name = s.topic("kpi-employee")
        self.snapshots = app.topic(self.snapshots_name, **raw)
        self.alerts_out = app.topic(s.topic("sla-alerts"), **raw)
        self.dead_letters = app.topic(s.topic("dead-letters"), **raw)
        # bytes keys and values select Faust's raw codec for the store and the changelog, so
        # changelog keys are the same bytes as the source topics' keys (same partition, and
        # readable by `kpi replay`); we serialize values ourselves.
        table_opts: dict[str, Any] = {"partitions": s.partitions, "key_type": bytes,
                                      "value_type": bytes}
        self.tickets_table = app.Table("tickets", options=self._rocksdb_options(),
                                       **table_opts)
        self.employees_table = app.Table("employees", options=self._rocksdb_options(),
                                         **table_opts)
        self.timers_table = app.Table("alert-timers", options=self._rocksdb_options(),
                                      **table_opts)
        # Agents write their tables and hot outputs through aiokafka directly (see
        # streams/worker/changelog.py); each batch publishes its changelog records before it
        # returns, so before its offsets can be committed.
        self.sender = DirectSender(app)
        self.direct_tables = [DirectTable(t, self.sender) for t in
                              (self.tickets_table, self.timers_table, self.employees_table)]
        tickets_w, timers_w, employees_w = self.direct_tables
        self.ticket_kv = BatchKV(TableKV(self.tickets_table, direct=tickets_w))
        # The alert timer scans this parsed mirror of the table, kept current by the
        # projector's writes and rebuilt after a rebalance (projections/timers.py).
        self.timer_index = TimerIndex()
        self.timers_kv = BatchKV(IndexedKV(TableKV(self.timers_table, direct=timers_w),
                                           self.timer_index))
        self.employee_kv = BatchKV(TableKV(self.employees_table, direct=employees_w))
        self.ticket_proj = TicketProjector(self.ticket_kv, self.cat, live=self.live,
                                           alerts=s.alerts, timers=self.timers_kv)
        # ticket_id -> "target:kind" alerts this process has sent or found sent
        self._alerted: dict[str, set[str]] = {}
        # Per ticket input partition: the next offset this process has read, and per
        # partition number the latest `occurred_at` (µs) of a ticket event processed: the
        # alert timer's clock for a partition still catching up (see _alert_clocks).
        self._ticket_read: dict[TP, int] = {}
        self._ticket_frontier: dict[int, int] = {}
        self._reconciled: dict[int, int] = {}  # partition -> catalogue revision
        self._reconcile_requested: dict[int, int] = {}
        self.employee_proj = EmployeeProjector(self.employee_kv, self.cat,
                                               self.roster, live=self.live)
        # The read side (API, snapshots, timers) reads the tables directly, never the
        # agents' uncommitted batch caches.
        self.ticket_reader = TicketProjector(TableKV(self.tickets_table, s.partitions), self.cat,
                                             live=self.live, alerts=s.alerts)
        self.employee_reader = EmployeeProjector(TableKV(self.employees_table, s.partitions),
                                                 self.cat,
                                                 self.roster, live=self.live)
        # Fold cursors and warm states describe tickets and days as this process last
        # wrote them: after any rebalance a table partition may come back from its
        # changelog as another worker left it, so they are dropped (the next event of
        # each ticket re-folds once, each day is read from the store again).
        app.on_partitions_revoked.connect(self._forget_warm)
        app.on_partitions_assigned.connect(self._forget_warm)
        app.agent(self.ticket_topics, name="tickets")(self._ticket_agent)
        app.agent(self.employee_topics, name="employees")(self._employee_agent)
        app.agent(self.orders_topic, name="norm-orders")(self._orders_agent)
        app.task(self._load_global_state)
        app.timer(s.snapshot_interval)(self._flush_snapshots)
        app.timer(s.gauge_interval)(self._refresh_gauges)
        app.timer(s.broker_probe_interval)(self._probe_broker)
        if s.malloc_trim_interval > 0:
            app.timer(s.malloc_trim_interval)(self._trim_heap)
        app.timer(1.0)(self._request_reconcile)
        if s.alerts:
            app.timer(0.5)(self._fire_alerts)
        self.restart_generation: int | None = None
        self.registry_name = registry_topic(s)
        self._registry_active: int | None = None  # the registry's `active` record
        if s.follow_active:
            app.timer(2.0)(self._follow_active)
        register_web(self)

    # -- configuration ----------------------------------------------------------------

    def _rocksdb_options(self) -> dict[str, Any]:
        """Store options for one table (a fresh dict: Faust's Store pops keys from it)."""
        s = self.settings
        mib = 1024 * 1024
        return {"driver": "rocksdict",
                "write_buffer_size": s.rocksdb_write_buffer_mb * mib,
                "max_write_buffer_number": 2,
                "target_file_size_base": 16 * mib,
                "block_cache_size": s.rocksdb_memory_mb * mib,  # the process's budget
                "block_cache_compressed_size": 0}

    def _credentials(self) -> Any:
        s = self.settings
        if s.security_protocol == "PLAINTEXT":
            return None
        ssl_context = None
        if s.security_protocol in ("SSL", "SASL_SSL"):
            ssl_context = faust.auth.ssl.create_default_context(
                cafile=str(s.ssl_cafile) if s.ssl_cafile else None
            )
            if s.ssl_certfile:
                ssl_context.load_cert_chain(str(s.ssl_certfile),
                                            str(s.ssl_keyfile) if s.ssl_keyfile else None)
        if s.security_protocol.startswith("SASL"):
            return faust.SASLCredentials(
                username=s.sasl_username,
                password=s.sasl_password.get_secret_value() if s.sasl_password else None,
                mechanism=s.sasl_mechanism or "PLAIN",
                ssl_context=ssl_context,
            )
        return faust.SSLCredentials(ssl_context)

    def _topic_name(self, full: str) -> str:
        return full[self._prefix_len:]

    # -- the edge -----------------------------------------------------------------------

    async def _decode(self, msg: Any) -> Event | None:
        """Validate one record; invalid ones go to dead-letters with their reason."""
        topic = self._topic_name(msg.topic)
        key = msg.key if msg.key is None else bytes(msg.key)
        value = msg.value if msg.value is None else bytes(msg.value)
        result = decode(topic, key, value)
        if isinstance(result, Rejection):
            await self.dead_letters.send(
                key=key,
                value=dead_letter_value(topic, msg.partition, msg.offset, key, value, result),
            )
            self.metrics.dead_letters.labels(topic, result.reason).inc()
            return None
        return result

    @staticmethod
    def _observe(seen: BatchObservations, msg: Any, ev: Event, topic: str) -> None:
        seen.add(topic, ev.type, ev.occurred_at.timestamp(), msg.timestamp)

    # -- agents -------------------------------------------------------------------------
    # Each agent hands whole batches of records of one partition to a handler; state goes
    # through a write-back cache so each key is written (and changelogged) once per batch.

    @staticmethod
    def _records(event: faust.EventT) -> list[Any]:
        """The Kafka records an event stands for (one, or a whole fetched batch)."""
        value = event.value
        if isinstance(value, RecordBatch):
            return value.records
        return [event.message]

    async def _events(self, stream: faust.StreamT, agent: str) -> AsyncIterator[faust.EventT]:
        """The agent's events, exporting how many fetched records wait behind each one
        (kpi_agent_buffered_records: the read-ahead the consumer holds in memory)."""
        queue = cast(Any, stream.channel).queue
        gauge = self.metrics.buffered_records.labels(agent)
        fast = self.settings.fast_path
        async for event in stream.events():
            # asyncio.Queue keeps its items in a deque: on the fast path up to
            # buffer_batches chunks, summed once per batch, not per record; on Faust's
            # path every item is one record.
            gauge.set(queued_records(queue._queue) if fast else queue.qsize())
            yield event

    async def _ticket_agent(self, stream: faust.StreamT) -> None:
        await self.loaded.wait()
        async for event in self._events(stream, "tickets"):
            await self._guarded(self._ticket_batch, self._records(event))

    async def _guarded(self, handler: Callable[[list[Any]], Awaitable[None]],
                       records: list[Any]) -> None:
        """Run a batch handler; a bug in it stops the process before anything is committed.

        Invalid input never gets here (it is dead-lettered at the edge), so an exception is
        a defect. Faust's supervisor would restart the agent and the failed batch could be
        acknowledged, silently losing it; exiting at once instead leaves its offsets
        uncommitted, and the restarted worker (compose/systemd restart it) redelivers the
        batch exactly as after a SIGKILL, which the state is built to survive.
        """
        try:
            await handler(records)
        except asyncio.CancelledError:
            raise
        except Exception:
            first = records[0] if records else None
            where = f"{first.topic}[{first.partition}]@{first.offset}" if first else "?"
            log.critical("processing failed at %s; exiting without commit so that the "
                         "batch is redelivered on restart", where, exc_info=True)
            logging.shutdown()
            os._exit(70)

    async def _ticket_batch(self, records: list[Any]) -> None:
        seen = BatchObservations()
        facts = FactBundles(self.settings.partitions)
        frontier = -1
        if records:
            await self._reconcile_orders(records[0].partition, facts)
        for msg in records:
            if msg.topic == self.notices_name:
                notice = orjson.loads(bytes(msg.value))
                if notice.get("type") == RECONCILE_NOTICE:
                    continue  # its work was done above, at the start of the batch
                out = self.ticket_proj.apply_notice(notice)
            else:
                ev = await self._decode(msg)
                if ev is None:
                    continue
                out = self.ticket_proj.apply_event(ev)
                frontier = max(frontier, epoch_us(ev.occurred_at))
                topic = self._topic_name(msg.topic)
                if out.duplicate:
                    self.metrics.duplicates.labels(topic).inc()
                else:
                    self._observe(seen, msg, ev, topic)
            await self._emit(out, facts)
        # Sent before the batch returns, so before its offsets can be committed.
        await self._send_facts(facts.drain())
        self.ticket_proj.end_batch()
        self.ticket_kv.flush()
        self.timers_kv.flush()
        await self._publish_tables()
        seen.flush(self.metrics, time.time())
        if records and records[0].topic != self.notices_name:
            last = records[-1]
            self._ticket_read[TP(last.topic, last.partition)] = last.offset + 1
            if frontier > self._ticket_frontier.get(last.partition, -1):
                self._ticket_frontier[last.partition] = frontier

    async def _emit(self, out: TicketOutput, facts: FactBundles) -> None:
        for emp, fact in out.facts:
            full = facts.add(emp, fact)
            if full is not None:
                await self._send_facts(full)
        for ticket_id, notice in out.notices:
            await self.sender.send(self.notices_name, ticket_id.encode(), notice)
        for priority, outcome, fr_s, res_s in out.outcomes:
            self.metrics.sla_tickets.labels(priority, outcome).inc()
            self.metrics.first_response_seconds.labels(priority).observe(float(fr_s))
            self.metrics.resolution_seconds.labels(priority).observe(float(res_s))

    async def _send_facts(self, bundles: list[tuple[int, bytes]]) -> None:
        for partition, value in bundles:
            await self.sender.send(self.facts_name, None, value, partition)

    async def _publish_tables(self) -> None:
        """Changelog records of the batch's table writes, sent before it is acknowledged."""
        for table in self.direct_tables:
            await table.publish()

    async def _request_reconcile(self) -> None:
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

    async def _reconcile_orders(self, partition: int, facts: FactBundles) -> None:
        """Bring one partition's tickets up to the orders known now (see `reconcile`).

        Which orders a partition was reconciled with is a key in its own store, written
        in the same batch as the re-folded tickets, so a crash or a move to another
        worker neither skips nor repeats the work. Runs inside the batch's event, so
        every read and write goes to this partition's store and changelog.
        """
        if self._reconciled.get(partition) == self.cat.revision:
            return
        raw = self.ticket_kv.get(ORDERS_MARKER)
        done = orjson.loads(raw) if raw is not None else None
        new = self.cat.changed_since(done)
        if new:
            # Faust's store keeps one RocksDB per partition; only this one's keys are ours
            # to rewrite here (Store._db_for_partition is the store's own accessor).
            db = cast(Any, self.tickets_table.data)._db_for_partition(partition)
            # Skip our marker and Faust's own offset key (b"__faust\0offset__").
            ids = [k.decode() for k in (bytes(k) for k in db.keys())
                   if not k.startswith((b"\x00", b"__faust\x00"))]
            moved = 0
            for out in self.ticket_proj.reconcile(ids, new):
                moved += 1
                await self._emit(out, facts)
            if moved:
                log.info("partition %d: %d tickets re-folded under %d new norm order(s)",
                         partition, moved, len(new))
        if new or done is None:
            self.ticket_kv.put(ORDERS_MARKER, orjson.dumps(self.cat.digests()))
        self._reconciled[partition] = self.cat.revision

    async def _employee_agent(self, stream: faust.StreamT) -> None:
        await self.loaded.wait()
        async for event in self._events(stream, "employees"):
            await self._guarded(self._employee_batch, self._records(event))

    async def _employee_batch(self, records: list[Any]) -> None:
        # Marked for snapshots and gauges only once written: a timer running while this
        # batch awaits (a dead letter's send) must not read the days before they land.
        changed: set[str] = set()
        dirty: set[tuple[str, str]] = set()
        seen = BatchObservations()
        for msg in records:
            touched: list[tuple[str, list[date]]]
            if msg.topic == self.facts_name:
                key = None if msg.key is None else bytes(msg.key)
                touched = [(emp, self.employee_proj.apply_fact(emp, fact))
                           for emp, fact in read_facts(key, bytes(msg.value))]
            else:
                ev = await self._decode(msg)
                if ev is None:
                    continue
                topic = self._topic_name(msg.topic)
                if topic == "roster":
                    # The roster reader may lag this agent by a moment; apply here too so the
                    # snapshot below already sees the absence or the new department.
                    self.roster.apply(ev)
                dup, days = self.employee_proj.apply_event(ev)
                if dup:
                    self.metrics.duplicates.labels(topic).inc()
                    continue
                self._observe(seen, msg, ev, topic)
                touched = [(ev.employee_id, days)]  # type: ignore[attr-defined]
            for emp, days in touched:
                changed.add(emp)
                for d in days:
                    dirty.add((emp, d.isoformat()))
                    dirty.add((emp, d.isoformat()[:7]))
        self.employee_proj.end_batch()
        self.employee_kv.flush()
        await self._publish_tables()
        seen.flush(self.metrics, time.time())
        self._seen_employees |= changed
        self._gauge_dirty |= changed
        self._dirty |= dirty

    async def _orders_agent(self, stream: faust.StreamT) -> None:
        """Validate and count norm orders once per group; every worker reads them in full."""
        seen_ids: set[str] = set()
        async for event in self._events(stream, "norm-orders"):
            seen = BatchObservations()
            for msg in self._records(event):
                ev = await self._decode(msg)
                if ev is None:
                    continue
                if str(ev.event_id) in seen_ids:
                    self.metrics.duplicates.labels("norm-orders").inc()
                    continue
                seen_ids.add(str(ev.event_id))
                self._observe(seen, msg, ev, "norm-orders")
            seen.flush(self.metrics, time.time())

    # -- state every worker holds in full -----------------------------------------------

    async def _load_global_state(self) -> None:
        """Read norm-orders and roster from the beginning, then follow them."""
        from aiokafka import AIOKafkaConsumer
        from aiokafka.structs import TopicPartition

        s = self.settings
        names = [s.topic(t) for t in GLOBAL_INPUTS]
        if s.follow_active:
            # The generation registry is followed here too (a compacted topic of a few
            # records): `_follow_active` then reads memory. It used to build a Kafka admin
            # client and a consumer every 2 s, which cost the live worker CPU and GIL time
            # and churned its heap.
            names.append(self.registry_name)
        backoff = 0.5
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=s.bootstrap_list,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                security_protocol=s.security_protocol,
                sasl_mechanism=s.sasl_mechanism or "PLAIN",
                sasl_plain_username=s.sasl_username,
                sasl_plain_password=(s.sasl_password.get_secret_value()
                                     if s.sasl_password else None),
            )
            try:
                if s.follow_active:
                    from streams.worker.generations import ensure_registry

                    # Created up front, so that a registry appearing later is never missed.
                    await asyncio.get_running_loop().run_in_executor(None, ensure_registry, s)
                await consumer.start()
                self._global_consumer = consumer
                tps = []
                for name in names:
                    parts = consumer.partitions_for_topic(name)
                    if not parts:
                        await consumer.client.force_metadata_update()
                        parts = consumer.partitions_for_topic(name) or set()
                    tps += [TopicPartition(name, p) for p in parts]
                consumer.assign(tps)
                await consumer.seek_to_beginning(*tps)
                pending = set(tps)
                self._set_broker_state(None)
                backoff = 0.5
                while True:
                    batch = await consumer.getmany(timeout_ms=500, max_records=10000)
                    for tp, records in batch.items():
                        for rec in records:
                            self._apply_global(tp.topic, rec.key, rec.value)
                    # Loaded when every partition is read up to the high watermark that
                    # a fetch reported (not ListOffsets: see fastpath.verified_end_offsets).
                    for tp in list(pending):
                        hw = consumer.highwater(tp)
                        if hw is not None and await consumer.position(tp) >= hw:
                            pending.discard(tp)
                    if not pending and not self.loaded.is_set():
                        log.info("norm orders (%d) and roster loaded", len(self.cat))
                        self.loaded.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker may be away: retry with backoff
                self._set_broker_state(f"cannot read norm-orders/roster: "
                                       f"{exc.__class__.__name__}: {exc}")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                self._global_consumer = None
                await consumer.stop()

    def _set_broker_state(self, error: str | None) -> None:
        """Record whether the broker answers; one log line per change of state."""
        if error == self.broker_error:
            return
        if error is None:
            log.info("broker %s answering again: processing resumes", self.settings.brokers)
        elif self.broker_error is None:
            log.warning("broker %s lost: %s (retrying with backoff; /health answers 503)",
                        self.settings.brokers, error)
        self.broker_error = error

    async def _probe_broker(self) -> None:
        """Ask the broker for metadata with a deadline: Kafka clients retry silently, so
        a paused or partitioned broker would otherwise look healthy."""
        consumer = self._global_consumer
        if consumer is None:
            return  # the loader is (re)connecting and reports its own errors
        try:
            await asyncio.wait_for(consumer._client.fetch_all_metadata(),
                                   self.settings.broker_probe_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            what = ("no answer within "
                    f"{self.settings.broker_probe_timeout:g} s" if isinstance(exc, TimeoutError)
                    else f"{exc.__class__.__name__}: {exc}")
            self._set_broker_state(f"broker not answering ({what})")
        else:
            self._set_broker_state(None)
        await self._update_lag()
        for kind, used in budget_usage().items():
            self.metrics.rocksdb_memory.labels(kind).set(used)

    async def _forget_warm(self, sender: Any, /, *args: Any, signal: Any = None,
                           **kwargs: Any) -> None:
        self.ticket_proj.forget()
        self.employee_proj.forget()
        self.timer_index.invalidate()
        # Read positions of partitions that may have moved: from Faust's committed
        # offsets again (a stale one would hold a partition "behind" for good).
        self._ticket_read.clear()

    async def _trim_heap(self) -> None:
        trim()

    async def _update_lag(self) -> None:
        """kpi_consumer_lag_messages per input topic over the partitions this worker owns:
        high watermark of the last fetch minus the committed offset (Kafka's own notion
        of lag: what a crash now would have to redo), else the fetch position; 0 for
        topics it owns none of, so sums across workers stay right."""
        lag = dict.fromkeys((t.name for t in INPUT_TOPICS), 0)
        consumer = self.app.consumer
        try:
            for tp in consumer.assignment():
                topic = self._topic_name(tp.topic)
                if topic not in lag or not tp.topic.startswith(self.settings.topic_prefix):
                    continue
                hw = consumer.highwater(tp)
                # Faust's record of what it committed (no public accessor).
                pos = cast(Any, consumer)._committed_offset.get(tp)
                if pos is None:
                    pos = await consumer.position(tp)
                if hw is not None and pos is not None:
                    lag[topic] += max(0, hw - pos)
        except Exception as exc:  # during a rebalance the assignment may move under us
            log.debug("lag not updated: %s", exc)
            return
        for topic, value in lag.items():
            self.metrics.consumer_lag.labels(topic).set(value)
        self._pace_fetches(sum(lag.values()))

    def _pace_fetches(self, lag: int) -> None:
        """The consumer's fetch wait for this lag (settings.py: fetch_max_wait_ms, live,
        and backlog_fetch_max_wait_ms, behind). aiokafka reads its fetcher's wait for each
        request it builds; the fetcher lives in Faust's consumer thread, and an int
        assigned from here is seen there on its next request."""
        s = self.settings
        wait = fetch_wait_for(lag, s.fetch_max_wait_ms, s.backlog_fetch_max_wait_ms,
                              s.backlog_messages)
        # Also what a consumer Faust builds again (after a fatal error) starts with.
        cast(Any, self.app).kpi_fetch_max_wait_ms = wait
        consumer = getattr(cast(Any, self.app.consumer)._thread, "_consumer", None)
        fetcher = getattr(consumer, "_fetcher", None)
        # The fetcher's own value, not one remembered here: a rebuilt consumer has its own.
        if fetcher is None or fetcher._fetch_max_wait_ms == wait:
            return  # not started yet (the next probe tries again), or already so
        fetcher._fetch_max_wait_ms = wait
        log.info("consumer lag %d messages: fetch wait %d ms", lag, wait)

    def _apply_global(self, full_topic: str, key: bytes | None, value: bytes | None) -> None:
        if full_topic == self.registry_name:
            if key == b"active":  # see streams.worker.generations.write
                self._registry_active = int(orjson.loads(value)["generation"]) if value else None
            return
        topic = self._topic_name(full_topic)
        result = decode(topic, key, value)
        if isinstance(result, Rejection):
            return  # the group's agent dead-letters it once; every worker just skips it
        if isinstance(result, NormOrderIssued):
            self.cat.add(with_cutoff(NormOrder.from_event(result), self.settings.orders_cutoff))
        else:
            self.roster.apply(result)

    async def _follow_active(self) -> None:
        """Restart on the new generation when the registry's `active` record changes
        (followed by `_load_global_state`)."""
        if self.restart_generation is not None or not self.loaded.is_set():
            return
        # As Registry.active_generation: generation 1 until one is activated.
        active = self._registry_active if self._registry_active is not None else 1
        if active != self.settings.generation:
            log.warning("generation %d is now active (this worker serves %d): restarting",
                        active, self.settings.generation)
            self.restart_generation = active
            os.kill(os.getpid(), signal.SIGTERM)  # Faust's graceful shutdown, then re-exec

    # -- outputs ------------------------------------------------------------------------

    def owns(self, topic: str, key: str, assignment: set[TP] | None = None) -> bool:
        """Does this worker own the partition of `key` on `topic` right now?"""
        if assignment is None:
            assignment = self.app.consumer.assignment()
        return TP(topic, partition_of(key, self.settings.partitions)) in assignment

    async def _fire_alerts(self) -> None:
        """Publish every SLA threshold reached by an open ticket this worker owns."""
        if not self.loaded.is_set() or self.app.rebalancing:
            return
        index = self.timer_index
        if index.stale:
            # Faust iterates a table over the partitions this worker actively owns only.
            index.rebuild((k if isinstance(k, str) else bytes(k).decode(), _as_bytes(v))
                          for k, v in list(self.timers_table.items()))
        now = self.clock()
        now_us = epoch_us(now)
        clocks = self._alert_clocks(now_us)
        parts = self.settings.partitions
        breached: dict[str, int] = dict.fromkeys(("P1", "P2", "P3", "P4"), 0)
        due: list[tuple[str, list[str], datetime]] = []
        for ticket_id, timer in index.items():
            reached = timer.reached(now_us)
            if not reached:
                continue
            at = now
            if clocks:
                behind = clocks.get(_ticket_partition(ticket_id, parts))
                if behind is not None:
                    reached = timer.reached(behind)
                    if not reached:
                        continue
                    at = from_epoch_us(behind)
            if any(r.endswith(":breached") for r in reached):
                breached[timer.priority] = breached.get(timer.priority, 0) + 1
            handled = self._alerted.get(ticket_id, ())
            if any(r not in handled for r in reached):
                due.append((ticket_id, reached, at))
        for priority, n in breached.items():
            self.metrics.sla_open_breached.labels(priority).set(n)
        # What this process has handled is only kept for tickets still timed: bounded by
        # the open tickets, not by history.
        for ticket_id in [t for t in self._alerted if t not in index]:
            del self._alerted[ticket_id]
        for ticket_id, reached, at in due:
            handled = self._alerted.setdefault(ticket_id, set())
            for alert in self.ticket_reader.due_alerts(ticket_id, at):
                ident = f"{alert['target']}:{alert['type'][4:]}"
                if ident in handled:
                    continue
                await self.alerts_out.send(key=ticket_id.encode(), value=orjson.dumps(alert))
                # Record it through the ticket's own partition, so the state that says
                # "sent" is written in stream order and survives a restart.
                await self.notices.send(key=ticket_id.encode(),
                                        value=alert_sent_notice(ticket_id, ident))
                handled.add(ident)
                self.metrics.sla_alerts.labels(alert["target"], alert["type"][4:]).inc()
            # Thresholds reached but owing nothing were sent before (a restart, or the
            # notice still on its way): do not re-fold the ticket for them every tick.
            handled.update(reached)

    def _alert_clocks(self, now_us: int) -> dict[int, int]:
        """The alert clock of each ticket partition still catching up (µs); absent: now.

        A threshold is owed only if the ticket was still open at that moment. A partition
        whose records are not all processed (a backlog: a restart after downtime, a
        large import) may hold a resolution of that ticket further on: alerting at the
        wall clock would page operations about tickets closed weeks ago. Such a
        partition's clock is the latest `occurred_at` it has processed, so its alerts
        come as its events reach their moments, and once every record fetched is
        processed it is the wall clock again: nothing owed is missed, only deferred
        until the worker knows.
        """
        consumer = self.app.consumer
        clocks: dict[int, int] = {}
        try:
            assignment = consumer.assignment()
        except Exception:  # during a rebalance the assignment may move under us
            return clocks
        inputs = self._ticket_inputs
        committed = cast(Any, consumer)._committed_offset  # Faust's own record
        for tp in assignment:
            if tp.topic not in inputs:
                continue
            hw = consumer.highwater(tp)
            pos = self._ticket_read.get(tp)
            if pos is None:
                pos = committed.get(tp)
            if hw is not None and pos is not None and pos >= hw:
                continue  # everything fetched so far is processed
            if hw == 0:
                continue  # an empty partition
            p = tp.partition
            clocks[p] = min(now_us, self._ticket_frontier.get(p, -1), clocks.get(p, now_us))
        return clocks

    def today(self) -> str:
        now = self.clock()
        return self.cat.local_date(now, now).isoformat()

    async def _flush_snapshots(self) -> None:
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
            obj = self.employee_reader.employee(emp, parse_period(period), gen)
            snap = {"type": "kpi.employee_snapshot", "event_id": _snapshot_id(),
                    "emitted_at": self.clock().isoformat(), **obj}
            await self.sender.send(self.snapshots_name, emp.encode(), orjson.dumps(snap))
            self.metrics.snapshots.inc()

    async def _refresh_gauges(self) -> None:
        """Per-employee gauges for the employees this worker owns, and only those.

        Recomputed on a timer rather than on change, so that "today" rolls over at
        midnight and gauges of partitions that moved away disappear (sums across workers
        stay right).
        """
        if not self.loaded.is_set() or self.app.rebalancing:
            return
        today = self.today()
        day, month = parse_period(today), parse_period(today[:7])
        gen = self.settings.generation
        facts = self.facts_name
        wanted: dict[str, tuple[str, str]] = {}
        m = self.metrics
        assignment = self.app.consumer.assignment()
        # Recomputing two employee objects for every employee every few seconds was most
        # of a live worker's CPU for a large centre: only changed employees are, except
        # on a full refresh.
        basis = (today, self.cat.revision)
        full = (basis != self._gauge_basis or time.monotonic() - self._gauge_full_at
                >= self.settings.gauge_full_refresh)
        if full:
            self._gauge_basis, self._gauge_full_at = basis, time.monotonic()
        dirty, self._gauge_dirty = self._gauge_dirty, set()
        computed = 0
        for emp in sorted(set(self.roster.employees()) | self._seen_employees):
            if not self.owns(facts, emp, assignment) or not self.employee_reader.known(emp):
                continue
            labels = (emp, self.roster.department_of(emp) or "")
            wanted[emp] = labels
            if not full and emp not in dirty and self._gauge_labels.get(emp) == labels:
                continue
            computed += 1
            if computed % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # see YIELD_EVERY
                if self.app.rebalancing:  # the assignment read above may be stale
                    self._gauge_dirty |= dirty
                    self._gauge_basis = None  # recompute every gauge next time
                    return
            d = self.employee_reader.employee(emp, day, gen)
            mo = self.employee_reader.employee(emp, month, gen)
            m.employee_minutes.labels(*labels).set(d["kpi_minutes"])
            _set_or_remove(m.employee_attainment, labels,
                           None if d["attainment_pct"] is None else d["attainment_pct"] / 100)
            _set_or_remove(m.employee_bonus, labels, mo["bonus"]["bonus_pct"])
        for emp, labels in self._gauge_labels.items():
            if wanted.get(emp) != labels:
                for g in (m.employee_minutes, m.employee_attainment, m.employee_bonus):
                    _set_or_remove(g, labels, None)
        self._gauge_labels = wanted

    # -- read side shared by the web views ----------------------------------------------

    def owner_url(self, employee_id: str) -> str | None:
        """Base URL of the worker owning this employee's partition; None when it is us."""
        try:
            url = self.app.router.key_store(self.employees_table.name, employee_id)
        except KeyError:
            return None
        mine = self.app.conf.canonical_url
        if (url.host, url.port) == (mine.host, mine.port):
            return None
        return str(url).rstrip("/")

    async def department(self, department_id: str, period: Period,
                         authorization: str | None = None) -> dict[str, Any]:
        """The manager's view, gathering employees owned by other workers over HTTP."""
        details = []
        for emp in self.roster.employees_of(department_id):
            url = self.owner_url(emp)
            if url is None:
                details.append(self.employee_reader.detail(emp, period,
                                                           self.settings.generation))
                continue
            query = "month" if period.is_month else "date"
            headers = {"Authorization": authorization} if authorization else {}
            async with self.app.http_client.get(
                f"{url}/internal/employees/{emp}?{query}={period.text}", headers=headers
            ) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"owner of {emp} answered {resp.status}")
                details.append(await resp.json())
        return self.employee_reader.department_from(department_id, period,
                                                    self.settings.generation, details)

    def health(self) -> tuple[bool, str]:
        if self.broker_error:
            return False, self.broker_error
        if not self.loaded.is_set():
            return False, "loading norm orders and roster"
        if self.app.rebalancing:
            return False, "rebalancing"
        if not self.app.tables.recovery.completed.is_set():  # type: ignore[attr-defined]
            return False, "recovering tables"
        if not self.app.consumer.assignment():
            return False, "no partitions assigned yet"
        return True, "serving"
