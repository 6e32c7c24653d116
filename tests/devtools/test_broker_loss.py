"""A lost broker (issue 10, item 3): /health says so, the log says it once, nothing is lost.

The embedded broker keeps its data in memory, so it is paused (SIGSTOP/SIGCONT), never
killed; "unreachable at start" points a worker at a port where no broker runs yet and
starts one there later.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from projections.pipeline import Pipeline
from streams.admin import create_topics
from streams.devtools.broker import EmbeddedBroker, free_port
from streams.ops import simulate
from streams.settings import Settings
from tests import factory as f
from tests.integration.workers import WorkerProc, produce, unique_prefix, wait_for

pytestmark = pytest.mark.integration



def _equal_to_fold(w: WorkerProc, feed: list[dict[str, Any]]) -> None:
    expected = Pipeline(live=True).apply_all(f.model(d) for d in feed)
    periods = ["2026-10", "2026-10-02", "2026-10-05"]
    last: list[str] = []

    def equal() -> bool:
        nonlocal last
        last = []
        for emp in expected.roster.employees():
            for p in periods:
                q = "month" if len(p) == 7 else "date"
                got = w.get(f"/kpi/employees/{emp}?{q}={p}")
                if got.status != 200 or got.body != expected.employee(emp, p):
                    last.append(f"{emp} {p}: {got.status} {got.body}")
        return not last

    try:
        wait_for(equal, timeout=120, interval=1.0, what="API == pure fold")
    except AssertionError:
        raise AssertionError("\n".join(last[:5])) from None


def _log_lines(path: Path, text: str) -> int:
    return sum(1 for line in path.read_text(errors="replace").splitlines() if text in line)


def test_broker_paused_mid_run(broker: EmbeddedBroker, tmp_path: Path) -> None:
    assert broker.process is not None
    feed = list(simulate.historical(employees=4, start=date(2026, 10, 1), days=6, seed=31))
    half = len(feed) // 2
    prefix = unique_prefix()
    create_topics(Settings(brokers=broker.bootstrap, topic_prefix=prefix, partitions=2))
    log = tmp_path / "worker.log"
    w = WorkerProc(broker, prefix, tmp_path / "state", log_path=log,
                   extra_env={"KPI_BROKER_PROBE_INTERVAL": "1", "KPI_BROKER_PROBE_TIMEOUT": "2"})
    w.start()
    try:
        produce(broker, prefix, feed[:half])
        os.kill(broker.process.pid, signal.SIGSTOP)
        try:
            lost = wait_for(lambda: (h := w.get("/health")).status == 503 and h,
                            timeout=60, what="/health 503 while the broker is paused")
            assert lost.body["status"] == "unavailable"
            assert "broker" in lost.body["reason"], lost.body
            time.sleep(8)  # beyond the session timeout: the group must survive it too
        finally:
            os.kill(broker.process.pid, signal.SIGCONT)
        wait_for(lambda: w.get("/health").status == 200, timeout=120,
                 what="/health 200 once the broker is back")
        produce(broker, prefix, feed[half:])
        _equal_to_fold(w, feed)
        assert w.proc is not None and w.proc.poll() is None
        # One line when lost, one when back: not a line per retry.
        assert _log_lines(log, "lost: broker not answering") == 1
        assert _log_lines(log, "answering again") == 1
    finally:
        w.stop()


def test_broker_unreachable_at_start(tmp_path: Path) -> None:
    port = free_port()
    late = EmbeddedBroker(port=port, log_path=tmp_path / "tansu.log")
    prefix = unique_prefix()
    log = tmp_path / "worker.log"
    w = WorkerProc(late, prefix, tmp_path / "state", log_path=log)
    w.start(wait_healthy=False)
    try:
        down = wait_for(lambda: (h := w.get("/health")).status == 503 and h, timeout=60,
                        what="/health 503 before any broker runs")
        assert "broker unreachable" in down.body["reason"], down.body
        late.start()
        feed = list(simulate.historical(employees=3, start=date(2026, 10, 1), days=4, seed=32))
        w.wait_healthy(timeout=120)
        produce(late, prefix, feed)
        _equal_to_fold(w, feed)
        assert _log_lines(log, "unreachable") == 1
        assert _log_lines(log, "reachable; starting") == 1
    finally:
        w.stop()
        late.stop()
