"""End to end: a replayed generation keeps its figures in every worker that serves it.

One month of history in which two retroactive orders arrive when they are issued, in the
middle of the month, with events after them: a weight correction and a calendar/plan
change, both effective from the first day. `kpi replay` builds generation 2; then every
worker of it (two that follow the switch, one SIGKILLed and restarted on its disk, one
on an empty disk recovering from the changelogs) must serve, for every employee-day and
employee-month, the pure fold with every order known from the start; so must the latest
`kpi-employee` snapshots and the change report. A replay whose worker is SIGKILLed says so
and leaves the live generation serving; the next replay gives the same figures again.

One broker, one feed and one set of workers serve every step, to keep the runtime down.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from projections.pipeline import Pipeline
from schemas.decode import decode
from schemas.events import Event
from schemas.topics import topic_for_type
from streams.admin import create_topics
from streams.cli import cli
from streams.devtools.broker import EmbeddedBroker
from streams.ops import simulate
from streams.ops.replay import committed_offsets, group_id, replay
from streams.settings import Settings
from streams.worker.generations import read_registry
from tests.integration.workers import (
    WorkerProc,
    latest_snapshots,
    produce,
    settings_for,
    unique_prefix,
    wait_for,
)

pytestmark = pytest.mark.integration

MONTH = "2026-10"
PERIODS = [MONTH] + [(date(2026, 10, 1) + timedelta(days=i)).isoformat() for i in range(31)]
RETRO_AT = "2026-10-15T12:00:00+03:00"  # the weight correction is issued
PLAN_AT = "2026-10-20T10:00:00+03:00"  # the calendar and plan change is issued
VOLATILE = ("type", "event_id", "emitted_at", "generation")
# Month-to-date figures are read-side only: `kpi-employee` snapshots do not carry them.
TO_DATE = ("to_date_through", "kpi_minutes_to_date", "plan_minutes_to_date",
           "attainment_to_date_pct")


def _model(d: dict[str, Any]) -> Event:
    spec = topic_for_type(d["type"])
    assert spec.key_field is not None
    ev = decode(spec.name, str(d[spec.key_field]).encode(), json.dumps(d).encode())
    assert isinstance(ev, Event), ev
    return ev


def _orders(first: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two whole catalogues effective from the month's first day, each winning the tie by
    `number`: heavier weights (issued on the 15th), then also a shorter plan, a new
    holiday (a Wednesday) and an extra working Saturday (issued on the 20th)."""
    weights = dict(first["decision_weights"])
    heavier = {k: (v * 2 if i % 2 == 0 else v) for i, (k, v) in enumerate(sorted(weights.items()))}
    retro = {**first, "event_id": "00000000-0000-4000-8000-0000000000a1",
             "occurred_at": RETRO_AT, "order_id": "ord-retro-weights",
             "number": first["number"] + 1, "decision_weights": heavier}
    calendar = dict(first["calendar"])
    calendar["holidays"] = [*calendar["holidays"], "2026-10-07"]
    calendar["extra_workdays"] = ["2026-10-10"]
    plan = {**retro, "event_id": "00000000-0000-4000-8000-0000000000a2",
            "occurred_at": PLAN_AT, "order_id": "ord-retro-plan",
            "number": first["number"] + 2, "daily_plan_minutes": 420, "calendar": calendar}
    return retro, plan


Feed = list[dict[str, Any]]


def _split(feed: Feed, at: str) -> tuple[Feed, Feed]:
    moment = datetime.fromisoformat(at)
    before = [d for d in feed if datetime.fromisoformat(d["occurred_at"]) <= moment]
    return before, feed[len(before):]


