"""End to end: a retroactive order moves nothing live; a replay switches every reader to a
generation equal to the pure fold with all orders known, and reports exactly who changed."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from projections.pipeline import Pipeline
from schemas.decode import decode
from schemas.events import Event
from schemas.topics import topic_for_type
from streams.admin import create_topics
from streams.devtools.broker import EmbeddedBroker
from streams.ops import simulate
from streams.ops.replay import replay
from streams.worker.generations import read_registry
from tests.integration.workers import (
    WorkerProc,
    events_counted,
    produce,
    settings_for,
    unique_prefix,
    wait_for,
)

pytestmark = pytest.mark.integration


def _model(d: dict) -> Event:
    spec = topic_for_type(d["type"])
    ev = decode(spec.name, str(d[spec.key_field]).encode(), json.dumps(d).encode())
    assert isinstance(ev, Event), ev
    return ev


def test_retroactive_order_then_replay(broker: EmbeddedBroker, tmp_path: Path) -> None:
    feed = list(simulate.historical(employees=6, start=date(2026, 10, 1), days=31, seed=11))
    order = feed[0]
    assert order["type"] == "norm_order.issued"
    weights = dict(order["decision_weights"])
    doubled = sorted(weights)[:3]  # three codes weigh twice as much, retroactively
    retro = {**order, "event_id": "00000000-0000-4000-8000-00000000beef",
             "occurred_at": datetime.now(UTC).isoformat(), "order_id": "ord-retro",
             "number": order["number"] + 1,
             "decision_weights": {k: (v * 2 if k in doubled else v) for k, v in weights.items()}}

    prefix = unique_prefix()
    s = settings_for(broker, prefix, data_dir=tmp_path / "replay-state")
    create_topics(s)
    produce(broker, prefix, feed)
    live = WorkerProc(broker, prefix, tmp_path / "live", log_path=tmp_path / "live.log")
    live.start()
    try:
        gen1 = Pipeline(live=True).apply_all(_model(d) for d in feed)

        def counted() -> bool:
            return events_counted(live) >= gen1.applied

        wait_for(counted, timeout=180, interval=1.0, what="live worker consumed the month")
        employees = gen1.roster.employees()
        periods = ["2026-10", "2026-10-15", "2026-10-20"]

        def api(emp: str, period: str) -> dict:
            q = "month" if len(period) == 7 else "date"
            r = live.get(f"/kpi/employees/{emp}?{q}={period}")
            assert r.status == 200, r.body
            return r.body

        def settled() -> bool:
            return all(api(e, p) == gen1.employee(e, p) for e in employees for p in periods)

        wait_for(settled, timeout=120, interval=2.0, what="live API == live fold")
        before = {(e, p): api(e, p) for e in employees for p in periods}

        produce(broker, prefix, [retro])
        wait_for(lambda: live.get("/health").body.get("orders") == 2, what="order loaded")
        assert {(e, p): api(e, p) for e in employees for p in periods} == before

        result = replay(s, tmp_path / "reports", timeout_s=300, log_path=tmp_path / "r.log")
        assert (result.old_generation, result.new_generation) == (1, 2)
        assert read_registry(s).active_generation == 2

        full = Pipeline(live=False, generation=2).apply_all(
            _model(d) for d in [*feed, retro])
        gen1_final = Pipeline(live=True).apply_all(_model(d) for d in [*feed, retro])

        def switched() -> bool:
            r = live.get("/health")
            return r.status == 200 and r.body.get("generation") == 2

        wait_for(switched, timeout=180, interval=1.0, what="live worker follows generation 2")

        def equal_to_full_fold() -> bool:
            return all(api(e, p) == full.employee(e, p) for e in employees for p in periods)

        wait_for(equal_to_full_fold, timeout=120, interval=2.0, what="API == fold, all orders")
        # The report lists exactly the employees whose figures changed.
        expected_changed = set()
        for e in employees:
            for day in range(1, 32):
                for p in (f"2026-10-{day:02d}", "2026-10"):
                    a, b = gen1_final.employee(e, p), full.employee(e, p)
                    if a and b and {**a, "generation": 0} != {**b, "generation": 0}:
                        expected_changed.add(e)
        report = json.loads(result.json_path.read_text())
        assert set(report["employees_changed"]) == expected_changed
        assert expected_changed, "the retroactive order should change someone's figures"
        for row in report["rows"]:
            if row["diff_kpi_minutes"] is not None:
                assert Decimal(str(row["diff_kpi_minutes"])) >= 0  # weights only grew
    finally:
        live.stop()
