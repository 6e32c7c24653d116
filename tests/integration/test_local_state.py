"""A worker whose local state outlived its broker: one line, exit 1; the reset starts it."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from projections.pipeline import Pipeline
from streams.devtools.broker import EmbeddedBroker
from streams.ops import simulate
from tests import factory as f
from tests.integration.workers import WorkerProc, http_get, produce, unique_prefix, wait_for

pytestmark = pytest.mark.integration


def test_state_from_a_forgotten_broker_is_refused_then_reset(tmp_path: Path) -> None:
    prefix = unique_prefix()
    data = tmp_path / "data"
    feed = list(simulate.historical(employees=3, start=date(2026, 10, 1), days=3, seed=5))
    emp = next(ev["employee_id"] for ev in feed if ev["type"] == "employee.registered")
    with EmbeddedBroker(log_path=tmp_path / "first.log") as first:
        w = WorkerProc(first, prefix, data, log_path=tmp_path / "w1.log").start()
        try:
            produce(first, prefix, feed)
            wait_for(lambda: w.get(f"/kpi/employees/{emp}?month=2026-10").status == 200,
                     90, what="the first broker's figures")
        finally:
            w.stop(signal.SIGTERM)
    assert list((data / "v1" / "tables").glob("tickets-*.db")), "no local state was kept"

    with EmbeddedBroker(log_path=tmp_path / "second.log") as second:
        w2 = WorkerProc(second, prefix, data)
        refused = subprocess.run([sys.executable, "-m", "streams.cli", "worker"], env=w2.env(),
                                 capture_output=True, text=True, timeout=120)
        out = refused.stdout + refused.stderr
        assert refused.returncode == 1, out
        assert "Traceback" not in out and "ConsistencyError" not in out, out
        errors = [ln for ln in out.splitlines() if ln.startswith("kpi: error:")]
        assert len(errors) == 1, out
        assert "does not match the broker" in errors[0]
        assert "kpi worker --reset-local-state" in errors[0]

        log = tmp_path / "w2.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker", "--reset-local-state"],
                env=w2.env(), stdout=sink, stderr=subprocess.STDOUT)
            try:
                wait_for(lambda: proc.poll() is None and http_get(
                    f"{w2.base}/health", 2.0).status == 200, 90, what="a healthy worker")
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
        text = log.read_text()
        assert f"deleted local state {data / 'v1'}" in text, text
        assert f"API on http://127.0.0.1:{w2.web_port}, authentication OFF" in text, text


def test_a_worker_that_did_not_stop_cleanly_rebuilds_its_tables(broker: EmbeddedBroker,
                                                                 tmp_path: Path) -> None:
    """Local writes whose changelog records a SIGKILL lost are not trusted: the next
    process rebuilds the tables from the changelogs and serves the same figures."""
    prefix = unique_prefix()
    data = tmp_path / "data"
    mark = data / "v1" / ".running"
    feed = list(simulate.historical(employees=3, start=date(2026, 10, 1), days=3, seed=5))
    emp = next(ev["employee_id"] for ev in feed if ev["type"] == "employee.registered")
    log = tmp_path / "w.log"
    w = WorkerProc(broker, prefix, data, log_path=log).start()
    try:
        produce(broker, prefix, feed)
        path = f"/kpi/employees/{emp}?month=2026-10"
        want = Pipeline(live=True).apply_all(f.model(d) for d in feed).employee(emp, "2026-10")
        wait_for(lambda: w.get(path).body == want, 90, what="figures == the fold")
        assert mark.exists(), "a running worker marks its state in use"
        w.stop(signal.SIGKILL)
        assert "did not stop cleanly" not in log.read_text()
        w.start()
        wait_for(lambda: w.get(path).body == want, 90, what="the same figures after a restart")
        assert "did not stop cleanly; its tables are rebuilt from the changelogs" in (
            log.read_text())
    finally:
        w.stop(signal.SIGTERM)
    assert not mark.exists(), "a clean stop leaves no mark"
    assert list((data / "v1" / "tables").glob("employees-*.db")), "the tables are kept"
