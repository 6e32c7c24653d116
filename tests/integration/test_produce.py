"""A JSONL file reaches the real broker line for line; bad lines and a dead broker are reported."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import date
from itertools import islice
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from schemas.topics import prefixed
from streams.admin import create_topics
from streams.devtools.broker import EmbeddedBroker, free_port
from streams.ops.produce import BrokerUnavailable, produce_file
from streams.ops.simulate import dumps, historical, to_record
from streams.settings import Settings

pytestmark = pytest.mark.integration


def _consume(broker: EmbeddedBroker, topics: list[str], expected: int
             ) -> list[tuple[str, bytes | None, bytes | None]]:
    consumer = KafkaConsumer(*topics, bootstrap_servers=broker.bootstrap,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             group_id=None, consumer_timeout_ms=1000)
    got: list[tuple[str, bytes | None, bytes | None]] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                got.extend((r.topic, r.key, r.value) for r in records)
    finally:
        consumer.close()
    return got


def test_valid_lines_go_out_unchanged_and_bad_ones_are_reported(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    create_topics(Settings(brokers=broker.bootstrap, topic_prefix=prefix, partitions=2))
    events = list(islice(historical(employees=5, start=date(2026, 11, 2), days=2, seed=3), 300))
    good = [dumps(e) for e in events]
    # A line with spaces is sent byte for byte, not re-serialised.
    good[5] = good[5].replace(b'","', b'", "', 1)
    bad = [
        b"{not json",
        b'{"type": "ticket.vanished", "event_id": "x"}',
        dumps({**events[10], "occurred_at": "2026-11-02T10:00:00"}),
    ]
    lines = [*good[:100], b"", bad[0], *good[100:200], b"   ", bad[1], bad[2], *good[200:]]
    path = tmp_path / "feed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    summary = produce_file(path, bootstrap=broker.bootstrap, prefix=prefix,
                           client_options={}, progress=False)

    want = Counter(to_record(e)[0] for e in events)
    assert summary.sent == dict(want)
    bad_lines = {no: reason for no, reason, _ in summary.invalid}
    assert bad_lines == {102: "invalid_json", 204: "unknown_type", 205: "naive_timestamp"}
    assert all(detail for _, _, detail in summary.invalid)

    got = _consume(broker, [prefixed(t, prefix) for t in want], len(events))
    expected = Counter((prefixed(t, prefix), k, v) for (t, k, _), v in
                       zip((to_record(e) for e in events), good, strict=True))
    assert Counter(got) == expected


def test_an_unreachable_broker_fails_fast(tmp_path: Path) -> None:
    path = tmp_path / "feed.jsonl"
    path.write_bytes(dumps(next(historical(employees=1, start=date(2026, 11, 2), days=1,
                                           seed=1))) + b"\n")
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="cannot reach Kafka"):
        produce_file(path, bootstrap=f"127.0.0.1:{free_port()}", prefix="",
                     client_options={"bootstrap_timeout_ms": 2000}, progress=False)
    assert time.monotonic() - started < 10


def test_kpi_produce_lists_every_problem_and_exits_1_when_a_line_is_left_out(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from streams.cli import cli

    prefix = f"t{uuid.uuid4().hex[:8]}."
    events = list(islice(historical(employees=2, start=date(2026, 11, 2), days=1, seed=5), 20))
    ticket = next(e for e in events if e["type"] == "ticket.opened")
    two_problems = {**ticket, "occurred_at": "2026-11-02T10:00:00"}
    del two_problems["priority"]
    path = tmp_path / "feed.jsonl"
    path.write_bytes(b"\n".join([*map(dumps, events), dumps(two_problems)]) + b"\n")
    args = ["--brokers", broker.bootstrap, "--prefix", prefix, "produce", str(path)]

    result = CliRunner().invoke(cli, args)

    assert result.exit_code == 1, result.output
    assert f"sent {len(events)} events" in result.output
    line = len(events) + 1
    assert f"line {line}: missing_field: priority" in result.output
    assert f"line {line}: naive_timestamp: occurred_at" in result.output
    assert "1 invalid line(s) not sent" in result.output

    path.write_bytes(b"\n".join(map(dumps, events)) + b"\n")
    clean = CliRunner().invoke(cli, args)
    assert clean.exit_code == 0, clean.output
