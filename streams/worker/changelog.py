"""Table writes and hot output records straight through aiokafka's producer.

A Faust table write (`table[key] = value`) goes through the table's `on_key_set`, a
`FutureMessage`, the producer buffer's queue and task, Faust's producer, then aiokafka;
its delivery callback writes the partition's persisted offset into RocksDB, once per
record. Measured in the worker on a backlog, that path was ~30-40 µs a changelog record,
and the persisted-offset writes alone 2 % of the process. A batch writes hundreds of keys
at once, so here each write goes to the partition's RocksDB and its changelog record to
a task feeding aiokafka's accumulator (the same producer; its flush, which Faust awaits
before every commit, first waits for that task's queue), and the persisted offset is
written once a batch, from the last record's acknowledgement (records of one partition
are acknowledged in order).

Guarantees are Faust's, and one stronger: the store, the changelog topic and partition,
the raw key and value bytes, and the persisted offset are what Faust's own path writes
(recovery, standbys and `kpi replay` read them unchanged); a record that aiokafka finally
fails to deliver stops the process before anything later can be committed, where Faust's
callback would log it and commit past it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Callable
from typing import Any

from faust.streams import current_event
from faust.types import TP
from rocksdict import WriteBatch

log = logging.getLogger(__name__)


class DirectSender:
    """Sends raw records through the app's aiokafka producer, in the order given.

    aiokafka's `send` waits whenever a partition's batch is full until the sender has
    drained it, a network round trip; awaited in an agent, that stalled every batch (a
    quarter of a backlog's wall time). So, as Faust's own producer buffer does, records
    are queued and a task of their own feeds them to aiokafka; the producer's `flush`,
    which Faust awaits before every commit, first waits for this queue to empty (see
    `streams.worker.fastpath.BatchProducer`), so nothing is committed before its records are in
    aiokafka. Past `limit` queued records the agents wait (back-pressure). Without that
    flush hook (Faust's own transport, `KPI_FAST_PATH=false`) each send is awaited where
    it is made. A record aiokafka finally fails to deliver is fatal.
    """

    def __init__(self, app: Any, limit: int = 20_000) -> None:
        self.app = app
        self.limit = limit
        self._queue: deque[tuple[str, bytes | None, bytes | None, int | None,
                                 Callable[[asyncio.Future[Any]], None] | None]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._hooked: bool | None = None
        self._lost = False  # a record failed while stopping

    def _producer(self) -> Any:
        # faust.transport.drivers.aiokafka.Producer: the AIOKafkaProducer Faust started
        # (and flushes before each commit).
        return self.app.producer._ensure_producer()

    def _background(self) -> bool:
        if self._hooked is None:
            hooks = getattr(self.app.producer, "before_flush", None)
            self._hooked = hooks is not None
            if hooks is not None:
                hooks.append(self.flush)
        return self._hooked

    async def send(self, topic: str, key: bytes | None, value: bytes | None,
                   partition: int | None = None,
                   on_sent: Callable[[asyncio.Future[Any]], None] | None = None) -> None:
        """Queue one record (sent in order with every other); waits only when the queue
        is past its limit."""
        if not self._background():
            await self._send_now(topic, key, value, partition, on_sent)
            return
        self._queue.append((topic, key, value, partition, on_sent))
        if self._task is None or self._task.done():
            self._wakeup, self._idle = asyncio.Event(), asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())
        assert self._wakeup is not None and self._idle is not None
        self._idle.clear()
        self._wakeup.set()
        if len(self._queue) > self.limit:
            while len(self._queue) > self.limit // 2 and not self._task.done():
                await asyncio.sleep(0.001)

    async def send_bundles(self, topic: str, bundles: list[tuple[int, bytes]]) -> None:
        """Queue keyless records, each to its partition (`streams.worker.facts`)."""
        for partition, value in bundles:
            await self.send(topic, None, value, partition)

    def settled(self) -> bool:
        """Every record queued so far was handed to aiokafka."""
        return (not self._lost and not self._queue
                and (self._idle is None or self._idle.is_set()))

    async def flush(self) -> None:
        """Return once every record queued so far is in aiokafka's accumulator."""
        if self._task is None:
            return
        while self._queue or (self._idle is not None and not self._idle.is_set()):
            if self._task.done():
                return  # it failed, which is fatal (see _run)
            assert self._idle is not None
            await self._idle.wait()

    async def _send_now(self, topic: str, key: bytes | None, value: bytes | None,
                        partition: int | None,
                        on_sent: Callable[[asyncio.Future[Any]], None] | None) -> None:
        fut: asyncio.Future[Any] = await self._producer().send(
            topic, value, key=key, partition=partition)
        fut.add_done_callback(self._delivered)
        if on_sent is not None:
            fut.add_done_callback(on_sent)

    async def _run(self) -> None:
        assert self._wakeup is not None and self._idle is not None
        queue, send = self._queue, self._send_now
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while queue:
                    await send(*queue.popleft())
                self._idle.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(exc)

    def _delivered(self, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self.app.should_stop:
            # Shutting down: nothing more is committed, the records are processed again;
            # the local state now holds what its changelog lacks (see `settled`).
            log.error("a record was not delivered while stopping: %r", exc)
            self._lost = True
            return
        # Its batch's offsets may be committed once the producer has flushed, failed
        # records included: stop before that (the restarted worker redelivers the batch).
        log.critical("a record could not be delivered (%r); exiting without commit so that "
                     "its batch is processed again on restart", exc)
        logging.shutdown()
        os._exit(70)


class DirectTable:
    """One Faust table's reads and writes inside an agent's event, without Faust's per-key
    path: reads and writes go to the current event's partition's RocksDB, as Faust's own
    would; `publish` hands their changelog records to the sender, which the agent does
    before its batch is acknowledged.

    Writes are gathered in one RocksDB write batch per partition and applied together
    (`write`) before their changelog records are handed on, or before the next read: a
    put of its own costs a write-ahead-log append each, ~1.8x a batched one here."""

    def __init__(self, table: Any, sender: DirectSender) -> None:
        self.table = table
        self.sender = sender
        self._pending: dict[int, list[tuple[bytes, bytes | None]]] = {}
        self._batches: dict[int, Any] = {}
        self._topic: str | None = None

    @staticmethod
    def _partition() -> int:
        event = current_event()
        if event is None:
            raise RuntimeError("table written outside an agent's event")
        partition: int = event.message.partition
        return partition

    def _db(self, partition: int) -> Any:
        # The store's own accessor: opens the partition's database as Faust would.
        return self.table.data._db_for_partition(partition)

    def get(self, key: bytes) -> Any:
        if self._batches:
            self.write()  # reads see every write made so far
        event = current_event()
        if event is None:
            return self.table.get(key)
        return self._db(event.message.partition).get(key)

    def put(self, key: bytes, value: bytes | None) -> None:
        """Write (None: delete) with the next `write`; its changelog record goes out with
        `publish`."""
        partition = self._partition()
        batch = self._batches.get(partition)
        if batch is None:
            batch = self._batches[partition] = WriteBatch(raw_mode=True)
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, value)
        self._pending.setdefault(partition, []).append((key, value))

    def write(self) -> None:
        """Apply the gathered writes to their partitions' RocksDB (synchronous: no other
        task runs between a batch's last put and this)."""
        batches, self._batches = self._batches, {}
        for partition, batch in batches.items():
            self._db(partition).write(batch)

    def settled(self) -> bool:
        """No write is waiting for its changelog record to be handed to the sender."""
        return not self._pending

    async def publish(self) -> None:
        """Send the changelog records of every write since the last call, in order."""
        self.write()
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        if self._topic is None:
            self._topic = self.table.changelog_topic.get_topic_name()
        topic = self._topic
        send = self.sender.send
        for partition, changes in pending.items():
            *first, (last_key, last_value) = changes
            for key, value in first:
                await send(topic, key, value, partition)
            await send(topic, last_key, last_value, partition, self._persisted)

    def _persisted(self, fut: asyncio.Future[Any]) -> None:
        # What Faust's `_on_changelog_sent` does for every record, once per batch and
        # partition: earlier records of the partition were acknowledged before this one.
        if fut.cancelled() or fut.exception() is not None:
            return  # DirectSender._delivered handles it
        md = fut.result()
        self.table.data.set_persisted_offset(TP(md.topic, md.partition), md.offset)
