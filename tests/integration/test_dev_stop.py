"""`kpi dev` stopped by Ctrl-C: feed, worker, broker, in that order, without errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from streams.net import free_port
from tests.integration.workers import http_get, wait_for

pytestmark = pytest.mark.integration


def test_ctrl_c_stops_the_demo_in_order_without_errors(tmp_path: Path) -> None:
    web = free_port()
    out = tmp_path / "dev.out"
    env = {**os.environ, "KPI_TOPIC_PREFIX": ""}
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "dev", "--employees", "4",
             "--history-days", "2", "--port", str(free_port()), "--web-port", str(web),
             "--dev-dir", str(tmp_path / "dev")],
            stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
        try:
            wait_for(lambda: http_get(f"http://127.0.0.1:{web}/health", 2.0).status == 200,
                     120, what="the demo's worker healthy")
            wait_for(lambda: "  ticket   " in out.read_text(), 120, what="the ticket URL")
            proc.send_signal(signal.SIGINT)
            proc.wait(120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    text = out.read_text()
    assert "Traceback" not in text and "ERROR" not in text, text
    steps = [ln for ln in text.splitlines() if ln.startswith("kpi dev: ") and
             ln.endswith(" stopped")]
    assert steps == ["kpi dev: feed stopped", "kpi dev: worker stopped",
                     "kpi dev: broker stopped"], text
    assert (tmp_path / "dev" / ".kpi-dev").exists()
