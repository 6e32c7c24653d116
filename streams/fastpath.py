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
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from faust.transport.drivers import aiokafka as _aiokafka
from faust.types import TP, ConsumerT, Message
from mode import Service


@dataclass(slots=True)
class RecordBatch:
    """Consecutive records of one topic-partition, delivered to an agent as one event."""

    records: list[Any]


class BatchingConsumer(_aiokafka.Consumer):
    """The aiokafka consumer, delivering one message per fetched topic-partition chunk."""

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        """Yield (tp, batch message) for each partition's chunk of one fetch."""
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        if not self.flow_active:
            await self.perform_seek()
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


class Transport(_aiokafka.Transport):
    """Faust's aiokafka transport with the batching consumer."""

    Consumer: ClassVar[type[ConsumerT]] = BatchingConsumer
