"""A month's figures to date beside its whole-month figures, with hand-computed numbers.

The factory's order: 480 minutes a working day, Monday to Friday in Europe/Moscow, the 4th
of November 2026 a holiday. November 2026 starts on a Sunday, so its working days are the
2nd, 3rd, 5th, 6th, 9th-13th, 16th-20th, 23rd-27th and 30th: 20 days, 9600 minutes.
e-1 is absent on the 3rd, so their month plan is 19 days, 9120 minutes.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

import pytest

from projections.employees import EmployeeProjector, Period, parse_period
from projections.pipeline import Pipeline
from tests import factory as f
from tests.unit.projections.test_store import PointReads

AT = "2026-11-{:02d}T10:00:00+03:00"
FIELDS = ("to_date_through", "kpi_minutes_to_date", "plan_minutes_to_date",
          "attainment_to_date_pct")


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    events = [
        f.order(), f.registered("e-1", "d-1"), f.absent("e-1", "2026-11-03"),
        f.opened("t-2", AT.format(2), "e-1", decisions=["reactivation"]),     # 12.5
        f.opened("t-10", AT.format(10), "e-1", decisions=["tariff_change"]),  # 6.0
        f.opened("t-17", AT.format(17), "e-1", decisions=["router_reboot"]),  # 3.0
    ]
    return Pipeline(live=True).apply_all(f.model(e) for e in events)


def month(today: str | None, text: str = "2026-11") -> Period:
    p = parse_period(text)
    return dataclasses.replace(p, today=date.fromisoformat(today) if today else None)


def read(p: Pipeline, period: Period) -> dict[str, Any]:
    return p.employees.employee("e-1", period, 1)


@pytest.mark.parametrize(("today", "want"), [
    # 2nd-10th: working days 2, 5, 6, 9, 10 (3rd absent, 4th holiday) = 2400 minutes;
    # 12.5 + 6.0 = 18.5 minutes; 100 * 18.5 / 2400 = 0.7708... -> 0.77
    ("2026-11-10", ("2026-11-10", 18.5, 2400.0, 0.77)),
    # today counts whole: on the 2nd its full 480 minutes; 100 * 12.5 / 480 = 2.604 -> 2.6
    ("2026-11-02", ("2026-11-02", 12.5, 480.0, 2.6)),
    # the 1st is a Sunday: nothing planned yet, so no attainment
    ("2026-11-01", ("2026-11-01", 0.0, 0.0, None)),
    # the whole month is to date once it is over: 100 * 21.5 / 9120 = 0.2357 -> 0.24
    ("2026-12-05", ("2026-11-30", 21.5, 9120.0, 0.24)),
    # a month not begun has nothing to date
    ("2026-10-20", (None, 0.0, 0.0, None)),
])
def test_month_to_date(pipeline: Pipeline, today: str, want: tuple[Any, ...]) -> None:
    obj = read(pipeline, month(today))
    assert tuple(obj[k] for k in FIELDS) == want
    # the contract's fields keep meaning the whole month, whatever the day
    assert (obj["kpi_minutes"], obj["plan_minutes"], obj["attainment_pct"]) == (
        21.5, 9120.0, 0.24)


def test_a_month_read_without_today_and_a_day_carry_no_figures_to_date(
        pipeline: Pipeline) -> None:
    assert not set(FIELDS) & set(read(pipeline, month(None)))
    day = dataclasses.replace(parse_period("2026-11-10"), today=date(2026, 11, 10))
    assert not set(FIELDS) & set(read(pipeline, day))
    assert read(pipeline, day)["kpi_minutes"] == 6.0


@pytest.mark.parametrize("today", ["2026-11-09", "2026-11-10", "2026-11-17", "2026-11-30"])
def test_to_date_by_range_read_equals_to_date_by_point_reads(
        pipeline: Pipeline, today: str) -> None:
    """The one-pass month read stops at today just as the day-by-day read does."""
    by_gets = EmployeeProjector(PointReads(pipeline.employees_kv), pipeline.cat,
                                pipeline.roster, live=True)
    assert read(pipeline, month(today)) == by_gets.employee("e-1", month(today), 1)
