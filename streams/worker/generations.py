"""The durable record of projection generations, on a compacted topic every worker reads.

Key `gen-<N>` holds a generation's life (building, caught up, active, retired, pruned, and
the order cutoff it was built with); key `active` names the generation that serves. A
worker follows `active`: when it changes, the worker restarts itself on the new generation.

A generation's order cutoff is part of what the generation *is*: its figures were folded
with every order issued by the cutoff counted as issued at the start. Every process that
builds or serves a generation (the replay worker, a worker following the switch, one
restarted later, one recovering on an empty disk) takes the cutoff from here
(`serving_settings`), so they all see the orders exactly as the replay did. A worker that
saw them otherwise would re-fold tickets under live semantics and serve live figures
again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
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


class UnknownGeneration(RuntimeError):
    """A worker was asked for a generation the registry has never recorded."""


class NothingToBuild(RuntimeError):
    """A building worker was asked for a generation whose replay is over."""


def cutoff_of(reg: Registry, number: int) -> datetime | None:
    """The order cutoff a generation was built with; None: live semantics (generation 1)."""
    g = reg.generations.get(number)
    return datetime.fromisoformat(g.orders_cutoff) if g and g.orders_cutoff else None


def resolve(reg: Registry, settings: Settings) -> Settings:
    """The settings of the generation this worker serves, with that generation's cutoff.

    Following the registry: the active generation; otherwise (a replay worker) the one it
    was started for. A generation above 1 must be recorded: its cutoff cannot be guessed.
    A building worker of another machine (`stop_when_built`) only builds a generation
    that is still building.
    """
    number = reg.active_generation if settings.follow_active else settings.generation
    if number > 1 and number not in reg.generations:
        raise UnknownGeneration(f"generation {number} is not in the registry "
                                f"{registry_topic(settings)!r}")
    g = reg.generations.get(number)
    if settings.stop_when_built and g is not None and g.state != "building":
        # A restarted container or a retried job would otherwise join its serving group.
        raise NothingToBuild(f"generation {number} is {g.state}: there is nothing to build "
                             "(serving workers follow the registry's active generation)")
    return settings.model_copy(update={"generation": number,
                                       "orders_cutoff": cutoff_of(reg, number)})


def serving_settings(settings: Settings, say: Callable[[str], None],
                     sleep: Callable[[float], None] = time.sleep,
                     read: Callable[[Settings], Registry] | None = None) -> Settings:
    """`resolve` against the registry read now.

    Generation 1 is live: a worker that cannot read the registry serves it, and switches
    when it reads `active` later (the worker follows the registry topic). A later
    generation's figures depend on its recorded cutoff, so such a worker waits for the
    registry rather than fold with live semantics.
    """
    read = read or read_registry
    backoff = 1.0
    while True:
        try:
            reg = read(settings)
        except Exception as exc:  # the broker may be away for a moment
            if settings.generation <= 1:
                say(f"kpi worker: generation registry unreadable ({exc}); serving "
                    "generation 1 (live orders) until it is read")
                return settings.model_copy(update={"generation": 1, "orders_cutoff": None})
            say(f"kpi worker: generation registry unreadable ({exc}); generation "
                f"{settings.generation} needs its order cutoff from it: retrying in "
                f"{backoff:.0f}s")
            sleep(backoff)
            backoff = min(backoff * 2, 15.0)
            continue
        resolved = resolve(reg, settings)
        if resolved.generation != settings.generation:
            say(f"kpi worker: serving the active generation {resolved.generation}")
        cutoff = resolved.orders_cutoff
        say(f"kpi worker: generation {resolved.generation}, orders "
            + (f"issued by {cutoff.isoformat()} count from the start (replay cutoff)"
               if cutoff else "as issued (live)"))
        return resolved
