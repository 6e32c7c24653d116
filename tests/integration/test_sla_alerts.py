"""Live SLA alerts on the embedded broker: warning and breach on time, none when resolved."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from processors.ticket import THRESHOLD_FRACTION
from schemas.outputs import alert_event_id
from streams.devtools.broker import EmbeddedBroker
from tests import factory as f
from tests.integration.workers import WorkerProc, fresh_prefix, metric, produce, wait_for

pytestmark = pytest.mark.integration

# A wall-clock P1 target of 0.2 min (12 s) first response and 0.4 min (24 s) resolution.
FAST = {"P1": {"first_response_minutes": 0.2, "resolution_minutes": 0.4,
               "business_hours": False}}


def _topics_with_order(broker: EmbeddedBroker, targets: dict) -> str:
    """A fresh topic prefix whose norm order (in force since yesterday) has `targets`."""
    prefix = fresh_prefix(broker)
    now = datetime.now(UTC)
    produce(broker, prefix, [f.order((now - timedelta(days=1)).isoformat(),
                                     effective_from=(now - timedelta(days=2)).date().isoformat(),
                                     sla_targets=targets)])
    return prefix


ALL_FOUR = [("first_response", "sla.breached"), ("first_response", "sla.warning"),
            ("resolution", "sla.breached"), ("resolution", "sla.warning")]


def _assert_on_time(alert: dict, opened_at: datetime, targets: dict[str, int]) -> None:
    """The alert's moment is its threshold's fraction of the target (seconds) after
    `opened_at`."""
    moment = datetime.fromisoformat(alert["occurred_at"])
    frac = THRESHOLD_FRACTION[alert["type"][4:]]
    expected = float(targets[alert["target"]] * frac)
    assert abs((moment - opened_at).total_seconds() - expected) < 0.01


def test_short_target_warns_then_breaches_and_resolved_one_stays_quiet(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    prefix = _topics_with_order(broker, FAST)
    w = WorkerProc(broker, prefix, tmp_path / "state", log_path=tmp_path / "worker.log")
    w.start()
    try:
        opened_at = datetime.now(UTC)
        produce(broker, prefix, [
            f.opened("t-open", opened_at.isoformat(), "e-1", priority="P1"),
            f.opened("t-done", opened_at.isoformat(), "e-1", priority="P1"),
            f.first_response("t-done", (opened_at + timedelta(seconds=2)).isoformat(), "e-1"),
            f.resolved("t-done", (opened_at + timedelta(seconds=3)).isoformat(), "e-1"),
        ])
        consumer = KafkaConsumer(prefix + "sla-alerts", bootstrap_servers=broker.bootstrap,
                                 auto_offset_reset="earliest", consumer_timeout_ms=1000)
        alerts: list[tuple[datetime, dict]] = []

        def four_alerts() -> bool:
            for msg in consumer:
                alerts.append((datetime.now(UTC), json.loads(msg.value)))
            return len(alerts) >= 4

        wait_for(four_alerts, timeout=90, what="4 alerts for t-open")
        consumer.close()
        assert sorted((a["target"], a["type"]) for _, a in alerts) == ALL_FOUR
        for _, a in alerts:
            assert a["ticket_id"] == "t-open" and a["priority"] == "P1"
            assert a["employee_id"] == "e-1" and a["department_id"] == "d-1"
            assert a["event_id"] == str(alert_event_id("t-open", a["target"], a["type"][4:]))
            _assert_on_time(a, opened_at, {"first_response": 12, "resolution": 24})
        ticket = w.get("/tickets/t-open").body
        assert ticket["sla"]["first_response"]["state"] == "breached"
        assert w.get("/tickets/t-done").body["sla"]["resolution"]["state"] == "met"
        assert metric(w.get("/metrics").body, "kpi_sla_open_breached_tickets",
                      priority="P1") == 1.0
    finally:
        w.stop()


# 30 s first response, 60 s resolution: a worker can be stopped before the first threshold.
SLOWER = {"P1": {"first_response_minutes": 0.5, "resolution_minutes": 1.0,
                 "business_hours": False}}


def test_thresholds_reached_while_the_worker_was_down_alert_after_its_restart(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """The alert timer scans an in-memory index of the timer table: after a restart it
    is rebuilt from the recovered table, so thresholds passed while no worker ran still
    alert (first response), and later ones alert on time (resolution)."""
    prefix = _topics_with_order(broker, SLOWER)
    state = tmp_path / "state"
    w = WorkerProc(broker, prefix, state, log_path=tmp_path / "worker-1.log").start()
    opened_at = datetime.now(UTC)
    try:
        produce(broker, prefix, [f.opened("t-down", opened_at.isoformat(), "e-1",
                                          priority="P1")])
        wait_for(lambda: w.get("/tickets/t-down").status == 200, timeout=60,
                 what="t-down folded")
    finally:
        w.stop()
    first_response_breach = opened_at + timedelta(seconds=30)
    while datetime.now(UTC) < first_response_breach + timedelta(seconds=1):
        time.sleep(0.5)
    w = WorkerProc(broker, prefix, state, log_path=tmp_path / "worker-2.log").start()
    try:
        consumer = KafkaConsumer(prefix + "sla-alerts", bootstrap_servers=broker.bootstrap,
                                 auto_offset_reset="earliest", consumer_timeout_ms=1000)
        alerts: dict[str, dict] = {}  # by event_id: a redelivered alert is the same alert

        def all_four() -> bool:
            for msg in consumer:
                a = json.loads(msg.value)
                alerts[a["event_id"]] = a
            return len(alerts) >= 4

        wait_for(all_four, timeout=120, what="4 alerts for t-down")
        consumer.close()
        assert sorted((a["target"], a["type"]) for a in alerts.values()) == ALL_FOUR
        for a in alerts.values():
            _assert_on_time(a, opened_at, {"first_response": 30, "resolution": 60})
        assert metric(w.get("/metrics").body, "kpi_sla_open_breached_tickets",
                      priority="P1") == 1.0
    finally:
        w.stop()


# An hour to first response, two to resolution: a backlog's tickets are hours old.
HOURS = {"P1": {"first_response_minutes": 60, "resolution_minutes": 120,
                "business_hours": False}}


def test_a_backlog_alerts_only_tickets_open_at_their_moments(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """A worker catching up a backlog (here, tickets of half a day ago produced before it
    starts) alerts a ticket only if it was still open at the threshold's moment: one
    resolved in time, further on in the backlog, owes nothing even though the wall clock
    passed its thresholds long ago; one never resolved owes all four, sent once the
    worker has caught up."""
    prefix = _topics_with_order(broker, HOURS)
    t0 = datetime.now(UTC) - timedelta(hours=12)  # the order is in force from a day ago

    def at(minutes: float) -> str:
        return (t0 + timedelta(minutes=minutes)).isoformat()

    feed = [f.opened("t-owed", at(0), "e-1", priority="P1"),
            f.opened("t-late", at(0), "e-1", priority="P1")]
    # Thousands of other tickets, each answered and resolved within a minute, between
    # t-late's opening and its answer: many fetched batches and alert timer ticks apart.
    n = 6_000
    for i in range(n):
        m = 10 * i / n
        feed += [f.opened(f"t-{i}", at(m), "e-2", priority="P1"),
                 f.first_response(f"t-{i}", at(m + 0.2), "e-2"),
                 f.resolved(f"t-{i}", at(m + 0.5), "e-2")]
    feed += [f.first_response("t-late", at(10), "e-1"), f.resolved("t-late", at(30), "e-1")]
    produce(broker, prefix, feed)
    w = WorkerProc(broker, prefix, tmp_path / "state", log_path=tmp_path / "worker.log",
                   extra_env={"KPI_MAX_POLL_RECORDS": "200"})
    w.start()
    try:
        consumer = KafkaConsumer(prefix + "sla-alerts", bootstrap_servers=broker.bootstrap,
                                 auto_offset_reset="earliest", consumer_timeout_ms=1000)
        alerts: dict[str, dict] = {}

        def owed_sent() -> bool:
            for msg in consumer:
                a = json.loads(msg.value)
                alerts[a["event_id"]] = a
            return sum(a["ticket_id"] == "t-owed" for a in alerts.values()) >= 4

        def late_met() -> bool:
            # The two tickets may be on different partitions, caught up at different times.
            return w.get("/tickets/t-late").body["sla"]["resolution"]["state"] == "met"

        wait_for(lambda: owed_sent() and late_met(), timeout=180,
                 what="t-owed's 4 alerts, t-late resolved in time")
        time.sleep(2)  # a tick of the alert timer more, for anything else it would send
        owed_sent()
        consumer.close()
        assert sorted((a["ticket_id"], a["target"], a["type"]) for a in alerts.values()) == [
            ("t-owed", "first_response", "sla.breached"),
            ("t-owed", "first_response", "sla.warning"),
            ("t-owed", "resolution", "sla.breached"),
            ("t-owed", "resolution", "sla.warning")]
    finally:
        w.stop()
