"""End to end: a generation built by workers `kpi replay` did not start (other machines).

`kpi replay --external-workers` registers generation 2 and says which command to run;
two `kpi worker --build-generation 2` processes, each with its own data directory as on
two machines, form the building group; the replay waits for the group, switches and
reports; the generation equals the pure fold with every order known from the start, and
both building workers stop by themselves once it is active.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from projections.pipeline import Pipeline
from streams.admin import create_topics
from streams.devtools.broker import EmbeddedBroker
from streams.ops import simulate
from streams.ops.replay import generation_figures
from streams.worker.generations import cutoff_of, read_registry
from tests import factory as f
from tests.integration.workers import (
    WorkerProc,
    produce,
    settings_for,
    unique_prefix,
    wait_for,
)

pytestmark = pytest.mark.integration

VOLATILE = ("type", "event_id", "emitted_at", "generation", "to_date_through",
            "kpi_minutes_to_date", "plan_minutes_to_date", "attainment_to_date_pct")


def _strip(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if obj is None else {k: v for k, v in obj.items() if k not in VOLATILE}


def _retro(order: dict[str, Any]) -> dict[str, Any]:
    """A correction of every weight, effective from the start, issued now."""
    return {**order, "event_id": "00000000-0000-4000-8000-00000000c0de",
            "occurred_at": datetime.now(UTC).isoformat(), "order_id": "ord-retro",
            "number": order["number"] + 1,
            "decision_weights": {k: v * 2 for k, v in order["decision_weights"].items()}}


@pytest.mark.timeout(600)
def test_external_building_workers_build_the_generation(broker: EmbeddedBroker,
                                                        tmp_path: Path) -> None:
    feed = list(simulate.historical(employees=8, start=date(2026, 10, 1), days=20, seed=31))
    assert feed[0]["type"] == "norm_order.issued"
    history = [*feed, _retro(feed[0])]
    prefix = unique_prefix()
    s = settings_for(broker, prefix, data_dir=tmp_path / "replay-state")
    create_topics(s)
    produce(broker, prefix, history)

    builders = [WorkerProc(broker, prefix, tmp_path / f"machine-{i}",
                           log_path=tmp_path / f"machine-{i}.log",
                           args=["--build-generation", "2"]) for i in (1, 2)]
    env = builders[0].env() | {"KPI_DATA_DIR": str(s.data_dir)}
    replay = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "replay", "--external-workers",
         "--report-dir", str(tmp_path / "reports"), "--timeout", "400"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    said: list[str] = []
    assert replay.stdout is not None and replay.stderr is not None
    stderr = replay.stderr
    reader = threading.Thread(target=lambda: said.extend(iter(stderr.readline, "")),
                              daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("registered as building" in line for line in said), 60,
                 what="the replay's instruction")
        line = next(line for line in said if "registered as building" in line)
        assert "start `kpi worker --build-generation 2` on each building machine" in line
        for w in builders:
            w.start(wait_healthy=False)
        out = replay.stdout.read()
        assert replay.wait(450) == 0, (out, said)
        assert "generation 2 is active (was 1)" in out, out
        for w in builders:  # their work ended with the replay: they stop by themselves
            assert w.proc is not None
            assert w.proc.wait(90) == 0, w.log_path
    finally:
        if replay.poll() is None:
            replay.kill()
            replay.wait(10)
        for w in builders:
            w.stop()
    reader.join(10)

    full = Pipeline(live=False, generation=2).apply_all(f.model(d) for d in history)
    built = generation_figures(s, 2, cutoff_of(read_registry(s), 2))
    assert {e for (e, _) in built} == set(full.roster.employees())
    months = {p for (_, p) in built if len(p) == 7}
    assert "2026-10" in months
    for (emp, period), obj in built.items():
        assert _strip(obj) == _strip(full.employee(emp, period)), (emp, period)
    logs = "".join(w.log_path.read_text() for w in builders if w.log_path)
    assert "generation 2 is active: this building worker stops" in logs

    # a building worker started again (a restarted container, a retried job) refuses
    again = subprocess.run([sys.executable, "-m", "streams.cli", "worker",
                            "--build-generation", "2"], env=builders[0].env(),
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 1, again.stderr
    errors = [ln for ln in again.stderr.splitlines() if ln.startswith("kpi: error:")]
    assert errors == ["kpi: error: generation 2 is active: there is nothing to build "
                      "(serving workers follow the registry's active generation)"], again.stderr
