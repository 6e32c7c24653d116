"""`kpi broker` never leaves its Tansu process behind, however it is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from streams.net import free_port, port_open
from tests.integration.workers import wait_for

pytestmark = pytest.mark.integration


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"  # a zombie no longer listens


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_broker_child_dies_with_kpi_broker(tmp_path: Path, sig: signal.Signals) -> None:
    port = free_port()
    log = tmp_path / "broker.out"
    with log.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "broker", "--port",
                                 str(port)], stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "ready:" in log.read_text(), 60, what="kpi broker ready")
        tansu = _children(proc.pid)
        assert tansu, "kpi broker has no child process"
        os.kill(proc.pid, sig)
        proc.wait(60)
        wait_for(lambda: all(_gone(p) for p in tansu), 30, what="tansu gone")
        wait_for(lambda: not port_open("127.0.0.1", port), 30, what="port released")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    if sig != signal.SIGKILL:
        out = log.read_text()
        assert proc.returncode == 0, out
        assert "kpi broker: stopped" in out and "Traceback" not in out, out
