"""Handing agents whole fetched batches instead of one event per Kafka record.

Faust's consumer delivers every record through its drain loop, the conductor, a channel
queue and stream iteration (about 190 µs a record on this machine); that path, not Kafka
and not our logic, caps a worker at ~5k events/s. This transport keeps all of Faust
(group membership, assignment, tables, changelogs, recovery, commits, web) and changes
one thing: the consumer's drain loop delivers each fetched chunk of one topic-partition as
a single message whose value is a `RecordBatch` of the chunk's records. The agent
processes the batch inside one stream event (so table writes have their event context
and partition), then the batch message is acknowledged; the offsets inside the chunk are
registered as a gap that becomes committable only when the batch's last offset is acked,
so a crash mid-batch redelivers the whole batch (at-least-once, as before; our state is
idempotent per record).

Registered as the `kpikafka` transport through the `faust.transports` entry point
(pyproject), the documented way to add a transport; `KPI_FAST_PATH=false` selects Faust's
own `kafka://` transport with the same agents (each event is then a batch of one).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from faust.transport.consumer import ensure_TP
from faust.transport.drivers import aiokafka as _aiokafka
from faust.types import TP, ConsumerT, Message
from mode import Service

log = logging.getLogger(__name__)


@dataclass(slots=True)
class RecordBatch:
    """Consecutive records of one topic-partition, delivered to an agent as one event."""

    records: list[Any]


class BatchingConsumer(_aiokafka.Consumer):
    """The aiokafka consumer, delivering one message per fetched topic-partition chunk."""

    _kpi_holes: set[tuple[TP, int]]

    def __post_init__(self) -> None:
        super().__post_init__()
        self._kpi_holes = set()

    async def perform_seek(self) -> None:
        """Faust's seek to committed offsets, plus the partitions aiokafka leaves alone.

        aiokafka's `seek_to_committed` does not move a partition that has no committed
        offset (or offset 0): it stays where the fetcher is. Faust drops records fetched
        while a partition is inactive (recovering) or under a previous assignment and
        relies on this seek to read them again; a partition that moved to this worker
        before its previous owner ever committed would lose them. Such a partition goes
        back to its beginning, which is what `auto_offset_reset=earliest` means, and
        re-reading is harmless: the state is idempotent.
        """
        read_offset = self._read_offset
        committed = await self.seek_to_committed()
        unset = [tp for tp, off in committed.items() if off is None or off <= 0]
        if unset:
            await cast(Any, self)._thread.seek_to_beginning(*unset)
        read_offset.update({tp: off if off is not None and off > 0 else None
                            for tp, off in committed.items()})
        self._committed_offset.update({ensure_TP(tp): off if off else None
                                       for tp, off in committed.items() if off is not None})

    def _new_consumer_thread(self) -> Any:
        return VerifiedHighwaterThread(self, loop=self.loop, beacon=self.beacon)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        """Yield (tp, batch message) for each partition's chunk of one fetch."""
        # The generation is read *before* waiting: records fetched before a rebalance
        # can come back from the consumer thread after it has already sought to the
        # committed offsets (Faust reads it after the wait, so such a stale chunk passes
        # its check; faust-streaming #221). Delivered, a stale chunk would move the read
        # offset past records not processed yet, which would then be skipped as
        # "already delivered" while their offsets got committed: lost events.
        generation_id = self.app.consumer_generation_id
        records, active_partitions = await self._wait_next_records(timeout)
        if records is None or self.should_stop:
            return
        if self.app.consumer_generation_id != generation_id:
            return  # fetched under the previous assignment: dropped, fetched again
        if not self.flow_active:
            # As Faust's own getmany: seek back to committed offsets, and tolerate the
            # assignment moving under the seek (a rebalance in progress: it seeks again).
            try:
                await self.perform_seek()
            except Exception as exc:
                log.warning("seek while flow not active failed (rebalancing): %r", exc)
            return
        to_message = self._to_message
        changelogs = self._changelog_topics()
        for tp, chunk in records.items():
            if not chunk or not self.flow_active:
                continue
            if self.app.consumer_generation_id != generation_id:
                break  # a rebalance started: drop the rest, it will be fetched again
            if not (active_partitions is None or tp in active_partitions
                    or tp in self._buffered_partitions):
                continue
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            if tp.topic in changelogs:
                # Table recovery and standbys read changelogs through this same method and
                # expect one message per record.
                for r in chunk:
                    yield tp, to_message(tp, r)
                continue
            messages = [to_message(tp, r) for r in chunk]
            batch = to_message(tp, chunk[-1])
            batch.value = RecordBatch(messages)  # type: ignore[assignment]
            batch.key = None
            yield tp, batch

    def _changelog_topics(self) -> frozenset[str]:
        names = getattr(self, "_kpi_changelogs", None)
        if names is None or len(names) < len(self.app.tables):
            names = frozenset(t.changelog_topic.get_topic_name() for t in self.app.tables.values())
            self._kpi_changelogs = names
        return names

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover
        """Faust's drain loop, one callback per batch instead of per record."""
        callback = self.callback
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                await self.sleep(0)
                if self.should_stop:
                    break
                async for tp, batch in self.getmany(timeout=1.0):
                    if not isinstance(batch.value, RecordBatch):
                        # A changelog record (standby): Faust's own per-record handling.
                        r_offset = read_offset[tp]
                        if r_offset is None or batch.offset >= r_offset:
                            await self.wait_first(callback(batch), self.suspend_flow.wait())
                            read_offset[tp] = batch.offset
                        continue
                    records = batch.value.records
                    first, last = records[0].offset, records[-1].offset
                    r_offset = read_offset[tp]
                    if r_offset is not None and last < r_offset:
                        continue  # already delivered (a seek replayed it)
                    if (r_offset is not None and first > r_offset + 1
                            and (tp, r_offset) not in self._kpi_holes):
                        # A hole before this chunk: input topics are neither compacted
                        # nor transactional, so it is a chunk from before a seek. Read
                        # from the hole again (once: a real hole is then accepted).
                        self._kpi_holes.add((tp, r_offset))
                        log.warning("%s: chunk at %d after read offset %d; seeking back",
                                    tp, first, r_offset)
                        await self.seek(tp, r_offset + 1)
                        continue
                    if acks_enabled_for(batch.topic):
                        # Offsets before the last one are committable once the batch
                        # message (carrying the last offset) is acked; any hole between
                        # the previous read and this chunk is too (compacted/aborted).
                        start = first if r_offset is None else min(first, r_offset + 1)
                        if last - 1 >= start:
                            await self._add_gap(tp, start, last - 1)
                    if self._commit_every is not None and self._n_acked >= self._commit_every:
                        self._n_acked = 0
                        await self.commit()
                    await self.wait_first(callback(batch), self.suspend_flow.wait())
                    read_offset[tp] = last
                    await asyncio.sleep(0)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise


