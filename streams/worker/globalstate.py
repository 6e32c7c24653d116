"""State every worker holds in full: the norm-order catalogue, the roster and the
generation registry, read from the beginning of their topics and then followed."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust

from processors.calendar import NormOrder, OrderCatalogue, with_cutoff
from projections.roster import Roster
from schemas.decode import Rejection, decode
from schemas.events import NormOrderIssued
from streams.worker.edge import observe, records_of
from streams.worker.follower import GenerationFollower
from streams.worker.generations import ensure_registry
from streams.worker.metrics import BatchObservations
from streams.worker.probes import BrokerState
from streams.worker.runtime import Runtime

log = logging.getLogger("kpi.worker")

GLOBAL_INPUTS = ("norm-orders", "roster")


class GlobalState:
    """Owns the catalogue, the roster and whether both are loaded, and the consumer that
    reads them (which the broker probe asks for metadata)."""

    def __init__(self, rt: Runtime, broker: BrokerState, orders_topic: Any) -> None:
        self.settings, self.app, self.metrics = rt.settings, rt.app, rt.metrics
        self.clock = rt.clock
        self.edge = rt.edge
        self.broker = broker
        self.orders_topic = orders_topic
        self.cat = OrderCatalogue()
        self.roster = Roster()
        self.loaded = asyncio.Event()
        self.consumer: Any = None
        self.generations = GenerationFollower(rt.settings, rt.app, self.loaded)

    def attach(self) -> None:
        self.app.agent(self.orders_topic, name="norm-orders")(self.orders_agent)
        self.app.task(self.load)
        self.generations.attach()

    def today(self) -> str:
        now = self.clock()
        return self.cat.local_date(now, now).isoformat()

    async def orders_agent(self, stream: faust.StreamT) -> None:
        """Validate and count norm orders once per group; every worker reads them in full."""
        seen_ids: set[str] = set()
        async for event in self.edge.events(stream, "norm-orders"):
            seen = BatchObservations()
            for msg in records_of(event):
                ev = await self.edge.decode(msg)
                if ev is None:
                    continue
                if str(ev.event_id) in seen_ids:
                    self.metrics.duplicates.labels("norm-orders").inc()
                    continue
                seen_ids.add(str(ev.event_id))
                observe(seen, msg, ev, "norm-orders")
            seen.flush(self.metrics, time.time())

    def _consumer(self) -> Any:
        from aiokafka import AIOKafkaConsumer

        s = self.settings
        return AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap_list,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            security_protocol=s.security_protocol,
            sasl_mechanism=s.sasl_mechanism or "PLAIN",
            sasl_plain_username=s.sasl_username,
            sasl_plain_password=(s.sasl_password.get_secret_value()
                                 if s.sasl_password else None),
        )

    async def load(self) -> None:
        """Read norm-orders and roster from the beginning, then follow them."""
        s = self.settings
        names = [s.topic(t) for t in GLOBAL_INPUTS]
        follows = s.follow_active or s.stop_when_built
        if follows:
            # The generation registry is followed here too (a compacted topic of a few
            # records): the follower then reads memory, instead of building a Kafka admin
            # client and a consumer every 2 s, which cost the live worker CPU and GIL time
            # and churned its heap.
            names.append(self.generations.registry_name)
        backoff = 0.5
        while True:
            consumer = self._consumer()
            try:
                if follows:
                    # Created up front, so that a registry appearing later is never missed.
                    await asyncio.get_running_loop().run_in_executor(None, ensure_registry, s)
                await consumer.start()
                self.consumer = consumer
                pending = await self._assign(consumer, names)
                self.broker.set(None)
                backoff = 0.5
                await self._read(consumer, pending)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker may be away: retry with backoff
                self.broker.set(f"cannot read norm-orders/roster: "
                                f"{exc.__class__.__name__}: {exc}")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                self.consumer = None
                await consumer.stop()

    async def _assign(self, consumer: Any, names: list[str]) -> set[Any]:
        """Assign every partition of `names`, from the beginning: the ones to read."""
        from aiokafka.structs import TopicPartition

        tps = []
        for name in names:
            parts = consumer.partitions_for_topic(name)
            if not parts:
                await consumer.client.force_metadata_update()
                parts = consumer.partitions_for_topic(name) or set()
            tps += [TopicPartition(name, p) for p in parts]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        return set(tps)

    async def _read(self, consumer: Any, pending: set[Any]) -> None:
        """Apply every record read, for as long as the consumer works."""
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=10000)
            for tp, records in batch.items():
                for rec in records:
                    self.apply(tp.topic, rec.key, rec.value)
            # Loaded when every partition is read up to the high watermark that a fetch
            # reported (not ListOffsets: see fastpath.verified_end_offsets).
            for tp in list(pending):
                hw = consumer.highwater(tp)
                if hw is not None and await consumer.position(tp) >= hw:
                    pending.discard(tp)
            if not pending and not self.loaded.is_set():
                log.info("norm orders (%d) and roster loaded", len(self.cat))
                self.loaded.set()

    def apply(self, full_topic: str, key: bytes | None, value: bytes | None) -> None:
        if full_topic == self.generations.registry_name:
            self.generations.apply(key, value)
            return
        topic = self.edge.topic_name(full_topic)
        result = decode(topic, key, value)
        if isinstance(result, Rejection):
            return  # the group's agent dead-letters it once; every worker just skips it
        if isinstance(result, NormOrderIssued):
            self.cat.add(with_cutoff(NormOrder.from_event(result), self.settings.orders_cutoff))
        else:
            self.roster.apply(result)
