"""Publish a JSONL file of events: valid lines go out unchanged, the rest are reported."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas.decode import Rejection, decode
from schemas.topics import prefixed, topic_for_type
from streams.ops.simulate import progress_bar

TIMEOUT_MS = 10_000
# Unroutable lines still get their reason from the decoder; any input topic will do,
# since not_utf8, invalid_json and unknown_type are found before the topic is checked.
_PROBE_TOPIC = "tickets"


class BrokerUnavailable(RuntimeError):
    """Kafka could not be reached (or stopped answering) within the client timeouts."""


class DeliveryFailed(BrokerUnavailable):
    """Some records were never acknowledged by the broker."""


@dataclass
class ProduceSummary:
    """What a file publish did: records acknowledged per topic, and lines left out."""

    sent: dict[str, int] = field(default_factory=dict)
    invalid: list[tuple[int, str, str]] = field(default_factory=list)  # (line, reason, detail)
    # every problem of each invalid line, (reason, detail) in the contract's order; the
    # first is the one in `invalid` (the reason a dead letter would carry)
    problems: dict[int, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    @property
    def rejected(self) -> bool:
        return bool(self.invalid)


@dataclass(frozen=True)
class _Routed:
    topic: str  # unprefixed topic name
    key: bytes | None


def route(value: bytes) -> _Routed | Rejection:
    """The would-be topic and key of one line, or why it has none."""
    try:
        obj = json.loads(value)
    except ValueError:
        obj = None
    type_ = obj.get("type") if isinstance(obj, dict) else None
    spec = None
    if isinstance(type_, str):
        try:
            spec = topic_for_type(type_)
        except (KeyError, ValueError):
            spec = None
    if spec is None:
        probe = decode(_PROBE_TOPIC, None, value)
        if isinstance(probe, Rejection):
            return probe
        return Rejection(reason="unknown_type", detail=f"no topic for type {type_!r}")
    assert isinstance(obj, dict)
    raw_key = obj.get(spec.key_field) if spec.key_field else None
    key = raw_key.encode() if isinstance(raw_key, str) else None
    return _Routed(spec.name, key)


def check_line(value: bytes) -> tuple[str, bytes | None] | Rejection:
    """(topic, key) for a line that is a valid event on its own topic, else the rejection."""
    routed = route(value)
    if isinstance(routed, Rejection):
        return routed
    result = decode(routed.topic, routed.key, value)
    if isinstance(result, Rejection):
        return result
    return routed.topic, routed.key


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as f:
        for no, line in enumerate(f, start=1):
            yield no, line.rstrip(b"\r\n")


def _count_lines(path: Path) -> int:
    n = 0
    last = b"\n"
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


def _producer(bootstrap: str, client_options: dict[str, Any]) -> Any:
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    options = {
        # Bounded waits, so a dead broker is an error in seconds, not a hang; callers may
        # still tune them through client_options.
        "linger_ms": 20,
        "batch_size": 256 * 1024,
        "max_block_ms": TIMEOUT_MS,
        "request_timeout_ms": TIMEOUT_MS,
        "bootstrap_timeout_ms": TIMEOUT_MS,
        "delivery_timeout_ms": 3 * TIMEOUT_MS,
        **client_options,
        "bootstrap_servers": [b.strip() for b in bootstrap.split(",") if b.strip()],
        "acks": "all",
    }
    try:
        return KafkaProducer(**options)
    except (KafkaError, OSError) as exc:
        raise BrokerUnavailable(f"cannot reach Kafka at {bootstrap}: {exc}") from exc


def produce_file(path: Path, *, bootstrap: str, prefix: str, client_options: dict[str, Any],
                 progress: bool = True) -> ProduceSummary:
    """Send every valid event of a JSONL file to its topic, keyed by its key field."""
    from kafka.errors import KafkaError

    path = Path(path)
    total = _count_lines(path)
    summary = ProduceSummary()
    acked: Counter[str] = Counter()
    errors: list[BaseException] = []
    lock = threading.Lock()

    def on_ok(topic: str) -> Any:
        def cb(_: Any) -> None:
            with lock:
                acked[topic] += 1
        return cb

    def on_error(exc: BaseException) -> None:
        with lock:
            errors.append(exc)

    producer = _producer(bootstrap, client_options)
    try:
        with progress_bar("lines", enabled=progress) as bar:
            task = bar.add_task(f"producing {path.name}", total=total)
            for no, value in _lines(path):
                if value.strip():
                    checked = check_line(value)
                    if isinstance(checked, Rejection):
                        summary.invalid.append((no, checked.reason, checked.detail))
                        summary.problems[no] = (checked.problems
                                                or ((checked.reason, checked.detail),))
                    else:
                        topic, key = checked
                        future = producer.send(prefixed(topic, prefix), value=value, key=key)
                        future.add_callback(on_ok(topic)).add_errback(on_error)
                if no % 500 == 0:
                    bar.update(task, completed=no)
                    if errors:
                        break
            bar.update(task, completed=total)
            producer.flush(timeout=3 * TIMEOUT_MS / 1000)
    except KafkaError as exc:
        raise BrokerUnavailable(f"Kafka at {bootstrap} stopped answering: {exc}") from exc
    finally:
        producer.close(timeout=TIMEOUT_MS / 1000)
    if errors:
        raise DeliveryFailed(f"{len(errors)} record(s) not acknowledged by {bootstrap}: "
                             f"{errors[0]}")
    summary.sent = dict(sorted(acked.items()))
    return summary