async def verified_end_offsets(consumer: Any, partitions: list[Any],
                               make_probe: Any, timeout_s: float = 10.0) -> dict[Any, int]:
    """End offsets confirmed by a fetch: a broker's ListOffsets answer is only trusted when
    a fetch from just before it reports the same high watermark.

    Why: some Kafka-compatible brokers (Tansu, our embedded development broker) answer
    ListOffsets(latest) with the base offset of the last record batch + 1, so a changelog
    looks shorter than it is; Faust's recovery would then stop early (or refuse to start,
    "persisted offset higher than highwater"). A Fetch response carries the true high
    watermark. On Apache Kafka the two agree and this costs one small fetch per partition,
    only when tables recover.
    """
    ends: dict[Any, int] = dict(await consumer.end_offsets(partitions))
    probe_tps = [tp for tp in partitions if ends.get(tp, 0) > 0]
    if not probe_tps:
        return ends
    from aiokafka.structs import TopicPartition

    probe = make_probe()
    try:
        await probe.start()
        wanted = {TopicPartition(tp.topic, tp.partition): tp for tp in probe_tps}
        probe.assign(list(wanted))
        for atp, tp in wanted.items():
            probe.seek(atp, ends[tp] - 1)
        pending = set(wanted)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while pending and loop.time() < deadline:
            await probe.getmany(*pending, timeout_ms=500, max_records=1)
            for atp in list(pending):
                hw = probe.highwater(atp)
                if hw is not None:
                    ends[wanted[atp]] = max(ends[wanted[atp]], hw)
                    pending.discard(atp)
    except Exception as exc:  # keep ListOffsets' answer rather than stall recovery
        log.warning("could not verify end offsets by fetch: %r", exc)
    finally:
        await probe.stop()
    return ends


