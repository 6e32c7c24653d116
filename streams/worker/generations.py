"""The durable record of projection generations, on a compacted topic every worker reads.

Key `gen-<N>` holds a generation's life (building, caught up, active, retired, pruned, and
the order cutoff it was built with); key `active` names the generation that serves. A
worker follows `active`: when it changes, the worker restarts itself on the new generation.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from streams.admin import BrokerUnavailable, fetched_end_offsets
from streams.settings import Settings

REGISTRY = "kpi-generations"


@dataclass
class Generation:
    number: int
    state: str = "building"  # building | caught_up | active | retired | failed | pruned
    started_at: str | None = None
    caught_up_at: str | None = None
    activated_at: str | None = None
    # Orders issued at or before this instant count as issued at the start (a replay).
    orders_cutoff: str | None = None
    events: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Registry:
    generations: dict[int, Generation]
    active: int | None

    @property
    def active_generation(self) -> int:
        return self.active if self.active is not None else 1

    def next_number(self) -> int:
        return max([self.active_generation, *self.generations]) + 1


def registry_topic(settings: Settings) -> str:
    return settings.topic(REGISTRY)


def ensure_registry(settings: Settings) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    try:
        admin = KafkaAdminClient(request_timeout_ms=10000, **settings.kafka_python_options())
    except (KafkaError, OSError) as exc:
        raise BrokerUnavailable(f"cannot reach Kafka at {settings.brokers}: {exc}") from exc
    try:
        if registry_topic(settings) in admin.list_topics():
            return
        for configs in ({"cleanup.policy": "compact"}, {}):
            try:
                admin.create_topics([NewTopic(registry_topic(settings), 1,
                                              settings.replication_factor,
                                              topic_configs=configs)])
                return
            except TopicAlreadyExistsError:
                return
            except KafkaError:
                if not configs:
                    raise
    finally:
        admin.close()


def read_registry(settings: Settings, timeout_s: float = 5.0) -> Registry:
    """The latest record of every key (a compacted topic read from the beginning)."""
    from kafka import KafkaConsumer, TopicPartition

    ensure_registry(settings)
    consumer = KafkaConsumer(enable_auto_commit=False, consumer_timeout_ms=int(timeout_s * 1000),
                             **settings.kafka_python_options())
    try:
        tp = TopicPartition(registry_topic(settings), 0)
        end = fetched_end_offsets(consumer, [tp])[tp]  # assigns it
        consumer.seek_to_beginning(tp)
        latest: dict[str, Any] = {}
        while consumer.position(tp) < end:
            batch = consumer.poll(timeout_ms=int(timeout_s * 1000))
            if not batch:
                break
            for records in batch.values():
                for r in records:
                    if r.key is not None:
                        latest[r.key.decode()] = json.loads(r.value) if r.value else None
    finally:
        consumer.close()
    gens = {}
    for key, value in latest.items():
        if key.startswith("gen-") and value:
            g = Generation(**value)
            gens[g.number] = g
    active = latest.get("active")
    return Registry(gens, int(active["generation"]) if active else None)


def write(settings: Settings, *, generation: Generation | None = None,
          active: int | None = None) -> None:
    from kafka import KafkaProducer

    ensure_registry(settings)
    producer = KafkaProducer(acks="all", **settings.kafka_python_options())
    try:
        if generation is not None:
            producer.send(registry_topic(settings), key=f"gen-{generation.number}".encode(),
                          value=json.dumps(asdict(generation)).encode(), partition=0)
        if active is not None:
            producer.send(registry_topic(settings), key=b"active",
                          value=json.dumps({"generation": active, "at": now_iso()}).encode(),
                          partition=0)
        producer.flush()
    finally:
        producer.close()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
