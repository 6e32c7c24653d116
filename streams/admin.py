"""Topic administration with kafka-python: create every topic we need, idempotently."""

from __future__ import annotations

from typing import Any

from streams.settings import Settings

# Input topics keep full history: a replay reads them from the beginning.
_KEEP_FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}
INTERNAL_TOPICS = ("ticket-notices", "employee-facts", "customer-contacts", "department-days")
# The worker's tables; each has a changelog topic `<group>-<table>-changelog`.
TABLES = ("tickets", "employees", "alert-timers", "customers", "departments")


class BrokerUnavailable(RuntimeError):
    """No broker answered at the configured address."""


def _admin(settings: Settings, timeout_ms: int = 10000) -> Any:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        return KafkaAdminClient(request_timeout_ms=timeout_ms, **settings.kafka_python_options())
    except (KafkaError, OSError, ValueError) as exc:
        raise BrokerUnavailable(f"cannot reach Kafka at {settings.brokers}: {exc}") from exc


def wanted_topics(settings: Settings) -> dict[str, dict[str, str]]:
    """Full topic name -> configs, for the input and output topics and this generation's
    internals."""
    from schemas.topics import TOPICS

    out: dict[str, dict[str, str]] = {}
    for spec in TOPICS.values():
        out[settings.topic(spec.name)] = dict(_KEEP_FOREVER) if spec.direction == "in" else {}
    for name in INTERNAL_TOPICS:
        out[settings.internal_topic(name)] = {}
    return out


def create_topics(settings: Settings) -> tuple[list[str], list[str]]:
    """Create missing topics; returns (created, already there). Idempotent."""
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    admin = _admin(settings)
    try:
        existing = set(admin.list_topics())
        wanted = wanted_topics(settings)
        missing = [n for n in wanted if n not in existing]
        created: list[str] = []
        for name in missing:
            for configs in (wanted[name], {}):  # some brokers reject topic configs: retry bare
                try:
                    admin.create_topics([NewTopic(name, settings.partitions,
                                                  settings.replication_factor,
                                                  topic_configs=configs)])
                    created.append(name)
                    break
                except TopicAlreadyExistsError:
                    break
                except KafkaError:
                    if not configs:
                        raise
        return created, sorted(set(wanted) - set(missing))
    except KafkaError as exc:
        raise BrokerUnavailable(f"topic creation failed at {settings.brokers}: {exc}") from exc
    finally:
        admin.close()


def delete_topics(settings: Settings, names: list[str]) -> None:
    admin = _admin(settings)
    try:
        existing = set(admin.list_topics())
        doomed = [n for n in names if n in existing]
        if doomed:
            admin.delete_topics(doomed)
    finally:
        admin.close()


def partitions_of(settings: Settings, name: str) -> int | None:
    """How many partitions an existing topic has (None when it does not exist)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(request_timeout_ms=10000, **settings.kafka_python_options())
    try:
        parts = consumer.partitions_for_topic(name)
        return len(parts) if parts else None
    finally:
        consumer.close()


def list_topics(settings: Settings) -> list[str]:
    admin = _admin(settings)
    try:
        return sorted(admin.list_topics())
    finally:
        admin.close()


def fetched_end_offsets(consumer: Any, tps: list[Any], timeout: float = 15.0) -> dict[Any, int]:
    """End offsets of kafka-python TopicPartitions, confirmed by a fetch.

    ListOffsets(latest) is only trusted as a lower bound: Tansu (the embedded broker)
    answers it with the base offset of the last record batch + 1, so a reader stopping
    there misses the rest of that batch. A fetch from just before it reports the true high
    watermark (on Apache Kafka both agree; this costs one small fetch per partition).
    Leaves the consumer assigned to `tps`; callers seek where they want to read.
    """
    import time

    from kafka.errors import KafkaTimeoutError

    if not tps:
        return {}
    ends = {tp: int(off) for tp, off in consumer.end_offsets(tps).items()}
    probe = [tp for tp in tps if ends.get(tp, 0) > 0]
    consumer.assign(list(tps))
    for tp in probe:
        consumer.seek(tp, ends[tp] - 1)
    pending = set(probe)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        consumer.poll(timeout_ms=200, max_records=1, update_offsets=False)
        for tp in list(pending):
            hw = consumer.highwater(tp)
            if hw is not None:
                ends[tp] = max(ends[tp], int(hw))
                pending.discard(tp)
    if pending:
        raise KafkaTimeoutError(f"no fetch answered for {sorted(map(str, pending))} "
                                f"within {timeout:.0f}s")
    return ends
