"""A mixed stream of invalid messages and duplicates through a real worker and broker."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from streams.devtools.broker import EmbeddedBroker
from tests import factory as f
from tests.integration.workers import (
    WorkerProc,
    fresh_prefix,
    metric,
    produce,
    produce_raw,
    wait_for,
)

pytestmark = pytest.mark.integration


def _dead_letters(broker: EmbeddedBroker, topic: str, expected: int) -> list[dict]:
    consumer = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=2000)
    found: list[dict] = []

    def enough() -> bool:
        for msg in consumer:
            found.append(json.loads(msg.value))
        return len(found) >= expected

    try:
        wait_for(enough, timeout=60, what=f"{expected} dead letters")
    finally:
        consumer.close()
    return found


def test_invalid_messages_go_to_dead_letters_and_valid_ones_count_once(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    prefix = fresh_prefix(broker)
    w = WorkerProc(broker, prefix, tmp_path / "state", log_path=tmp_path / "worker.log")
    produce(broker, prefix, [f.order()])
    w.start()
    try:
        t = prefix + "tickets"
        good = f.opened("t-1", "2026-11-02T10:00:00+03:00", "e-1", decisions=["tariff_change"])
        naive = f.opened("t-2", "2026-11-02T10:00:00", "e-1")
        missing = f.opened("t-3", "2026-11-02T10:00:00+03:00", "e-1")
        del missing["priority"]
        wrong_type = f.opened("t-4", "2026-11-02T10:00:00+03:00", "e-1", line="1")
        bad_enum = f.opened("t-5", "2026-11-02T10:00:00+03:00", "e-1", priority="P9")
        newer = dict(f.opened("t-6", "2026-11-02T10:00:00+03:00", "e-1"), schema_version=99)
        call_on_tickets = f.call("e-1", "2026-11-02T10:00:00+03:00")
        cases: list[tuple[bytes | None, bytes, str]] = [
            (b"t-x", b"\xff\xfe not utf8", "not_utf8"),
            (b"t-x", b"{not json", "invalid_json"),
            (b"t-x", b"[1, 2]", "invalid_json"),
            (b"t-x", b'{"type": "ticket.bogus"}', "unknown_type"),
            (b"e-1", json.dumps(call_on_tickets).encode(), "wrong_topic"),
            (b"t-6", json.dumps(newer).encode(), "unsupported_version"),
            (b"t-3", json.dumps(missing).encode(), "missing_field"),
            (b"t-4", json.dumps(wrong_type).encode(), "wrong_type"),
            (b"t-5", json.dumps(bad_enum).encode(), "invalid_value"),
            (b"other", json.dumps(good).encode(), "invalid_value"),  # key differs
            (None, json.dumps(good).encode(), "invalid_value"),  # no key
            (b"t-2", json.dumps(naive).encode(), "naive_timestamp"),
        ]
        for key, value, _ in cases:
            produce_raw(broker, t, key, value)
        # the valid event, twice (a redelivery), and a valid call, twice
        c = f.call("e-1", "2026-11-02T11:00:00+03:00")
        produce(broker, prefix, [good, good, c, c])

        letters = _dead_letters(broker, prefix + "dead-letters", len(cases))
        assert len(letters) == len(cases)
        by_value = {(d["value"], d["value_encoding"], d["key"]): d for d in letters}
        for key, value, reason in cases:
            try:
                text, enc = value.decode(), "text"
            except UnicodeDecodeError:
                text, enc = base64.b64encode(value).decode(), "base64"
            d = by_value[(text, enc, key.decode() if key is not None else None)]
            assert d["reason"] == reason, (value, d)
            assert d["type"] == "dead_letter" and d["topic"] == "tickets"
            assert isinstance(d["offset"], int) and isinstance(d["partition"], int)
            assert d["detail"]

        def counted() -> bool:
            m = w.get("/metrics").body
            return (metric(m, "kpi_events_total", topic="tickets", type="ticket.opened") == 1.0
                    and metric(m, "kpi_events_total", topic="calls",
                               type="call.completed") == 1.0)

        wait_for(counted, what="valid events counted once")
        day = w.get("/kpi/employees/e-1?date=2026-11-02").body
        assert day["kpi_minutes"] == 6.0 and day["calls"]["answered"] == 1
        metrics = w.get("/metrics").body
        assert metric(metrics, "kpi_dead_letters_total", topic="tickets",
                      reason="naive_timestamp") == 1.0
        assert metric(metrics, "kpi_dead_letters_total", topic="tickets",
                      reason="invalid_value") == 3.0
        assert w.get("/health").status == 200  # the worker kept running
    finally:
        w.stop()
