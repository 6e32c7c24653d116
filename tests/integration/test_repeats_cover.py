"""Repeat contacts and cover through the real broker and two workers: the API equals the
pure fold, before and after late events that revise them, and snapshots follow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from projections.pipeline import Pipeline
from streams.devtools.broker import EmbeddedBroker
from tests import factory as f
from tests.integration.workers import (
    WorkerProc,
    latest_snapshots,
    produce,
    settings_for,
    unique_prefix,
    wait_for,
)

pytestmark = pytest.mark.integration

DAY = "2026-10-06"  # a Tuesday
AT = DAY + "T{}:00+03:00"
EMPLOYEES = ("e-1", "e-2", "e-3", "e-4")
PERIODS = ("2026-10", DAY, "2026-10-08")
VOLATILE = ("generation", "to_date_through", "kpi_minutes_to_date", "plan_minutes_to_date",
            "attainment_to_date_pct")


def _busy(ticket: str, hour: str, emp: str, customer: str) -> dict[str, Any]:
    # 100 reactivations = 1,250 minutes: 770 beyond a 480-minute plan, so that the two
    # busy employees' excess (1,540) exceeds one absent colleague's pool (480) but not two
    return f.opened(ticket, AT.format(hour), emp, decisions=["reactivation"] * 100,
                    customer_id=customer)


def _first_feed() -> list[dict[str, Any]]:
    return [
        f.order("2026-09-20T10:00:00+03:00"),
        *(f.registered(e, "d-1", "2026-10-01T08:00:00+03:00") for e in EMPLOYEES),
        f.absent("e-3", DAY),
        _busy("t-1", "09:00", "e-1", "c-1"),
        f.resolved("t-1", AT.format("09:30"), "e-1"),
        _busy("t-2", "10:00", "e-2", "c-2"),
        f.resolved("t-2", AT.format("10:30"), "e-2"),
        # c-1 comes back two days later: a repeat charged to e-1, who resolved t-1
        f.opened("t-3", "2026-10-08T11:00:00+03:00", "e-4", customer_id="c-1"),
        f.resolved("t-3", "2026-10-08T11:30:00+03:00", "e-4"),
    ]


def _late_feed() -> list[dict[str, Any]]:
    return [
        # t-3 is absorbed by a merge: no contact any more, so no repeat
        f.merged("t-3", "2026-10-08T11:40:00+03:00", "t-9"),
        # e-4 turns out to have been absent too: the pool grows
        f.absent("e-4", DAY, "2026-10-09T08:00:00+03:00"),
        # and c-2 comes back within the window after t-2's resolution
        f.opened("t-4", "2026-10-08T12:00:00+03:00", "e-1", customer_id="c-2"),
    ]


def _fold(events: list[dict[str, Any]]) -> Pipeline:
    return Pipeline(live=True).apply_all(f.model(e) for e in events)


def _strip(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if obj is None else {k: v for k, v in obj.items() if k not in VOLATILE}


def _mismatches(workers: list[WorkerProc], fold: Pipeline) -> list[str]:
    out = []
    for w in workers:
        for emp in EMPLOYEES:
            for p in PERIODS:
                q = "month" if len(p) == 7 else "date"
                r = w.get(f"/kpi/employees/{emp}?{q}={p}")
                want = fold.employee(emp, p)
                if r.status != 200 or _strip(r.body) != _strip(want):
                    out.append(f"{w.base} {emp} {p}: {r.status} {r.body} != {want}")
        r = w.get(f"/kpi/departments/d-1?date={DAY}")
        want_d = fold.department("d-1", DAY)
        assert want_d is not None
        if r.status != 200 or r.body.get("totals") != want_d["totals"]:
            out.append(f"{w.base} d-1 {DAY}: {r.status} {r.body} != {want_d}")
    return out[:5]


def _serves(workers: list[WorkerProc], fold: Pipeline, what: str) -> None:
    last: list[str] = []

    def ok() -> bool:
        last[:] = _mismatches(workers, fold)
        return not last

    try:
        wait_for(ok, timeout=180, interval=1.0, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {last}") from None


def test_repeats_and_cover_equal_the_fold_and_follow_late_events(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    prefix = unique_prefix()
    s = settings_for(broker, prefix)
    first, late = _first_feed(), _late_feed()
    fold1 = _fold(first)
    # The feed exercises both rules: a repeat charged, covers shared out.
    assert fold1.employee("e-1", "2026-10-08")["repeat_contacts"] == 1  # type: ignore[index]
    assert fold1.employee("e-1", DAY)["cover_minutes"] > 0  # type: ignore[index]
    fold2 = _fold(first + late)
    assert fold2.employee("e-1", "2026-10-08")["repeat_contacts"] == 0  # type: ignore[index]
    assert fold2.employee("e-2", "2026-10-08")["repeat_contacts"] == 1  # type: ignore[index]
    assert (fold2.department("d-1", DAY)["totals"]["cover_pool_minutes"]  # type: ignore[index]
            > fold1.department("d-1", DAY)["totals"]["cover_pool_minutes"])  # type: ignore[index]

    a = WorkerProc(broker, prefix, tmp_path / "a", log_path=tmp_path / "a.log")
    b = WorkerProc(broker, prefix, tmp_path / "b", log_path=tmp_path / "b.log")
    a.start()
    b.start()
    try:
        produce(broker, prefix, first)
        _serves([a, b], fold1, "the workers serve the fold's repeats and covers")
        produce(broker, prefix, late)
        _serves([a, b], fold2, "late merge, absence and contact revise them")

        keys = ("repeat_contacts", "cover_minutes", "kpi_minutes")
        revised = [(emp, p) for emp in EMPLOYEES for p in PERIODS
                   if (fold2.employee(emp, p) or {}).get("repeat_contacts") is not None
                   and any((fold1.employee(emp, p) or {}).get(k)
                           != fold2.employee(emp, p)[k] for k in keys)]  # type: ignore[index]
        # the merge, the late absence and the new contact revise both employees' days
        assert {("e-1", "2026-10-08"), ("e-2", "2026-10-08"), ("e-1", DAY)} <= set(revised)

        def snapshots_follow() -> bool:
            snaps = latest_snapshots(s)
            return all(snaps.get(ep) is not None
                       and all(snaps[ep].get(k) == fold2.employee(*ep)[k]  # type: ignore[index]
                               for k in keys)
                       for ep in revised)

        wait_for(snapshots_follow, timeout=60, interval=1.0,
                 what="kpi-employee snapshots carry the revised figures")
    finally:
        a.stop()
        b.stop()
