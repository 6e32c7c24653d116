"""The worker runs on jemalloc when the machine has it (KPI_ALLOCATOR=auto), keeping its PID,
and on glibc's malloc when told to (KPI_ALLOCATOR=system)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.devtools.broker import EmbeddedBroker
from streams.worker.memory import find_jemalloc
from tests.integration.workers import WorkerProc, fresh_prefix

pytestmark = pytest.mark.integration


def _maps(w: WorkerProc) -> str:
    assert w.proc is not None
    return Path(f"/proc/{w.proc.pid}/maps").read_text()


@pytest.mark.skipif(find_jemalloc() is None, reason="libjemalloc2 is not installed here")
def test_the_worker_re_executes_itself_on_jemalloc_unless_told_not_to(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    for choice, expected in (("auto", True), ("system", False)):
        prefix = fresh_prefix(broker)
        log = tmp_path / f"worker-{choice}.log"
        w = WorkerProc(broker, prefix, tmp_path / choice, log_path=log,
                       extra_env={"KPI_ALLOCATOR": choice, "LD_PRELOAD": ""})
        w.start()
        try:
            assert ("libjemalloc" in _maps(w)) is expected, choice  # the PID we started
            assert w.get("/health").status == 200
        finally:
            w.stop()
        said = "memory allocator jemalloc" if expected else "memory allocator system"
        assert said in log.read_text(), log.read_text()[-2000:]