def fetch_wait_for(lag: int, live_ms: int, backlog_ms: int, backlog_messages: int) -> int:
    """The fetch wait for a worker whose inputs lag `lag` messages behind their highwaters:
    the backlog's while it is further behind than `backlog_messages`, else the live one."""
    return backlog_ms if lag > backlog_messages else live_ms


class VerifiedHighwaterThread(_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread with fetch-verified highwaters (see verified_end_offsets),
    and a fetch wait of our choosing.

    Faust fixes `fetch_max_wait_ms` at 1,500. This thread's consumer starts with the
    backlog wait and the worker then sets it from its lag (KpiWorker._pace_fetches):
    Faust's 1,500 ms once caught up, 200 ms while behind (settings.py). A broker that
    answers a long poll only when it expires rather than when records arrive (Tansu
    does, for a partition empty when the fetch came) delivers a record up to the wait
    late; a shorter wait sends it more fetches, each costing the embedded broker in
    proportion to its stored batches (settings.py).
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # KPI_FETCH_MAX_WAIT_MS, set on the app by streams.app.KpiWorker.
        wait = getattr(self.app, "kpi_fetch_max_wait_ms", None)
        if wait is not None:
            # Read by AIOKafkaConsumer.start() when it builds its fetcher.
            consumer._fetch_max_wait_ms = wait
        return consumer

    async def _highwaters(self, partitions: list[TP]) -> Any:
        consumer = self._ensure_consumer()
        if self.consumer.in_transaction:
            return await super()._highwaters(partitions)
        conf = self.app.conf
        transport = cast(Any, self.consumer).transport

        def make_probe() -> Any:
            import aiokafka

            auth = _aiokafka.credentials_to_aiokafka_auth(conf.broker_credentials,
                                                         conf.ssl_context)
            return aiokafka.AIOKafkaConsumer(
                bootstrap_servers=_aiokafka.server_list(transport.url,
                                                        transport.default_port),
                enable_auto_commit=False, **auth)

        return await verified_end_offsets(consumer, list(partitions), make_probe)


class BatchProducer(_aiokafka.Producer):
    """Faust's producer with room in its buffer for a whole batch's table writes.

    Table writes reach Kafka through Faust's `ProducerBuffer`; above `max_messages`
    pending (100, sized for one table write per event) the conductor holds the next
    message back until the buffer drains, and logs "producer buffer full" each time. A
    batch writes every key it changed at once (hundreds of changelog records), so every
    batch tripped it: a warning a few times a second and a pause per batch.
    """

    buffer_messages: ClassVar[int] = 5_000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.buffer.max_messages = self.buffer_messages
        # Awaited before Faust's own flush, which it awaits before every commit: records
        # queued outside Faust's buffer (streams/changelog.py) reach aiokafka first.
        self.before_flush: list[Callable[[], Awaitable[None]]] = []

    async def flush(self) -> None:
        for hook in self.before_flush:
            await hook()
        await super().flush()


class Transport(_aiokafka.Transport):
    """Faust's aiokafka transport with the batching consumer."""

    Consumer: ClassVar[type[ConsumerT]] = BatchingConsumer
    Producer: ClassVar[type[Any]] = BatchProducer
