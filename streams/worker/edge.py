"""What every agent does at the edge: take records out of fetched batches, decode them
(invalid ones go to dead-letters with their reason), count them, and stop the process on
a defect before anything is committed."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, cast

import faust

from schemas.decode import Rejection, dead_letter_value, decode
from schemas.events import Event
from streams.settings import Settings
from streams.worker.fastpath import RecordBatch
from streams.worker.metrics import BatchObservations, Metrics

log = logging.getLogger("kpi.worker")


def queued_records(events: Iterable[Any]) -> int:
    """The Kafka records that queued agent events stand for (a batch counts its records)."""
    return sum(len(e.value.records) if isinstance(e.value, RecordBatch) else 1 for e in events)


def records_of(event: faust.EventT) -> list[Any]:
    """The Kafka records an event stands for (one, or a whole fetched batch)."""
    value = event.value
    if isinstance(value, RecordBatch):
        return value.records
    return [event.message]


def observe(seen: BatchObservations, msg: Any, ev: Event, topic: str) -> None:
    seen.add(topic, ev.type, ev.occurred_at.timestamp(), msg.timestamp)


async def guarded(handler: Callable[[list[Any]], Awaitable[None]], records: list[Any]) -> None:
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


class Edge:
    """Decoding and dead-lettering of the input topics, shared by the agents."""

    def __init__(self, settings: Settings, metrics: Metrics, dead_letters: Any) -> None:
        self.settings = settings
        self.metrics = metrics
        self.dead_letters = dead_letters
        self._prefix_len = len(settings.topic_prefix)

    def topic_name(self, full: str) -> str:
        return full[self._prefix_len:]

    async def decode(self, msg: Any) -> Event | None:
        """Validate one record; invalid ones go to dead-letters with their reason."""
        topic = self.topic_name(msg.topic)
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

    async def events(self, stream: faust.StreamT, agent: str) -> AsyncIterator[faust.EventT]:
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

    async def run_batches(self, stream: faust.StreamT, agent: str, loaded: asyncio.Event,
                          handler: Callable[[list[Any]], Awaitable[None]]) -> None:
        """An agent: once the global state is loaded, each event's records to `handler`
        (a batch of one partition; state goes through a write-back cache so each key is
        written, and changelogged, once per batch)."""
        await loaded.wait()
        async for event in self.events(stream, agent):
            await guarded(handler, records_of(event))
