"""A simulated month through the real broker and worker equals the pure fold of the file."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import cast

import pytest

from projections.pipeline import Pipeline
from schemas.decode import decode
from schemas.events import Event
from schemas.topics import topic_for_type
from streams.admin import create_topics
from streams.devtools.broker import EmbeddedBroker
from streams.ops import simulate
from streams.ops.produce import produce_file
from streams.settings import Settings
from tests.integration.workers import (
    WorkerProc,
    events_counted,
    settings_for,
    unique_prefix,
    wait_for,
)

pytestmark = pytest.mark.integration


def _events(path: Path) -> list[Event]:
    out = []
    for line in path.read_bytes().splitlines():
        d = json.loads(line)
        spec = topic_for_type(d["type"])
        ev = decode(spec.name, d[spec.key_field].encode() if spec.key_field else None, line)
        assert isinstance(ev, Event), ev
        out.append(ev)
    return out


def test_simulated_month_api_equals_pure_fold(broker: EmbeddedBroker, tmp_path: Path) -> None:
    feed = tmp_path / "month.jsonl"
    start = date(2026, 10, 1)
    n = simulate.write_jsonl(
        feed, simulate.historical(employees=12, start=start, days=31, seed=7), progress=False
    )
    assert n > 1000
    prefix = unique_prefix()
    s = settings_for(broker, prefix)
    create_topics(s)
    summary = produce_file(feed, bootstrap=broker.bootstrap, prefix=prefix,
                           client_options={}, progress=False)
    assert not summary.invalid and sum(summary.sent.values()) == n

    expected = Pipeline(live=True)
    events = _events(feed)
    expected.apply_all(events)
    employees = sorted({e.employee_id for e in events if hasattr(e, "employee_id")})
    days = sorted({e.occurred_at.astimezone(expected.cat.zone_at(e.occurred_at, None)).date()
                   for e in events})
    periods = ["2026-10", *[d.isoformat() for d in days if d.month == 10]]

    w = WorkerProc(broker, prefix, tmp_path / "state", log_path=tmp_path / "worker.log")
    w.start()
    try:
        last_emp = employees[-1]

        def caught_up() -> bool:
            # every accepted event counted by the worker: then all projections are written
            return events_counted(w) >= expected.applied

        wait_for(caught_up, timeout=240, interval=1.0, what="worker consumed the month")

        def matches() -> list[str]:
            diffs = []
            for emp in employees:
                for period in periods:
                    want = expected.employee(emp, period)
                    got = w.get(f"/kpi/employees/{emp}?{'month' if len(period) == 7 else 'date'}"
                                f"={period}")
                    if got.status != 200 or got.body != want:
                        diffs.append(f"{emp} {period}: {got.body} != {want}")
            return diffs

        # Facts travel through an internal topic: allow them to land.
        last: list[str] = []

        def equal() -> bool:
            nonlocal last
            last = matches()
            return not last

        try:
            wait_for(equal, timeout=120, interval=2.0, what=f"API == pure fold ({last_emp})")
        except AssertionError:
            raise AssertionError("\n".join(last[:5])) from None
    finally:
        w.stop()
    # The state a restarted or another worker would recover is exactly what this one held.
    _assert_changelogs_equal_stores(s, tmp_path / "state")


def _changelog(s: Settings, topic: str) -> dict[int, tuple[dict[bytes, bytes | None], int]]:
    """Per partition: the last value of each key (None: deleted) and the last offset."""
    from kafka import KafkaConsumer, TopicPartition

    from streams.admin import fetched_end_offsets

    c = KafkaConsumer(bootstrap_servers=s.bootstrap_list, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
        end = fetched_end_offsets(c, tps)
        c.seek_to_beginning(*tps)
        out: dict[int, tuple[dict[bytes, bytes | None], int]] = {
            tp.partition: ({}, -1) for tp in tps}
        while any(c.position(tp) < end[tp] for tp in tps):
            for tp, records in c.poll(timeout_ms=2000).items():
                values, _ = out[tp.partition]
                for r in records:
                    values[r.key] = r.value
                    out[tp.partition] = (values, r.offset)
        return out
    finally:
        c.close()


def _assert_changelogs_equal_stores(s: Settings, data_dir: Path) -> None:
    from rocksdict import AccessType, Options, Rdict

    offset_key = b"__faust\x00offset__"
    for table in ("tickets", "employees", "alert-timers"):
        log = _changelog(s, f"{s.topic_prefix}{s.app_id}-{table}-changelog")
        assert any(values for values, _ in log.values()), table
        for partition, (values, last_offset) in log.items():
            path = data_dir / "v1" / "tables" / f"{table}-{partition}.db"
            db = Rdict(str(path), Options(raw_mode=True), access_type=AccessType.read_only())
            try:
                # (raw mode: keys and values are bytes)
                stored = {cast(bytes, k): cast(bytes, v) for k, v in db.items()
                          if k != offset_key}
                persisted = db.get(offset_key)
            finally:
                db.close()
            logged = {k: v for k, v in values.items() if v is not None}
            assert stored == logged, f"{table}-{partition}: store and changelog differ"
            # Recovery reads the changelog after this offset: it must be the last record's.
            assert persisted is not None and int(bytes(persisted)) == last_offset, (
                f"{table}-{partition}: persisted {persisted!r}, last changelog {last_offset}")
