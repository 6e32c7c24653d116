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
import enum
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from faust.transport.consumer import ensure_TP
from faust.transport.drivers import aiokafka as _aiokafka
from faust.types import TP, ConsumerT, Message
from faust.types.tuples import ack_lock
from mode import Service

log = logging.getLogger(__name__)


class Record:
    """One Kafka record of a batch, as the agents read it: Faust's message per record
    (about twenty fields, a TP, the consumer generation) cost ~3 % of a backlog's process
    to build, for six fields that are read. The names and meanings are Faust's
    (`timestamp` in seconds), so a handler takes either."""

    __slots__ = ("key", "offset", "partition", "timestamp", "topic", "value")

    def __init__(self, topic: str, partition: int, offset: int, timestamp: float | None,
                 key: bytes | None, value: bytes | None) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value


def records_from(tp: TP, chunk: list[Any]) -> list[Record]:
    """The agents' records of one fetched chunk (aiokafka ConsumerRecords)."""
    topic, partition = tp.topic, tp.partition
    return [Record(topic, partition, r.offset,
                   None if r.timestamp is None else r.timestamp / 1000.0, r.key, r.value)
            for r in chunk]


@dataclass(slots=True)
class RecordBatch:
    """Consecutive records of one topic-partition, delivered to an agent as one event."""

    records: list[Any]  # `Record`s (Faust's messages on its own transport)
    # ReadPositions.fetch_started() when the fetch that returned these records began.
    fetched_at: int = 0


class Verdict(enum.Enum):
    """What the drain loop does with a fetched chunk of an input partition."""

    DELIVER = "deliver"  # the records from the partition's next offset on
    SKIP = "skip"  # every record was delivered already (a seek replayed it)
    SEEK = "seek"  # a hole before the chunk: read again from the next offset
    DROP = "drop"  # fetched before the partition's latest seek, or before any seek


class ReadPositions:
    """The next offset each input partition must deliver, and which chunks may deliver it.

    Faust's `_read_offset` means two things: the last offset delivered (after a
    delivery) and the next offset to read (after `perform_seek` or `seek`); its own drain
    loop tolerates that by accepting records *at* the read offset again. A chunk-at-a-time
    drain cannot: after a rebalance, the read offset was the committed one C (not read
    yet), a chunk fetched before the seek arrived starting past C + 1, and seeking back to
    "read offset + 1" skipped record C, whose offset the next commit then covered: lost
    (the one failover failure seen with the agents' queue bound, where rebalances find
    fetched chunks waiting far more often). Here the next offset is one number with one
    meaning, set by seeks and advanced only by a completed hand-off.

    Chunks fetched before a seek of their partition completed are dropped, not judged,
    and the partition is sought again to its next offset (by the drain loop, or, for
    chunks dropped while `perform_seek` runs, by `perform_seek` once it knows the offsets):
    a chunk fetched after the consumer thread moved but before the seek was recorded
    here holds records nobody delivered, and without a new seek the fetcher would go on
    after them (seen: a worker that took partitions over stalled until new records came).
    A hole that remains (a fetch after the seek starts past the next
    offset: aborted transactions, compaction, retention) is confirmed by seeking back
    once and seeing the same chunk start again; only then is it accepted.
    """

    __slots__ = ("_dropped", "_epoch", "_hole", "_next", "_sought_at", "seeking")

    def __init__(self) -> None:
        self._next: dict[Any, int] = {}
        self._sought_at: dict[Any, int] = {}
        self._hole: dict[Any, tuple[int, int]] = {}
        self._dropped: set[Any] = set()
        # perform_seek calls in progress: chunks dropped meanwhile are sought at their end.
        self.seeking = 0
        # Bumped when a seek starts and when it completes; a fetch remembers it when it
        # starts, so "the fetch started before the partition's seek completed" is a compare.
        self._epoch = 0

    def fetch_started(self) -> int:
        return self._epoch

    def seek_started(self) -> None:
        self._epoch += 1

    def sought(self, tp: Any, offset: int) -> None:
        """A seek of `tp` to `offset` completed: the next record delivered must be `offset`."""
        self._epoch += 1
        self._sought_at[tp] = self._epoch
        self._next[tp] = offset

    def forget(self, tps: Iterable[Any]) -> None:
        """Partitions revoked: unknown until the next assignment seeks them."""
        for tp in tps:
            self._next.pop(tp, None)
            self._sought_at.pop(tp, None)
            self._hole.pop(tp, None)

    def dropped(self, tp: Any) -> None:
        """A chunk of `tp` was not delivered, though the fetcher went on after it: `tp` is
        to be sought again to its next offset (see take_dropped)."""
        self._dropped.add(tp)

    def take_dropped(self) -> list[Any]:
        """Partitions with chunks dropped since the last call, to seek once more: by the
        drain loop after each fetch, or by `perform_seek` once it knows the offsets."""
        out = list(self._dropped)
        self._dropped.clear()
        return out

    def next_offset(self, tp: Any) -> int | None:
        return self._next.get(tp)

    def delivered(self, tp: Any, last: int) -> None:
        """The agent's queue took a chunk ending at `last`."""
        if tp not in self._sought_at:
            # Revoked while the hand-off waited (a rebalance clears the queues): only a
            # seek gives a position back.
            return
        self._next[tp] = last + 1
        self._hole.pop(tp, None)

    def judge(self, tp: Any, first: int, last: int, fetch_epoch: int) -> Verdict:
        sought_at = self._sought_at.get(tp)
        if sought_at is None or sought_at > fetch_epoch:
            return Verdict.DROP
        nxt = self._next[tp]
        if last < nxt:
            return Verdict.SKIP
        if first <= nxt:
            return Verdict.DELIVER
        if self._hole.get(tp) == (nxt, first):
            return Verdict.DELIVER  # the same hole after seeking back: a real one
        self._hole[tp] = (nxt, first)
        return Verdict.SEEK