def _strip(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if obj is None else {k: v for k, v in obj.items() if k not in VOLATILE}


def _api(worker: WorkerProc, emp: str, period: str) -> dict[str, Any] | None:
    """The served object, or None while the key's owner is rebalancing (503: retry)."""
    q = "month" if len(period) == 7 else "date"
    r = worker.get(f"/kpi/employees/{emp}?{q}={period}")
    if r.status == 503:
        return None
    assert r.status == 200, r.body
    body: dict[str, Any] = r.body
    return body


def _mismatches(worker: WorkerProc, fold: Pipeline, employees: Iterable[str],
                generation: int) -> list[str]:
    """Every (employee, period) whose served object differs from the fold's (at most 5)."""
    out = []
    for emp in employees:
        for p in PERIODS:
            got = _api(worker, emp, p)
            if got is None:
                return [f"{worker.base}: {emp} {p} answered 503 (rebalancing)"]
            if got.get("generation") != generation or _strip(got) != _strip(fold.employee(emp, p)):
                out.append(f"{emp} {p}: served {got} expected {fold.employee(emp, p)}")
                if len(out) >= 5:
                    return out
    return out


def _serves(workers: list[WorkerProc], fold: Pipeline, employees: list[str],
            generation: int, what: str, timeout: float = 240) -> None:
    last: dict[str, Any] = {}

    def ok() -> bool:
        for w in workers:
            h = w.get("/health")
            if h.status != 200 or h.body.get("generation") != generation:
                last["why"] = f"{w.base}: {h.status} {h.body}"
                return False
        for w in workers:  # each one answers every employee: its own, or via the owner
            bad = _mismatches(w, fold, employees, generation)
            if bad:
                last["why"] = bad
                return False
        return True

    try:
        wait_for(ok, timeout=timeout, interval=2.0, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {last.get('why')}") from None


def _cli_env(s: Settings) -> dict[str, str]:
    """An operator's shell: no KPI_PARTITIONS (the default differs from the topics')."""
    env = {**os.environ, "KPI_BROKERS": s.brokers, "KPI_TOPIC_PREFIX": s.topic_prefix,
           "KPI_DATA_DIR": str(s.data_dir)}
    env.pop("KPI_PARTITIONS", None)
    return env


def _cli_replay(s: Settings, reports: Path, *more: str) -> subprocess.Popen[str]:
    """`kpi replay` as an operator runs it from a script: stderr is not a terminal."""
    return subprocess.Popen([sys.executable, "-m", "streams.cli", "replay", "--report-dir",
                             str(reports), "--timeout", "300", *more], env=_cli_env(s),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return [int(p) for p in fh.read().split()]


def _kill_replay_worker_midway(s: Settings, cli_proc: subprocess.Popen[str],
                               generation: int) -> None:
    """SIGKILL the replay worker once its group has committed input offsets."""
    def worker_pid() -> int | None:
        kids = _children(cli_proc.pid)
        return kids[0] if kids else None

    pid = wait_for(worker_pid, timeout=60, interval=0.1, what="replay worker started")
    wait_for(lambda: committed_offsets(s, group_id(s, generation)), timeout=120,
             interval=0.2, what="replay worker commits its first offsets")
    os.kill(pid, signal.SIGKILL)


PROGRESS = re.compile(r"^replay: [\d,]+/[\d,]+ events \(\d+\.\d%\), [\d,]+/s, "
                      r"(\d+s left|\d+m\d\ds left|\d+h\d\dm left|done|time left unknown)$")


# Five generations, two replays through the CLI, restarts and a worker recovering from the
# changelogs: longer than the suite's default limit.
@pytest.mark.timeout(720)
def test_replayed_generation_serves_its_figures_everywhere(broker: EmbeddedBroker,
                                                           tmp_path: Path) -> None:
    feed = list(simulate.historical(employees=6, start=date(2026, 10, 1), days=31, seed=23))
    assert feed[0]["type"] == "norm_order.issued"
    retro, plan = _orders(feed[0])
    part1, rest = _split(feed, RETRO_AT)
    part2, part3 = _split(rest, PLAN_AT)
    assert part2 and part3, "events must follow both orders' issue moments"
    wire = [*part1, retro, *part2, plan, *part3]  # each order arrives when it is issued

    prefix = unique_prefix()
    s = settings_for(broker, prefix, data_dir=tmp_path / "replay-state")
    create_topics(s)
    produce(broker, prefix, part1)
    a = WorkerProc(broker, prefix, tmp_path / "a", log_path=tmp_path / "a.log")
    b = WorkerProc(broker, prefix, tmp_path / "b", log_path=tmp_path / "b.log")
    c = WorkerProc(broker, prefix, tmp_path / "c", log_path=tmp_path / "c.log")
    workers = [a, b, c]
    try:
        for w in (a, b):
            w.start(wait_healthy=False)
        for w in (a, b):
            w.wait_healthy(timeout=120)
        produce(broker, prefix, [retro, *part2])
        produce(broker, prefix, [plan, *part3])

        live = Pipeline(live=True).apply_all(_model(d) for d in wire)
        full = Pipeline(live=False, generation=2).apply_all(_model(d) for d in wire)
        employees = sorted(live.roster.employees())
        changed = {e for e in employees for p in PERIODS
                   if _strip(live.employee(e, p)) != _strip(full.employee(e, p))}
        assert changed, "the retroactive orders should change someone's figures"
        _serves([a, b], live, employees, 1, "generation 1 serves the live fold")

        # -- replay into generation 2: both serving workers follow ----------------------
        result = replay(s, tmp_path / "reports", timeout_s=300, log_path=tmp_path / "r1.log")
        assert (result.old_generation, result.new_generation) == (1, 2)
        reg = read_registry(s)
        assert reg.active_generation == 2 and reg.generations[2].orders_cutoff
        _serves([a, b], full, employees, 2, "both workers serve generation 2 == full fold")

        report = json.loads(result.json_path.read_text())
        assert set(report["employees_changed"]) == changed
        for row in report["rows"]:
            new = full.employee(row["employee_id"], row["period"])
            assert new is not None, row
            assert row["new_kpi_minutes"] == new["kpi_minutes"], row
            assert row["new_attainment_pct"] == new["attainment_pct"], row
            assert row["new_compliance_pct"] == new["sla"]["compliance_pct"], row
            assert row["new_bonus_pct"] == (new.get("bonus") or {}).get("bonus_pct"), row
        snaps = latest_snapshots(s)
        for row in report["rows"]:
            assert snaps[(row["employee_id"], row["period"])]["generation"] == 2, row
        for (emp, period), snap in snaps.items():
            obj = full.employee(emp, period)
            assert obj is not None, (emp, period)
            expected = {k: v for k, v in obj.items() if k not in TO_DATE}
            assert _strip(snap) == _strip(expected), (emp, period)

        listing = CliRunner().invoke(cli, ["generations", "list"], env=_cli_env(s))
        assert listing.exit_code == 0, listing.output
        lines = {int(line.split()[0]): line for line in listing.output.splitlines()[1:]}
        assert reg.generations[2].orders_cutoff in lines[2] and lines[2].rstrip().endswith("*")
        assert "none (live)" in lines[1] and "first worker start" in lines[1]

        # -- SIGKILL and restart on the same disk; a new worker on an empty disk ----------
        a.stop(signal.SIGKILL)
        b.stop()
        a.start(wait_healthy=False)
        c.start(wait_healthy=False)
        for w in (a, c):
            w.wait_healthy(timeout=120)
        _serves([a, c], full, employees, 2, "restarted and recovered workers == full fold")
        assert latest_snapshots(s) == snaps, "a restart published figures again"

        # -- a replay whose worker dies with no replacement allowed leaves generation 2 ---
        proc = _cli_replay(s, tmp_path / "reports", "--max-restarts", "0")
        try:
            _kill_replay_worker_midway(s, proc, 3)
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        assert proc.returncode != 0, (out, err)
        said = [line for line in err.splitlines() if not line.startswith("replay: ")]
        assert len(said) == 1, err
        assert "replay worker died (killed by SIGKILL)" in said[0], said
        assert "generation 2 keeps serving" in said[0], said
        reg = read_registry(s)
        assert reg.active_generation == 2 and reg.generations[3].state == "failed"
        _serves([a, c], full, employees, 2, "generation 2 still serves", timeout=60)

        # -- two building workers, one SIGKILLed and replaced: the same figures -----------
        proc = _cli_replay(s, tmp_path / "reports", "--workers", "2")
        try:
            _kill_replay_worker_midway(s, proc, 4)
            out, err = proc.communicate(timeout=400)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        assert proc.returncode == 0, (out, err)
        assert "building worker 1 died (killed by SIGKILL); replaced" in err, err
        assert "generation 4 is active (was 2)" in out, out
        progress = [line for line in err.splitlines() if line.startswith("replay: ")]
        assert progress and all(PROGRESS.match(line) for line in progress), err
        assert progress[-1].endswith("done"), progress
        again = json.loads((tmp_path / "reports" / "change-report-g2-g4.json").read_text())
        assert again["rows"] == [], "a replay of the same history changed figures"
        _serves([a, c], full, employees, 4, "both workers serve generation 4 == full fold")

        # -- answering no to prune is an answer, not an error -----------------------------
        no = CliRunner().invoke(cli, ["generations", "prune"], input="n\n", env=_cli_env(s))
        assert no.exit_code == 0, no.output
        assert no.output.rstrip().endswith("nothing deleted") and "error" not in no.output
        assert read_registry(s).generations[3].state == "failed"
    finally:
        for w in workers:
            w.stop()