class BatchingConsumer(_aiokafka.Consumer):
    """The aiokafka consumer, delivering one message per fetched topic-partition chunk."""

    _kpi_positions: ReadPositions

    def __post_init__(self) -> None:
        super().__post_init__()
        self._kpi_positions = ReadPositions()

    async def perform_seek(self) -> None:
        """Faust's seek to committed offsets, plus the partitions aiokafka leaves alone.

        aiokafka's `seek_to_committed` does not move a partition that has no committed
        offset (or offset 0): it stays where the fetcher is. Faust drops records fetched
        while a partition is inactive (recovering) or under a previous assignment and
        relies on this seek to read them again; a partition that moved to this worker
        before its previous owner ever committed would lose them. Such a partition goes
        back to its beginning, which is what `auto_offset_reset=earliest` means, and
        re-reading is harmless: the state is idempotent.

        Every input partition's next offset is recorded in ReadPositions, and partitions
        whose chunks were dropped meanwhile are sought again (see ReadPositions).
        """
        positions = self._kpi_positions
        positions.seek_started()
        positions.seeking += 1
        try:
            committed = await self.seek_to_committed()
            # Changelog partitions (standbys) stay where table recovery left them:
            # nothing commits them, and reading them from the start after every
            # rebalance would only repeat work.
            changelogs = self._changelog_topics()
            committed = {tp: off for tp, off in committed.items()
                         if tp.topic not in changelogs}
            unset = [tp for tp, off in committed.items() if off is None or off <= 0]
            earliest: dict[Any, int] = {}
            if unset:
                await cast(Any, self)._thread.seek_to_beginning(*unset)
                try:
                    earliest = dict(await self.earliest_offsets(*unset))
                except Exception as exc:  # 0 then: a log starting later is a hole, confirmed
                    log.warning("could not read the earliest offsets of %s: %r", unset, exc)
            starts = {ensure_TP(tp): off if off is not None and off > 0
                      else earliest.get(tp) or 0 for tp, off in committed.items()}
            # Dropped while this seek ran, perhaps fetched after the consumer thread
            # moved: the fetcher went on after records nobody delivered. Sought again
            # before the positions are recorded, so that nothing is awaited after: Faust
            # clears the agents' queues when it resumes the flow right after this, and a
            # chunk delivered in between would be cleared with its position counted.
            for tp in positions.take_dropped():
                if tp in starts:
                    try:
                        await self._seek(tp, starts[tp])
                    except Exception as exc:  # rebalancing again: it seeks again
                        log.warning("%s: could not seek again to %d: %r", tp, starts[tp], exc)
            for tp, start in starts.items():
                positions.sought(tp, start)
        finally:
            positions.seeking -= 1
        read_offset = self._read_offset
        read_offset.update({tp: off if off is not None and off > 0 else None
                            for tp, off in committed.items()})
        self._committed_offset.update({ensure_TP(tp): off if off else None
                                       for tp, off in committed.items() if off is not None})

    def ack(self, message: Message) -> bool:
        """Faust's ack, except for a message delivered under an earlier assignment.

        Faust's stream skips such a message but acks it ("otherwise the lag would
        increase"), and after a revoke nothing bounds what an ack may commit: the
        partition's committed offset and gaps are gone. On the fast path a message is a
        whole chunk, put into an agent's queue after the rebalance cleared it (a put
        already woken when the queue was cleared) or processed while the new assignment
        had begun (stream_wait_empty is off): its ack committed offsets of records no
        agent had processed, or the gap of a later chunk still queued. Its records are
        read again from the committed offset instead.
        """
        generation = getattr(message, "generation_id", None)
        if generation is not None and generation != self.app.consumer_generation_id:
            with ack_lock:
                message.acked = True
                self._unacked_messages.discard(message)
            return False
        return bool(super().ack(message))

    async def _seek(self, partition: TP, offset: int) -> None:
        """Seek in the consumer's own thread: Faust seeks from the event loop's thread,
        racing the fetcher's bookkeeping (aiokafka is not thread-safe), and the fast path
        seeks after every dropped chunk, around rebalances, while recovery fetches.
        Errors are logged here rather than raised inside the consumer thread: a first
        version without this made stopped workers skip their LeaveGroup (suspected, not
        confirmed, to be a seek error stopping the thread)."""
        thread = cast(Any, self)._thread
        consumer = thread._ensure_consumer()
        tp = _aiokafka.ensure_aiokafka_TP(partition)

        async def seek() -> None:
            try:
                consumer.seek(tp, offset)
            except Exception as exc:  # not assigned any more: a rebalance seeks again
                log.warning("%s: seek to %d failed: %r", tp, offset, exc)

        await thread.call_thread(seek)

    async def _seek_again(self, tps: list[Any]) -> None:
        """Seek partitions whose chunks were dropped back to their next offsets."""
        positions = self._kpi_positions
        for tp in tps:
            nxt = positions.next_offset(tp)
            if nxt is None:
                continue  # revoked: the next assignment's perform_seek seeks it
            try:
                await self.seek(tp, nxt)
            except Exception as exc:  # a rebalance under way: its perform_seek seeks all
                log.warning("%s: could not seek again to %d: %r", tp, nxt, exc)

    async def seek(self, partition: TP, offset: int) -> None:
        self._kpi_positions.seek_started()
        await super().seek(partition, offset)
        self._kpi_positions.sought(ensure_TP(partition), offset)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        self._kpi_positions.forget(revoked)
        await super().on_partitions_revoked(revoked)

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
        fetched_at = self._kpi_positions.fetch_started()
        records, active_partitions = await self._wait_next_records(timeout)
        if records is None or self.should_stop:
            return
        # Every chunk not yielded below is marked dropped: the fetcher went on after its
        # records, so its partition is sought again to its next offset (by the drain loop
        # after this fetch, or by perform_seek when one runs), unless a seek after the
        # fetch moved it anyway. A fetch spanning a whole rebalance can hold records
        # fetched after that rebalance's seek.
        dropped = self._kpi_positions.dropped
        drop = self._drop_chunks
        if self.app.consumer_generation_id != generation_id:
            drop(records.items())
            return  # fetched under the previous assignment
        if not self.flow_active:
            drop(records.items())
            # As Faust's own getmany: seek back to committed offsets, and tolerate the
            # assignment moving under the seek (a rebalance in progress: it seeks again).
            await self._seek_to_committed("seek while flow not active failed "
                                          "(rebalancing): %r")
            return
        to_message = self._to_message
        changelogs = self._changelog_topics()
        chunks = list(records.items())
        for i, (tp, chunk) in enumerate(chunks):
            if not chunk:
                continue
            if not self.flow_active or self.app.consumer_generation_id != generation_id:
                drop(chunks[i:])  # a rebalance started: the rest is dropped
                break
            if not (active_partitions is None or tp in active_partitions
                    or tp in self._buffered_partitions):
                dropped(tp)  # paused since the fetch (a rebalance)
                continue
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            if tp.topic in changelogs:
                # Table recovery and standbys read changelogs through this same method and
                # expect one message per record.
                for r in chunk:
                    yield tp, to_message(tp, r)
                continue
            batch = to_message(tp, chunk[-1])
            batch.value = RecordBatch(records_from(tp, chunk),  # type: ignore[assignment]
                                      fetched_at)
            batch.key = None
            yield tp, batch

    def _drop_chunks(self, chunks: Iterable[tuple[Any, list[Any]]]) -> None:
        """Mark the partition of every non-empty chunk not delivered to be sought again."""
        dropped = self._kpi_positions.dropped
        for tp, chunk in chunks:
            if chunk:
                dropped(tp)

    async def _seek_to_committed(self, failure: str) -> None:
        """Seek every partition to its committed offset; a failure (the assignment moving
        under the seek: a rebalance under way, which seeks again) is logged."""
        try:
            await self.perform_seek()
        except Exception as exc:
            log.warning(failure, exc)

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
        positions = self._kpi_positions
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
                    await self._deliver_chunk(tp, batch)
                if not positions.seeking:  # else perform_seek does it when it ends
                    await self._seek_again(positions.take_dropped())
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise


    async def _deliver_chunk(self, tp: TP, batch: Any) -> None:  # pragma: no cover
        """Hand one fetched chunk to its agent, as its read position allows."""
        positions = self._kpi_positions
        value = batch.value
        records = value.records
        first, last = records[0].offset, records[-1].offset
        verdict = positions.judge(tp, first, last, value.fetched_at)
        nxt = positions.next_offset(tp)
        if verdict is Verdict.SKIP:
            return  # already delivered (a seek replayed it)
        if verdict is Verdict.DROP:
            # The fetcher went on after this chunk: sought again by the drain loop.
            positions.dropped(tp)
            if (nxt is None and not positions.seeking and self.flow_active
                    and not self.app.rebalancing):
                # Never sought outside a rebalance: should not happen.
                log.warning("%s: no read position; seeking to committed", tp)
                # A rebalance under way seeks all.
                await self._seek_to_committed("seek to committed failed: %r")
            return
        assert nxt is not None
        if verdict is Verdict.SEEK:
            log.warning("%s: chunk at %d, next offset %d; seeking back", tp, first, nxt)
            await self._seek_again([tp])
            return
        if first < nxt:
            # Records before the next offset were delivered already.
            value.records = records = [m for m in records if m.offset >= nxt]
        elif first > nxt:
            log.warning("%s: offsets %d-%d absent (the same chunk came after "
                        "seeking back); going on at %d", tp, nxt, first - 1, first)
        if self.app.topics.acks_enabled_for(batch.topic) and last - 1 >= nxt:
            # Offsets before the last one are committable once the batch message
            # (carrying the last offset) is acked, and so is a confirmed hole before
            # the chunk.
            await self._add_gap(tp, nxt, last - 1)
        if self._commit_every is not None and self._n_acked >= self._commit_every:
            self._n_acked = 0
            await self.commit()
        handoff = self.callback(batch)
        result = await self.wait_first(handoff, self.suspend_flow.wait())
        self._read_offset[tp] = last
        if handoff in result.done:
            # Not when a rebalance (suspend_flow) cut the hand-off short: the chunk may
            # not be queued, and the rebalance seeks anyway.
            positions.delivered(tp, last)
        await asyncio.sleep(0)


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
    backlog wait and the worker then sets it from its lag
    (streams.worker.probes.BrokerProbe.pace_fetches): Faust's 1,500 ms once caught up,
    200 ms while behind (settings.py). A broker that
    answers a long poll only when it expires rather than when records arrive (Tansu
    does, for a partition empty when the fetch came) delivers a record up to the wait
    late; a shorter wait sends it more fetches, each costing the embedded broker in
    proportion to its stored batches (settings.py).
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # KPI_FETCH_MAX_WAIT_MS, set on the app by streams.worker.faustapp.build_app.
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
        # queued outside Faust's buffer (streams/worker/changelog.py) reach aiokafka first.
        self.before_flush: list[Callable[[], Awaitable[None]]] = []

    async def flush(self) -> None:
        for hook in self.before_flush:
            await hook()
        await super().flush()


class Transport(_aiokafka.Transport):
    """Faust's aiokafka transport with the batching consumer."""

    Consumer: ClassVar[type[ConsumerT]] = BatchingConsumer
    Producer: ClassVar[type[Any]] = BatchProducer
