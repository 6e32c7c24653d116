"""The OpenAPI document describes what the builders really return, and its parameter
patterns agree with what the views accept.

Bodies are checked against the document's JSON Schema (not the pydantic models behind it),
since the document is what clients and schemathesis read.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.counters import Counters
from processors.figures import department_totals, employee_object
from processors.ticket import describe
from projections.employees import BadPeriod, parse_period
from projections.pipeline import Pipeline
from streams.api.openapi import DATE_PATTERN, ID_PATTERN, MONTH_PATTERN, openapi_document
from tests import factory as f

SCALE = {k: Decimal(str(v)) for k, v in f.BONUS_SCALE.items()}


def validator(name: str) -> Any:
    doc = openapi_document()
    return jsonschema_rs.validator_for({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "$ref": f"#/components/schemas/{name}",
    })


def assert_conforms(name: str, body: Any) -> None:
    errors = [str(e) for e in validator(name).iter_errors(body)]
    assert not errors, f"{name}: {errors}"


counters = st.builds(
    Counters,
    kpi_minutes=st.decimals(0, 100_000, places=2),
    **{n: st.integers(0, 5_000) for n in (
        "unpriced_decisions", "resolved", "fcr", "met", "breached", "reopened", "escalated",
        "escalations_returned", "calls_answered", "csat_count", "q1", "q2", "q3", "q4",
        "repeat_contacts")},
    handle_seconds=st.decimals(0, 10_000_000, places=1),
    csat_sum=st.integers(0, 25_000),
    cover_minutes=st.fractions(0, 20_000, max_denominator=30),
)


@settings(max_examples=200, deadline=None)
@given(c=counters, handled=st.integers(0, 5_000), plan=st.decimals(0, 20_000, places=1),
       is_month=st.booleans(), target=st.sampled_from([None, Decimal(0), Decimal(35)]),
       goal=st.sampled_from([None, Decimal(95)]), scale=st.sampled_from([None, SCALE]),
       department=st.sampled_from([None, "d-1"]))
def test_every_employee_object_conforms(c: Counters, handled: int, plan: Decimal,
                                        is_month: bool, target: Decimal | None,
                                        goal: Decimal | None, scale: Any,
                                        department: str | None) -> None:
    obj = employee_object(employee_id="e-1", department_id=department,
                          period="2026-11" if is_month else "2026-11-02", generation=1, c=c,
                          tickets_handled=handled, plan_minutes=plan, is_month=is_month,
                          calls_per_hour_target=target, sla_goal_pct=goal, bonus_scale=scale)
    assert_conforms("EmployeeFigures", obj)
    # Months carry bonus and quality_score, days neither: the document says so, check it.
    assert ("bonus" in obj) == ("quality_score" in obj) == is_month
    totals = department_totals([(c, handled, plan), (c, 0, plan)], is_month=is_month,
                               calls_per_hour_target=target, sla_goal_pct=goal)
    assert_conforms("DepartmentTotals", totals)


def month(c: Counters) -> dict[str, Any]:
    return employee_object(employee_id="e-1", department_id="d-1", period="2026-11",
                           generation=1, c=c, tickets_handled=10, plan_minutes=Decimal(60),
                           is_month=True, calls_per_hour_target=Decimal(35),
                           sla_goal_pct=Decimal(95), bonus_scale=SCALE)


def test_bonus_with_and_without_reason_conforms() -> None:
    # 35 calls in a 60-minute plan = 100% productivity; all-4 scores = quality 100.
    eligible = month(Counters(calls_answered=35, q4=10))
    assert eligible["bonus"]["eligible"] and "reason" not in eligible["bonus"]
    assert_conforms("EmployeeFigures", eligible)
    low = month(Counters(calls_answered=35, q1=3, q4=7))
    assert low["bonus"]["reason"] == "points_below_85"
    assert_conforms("EmployeeFigures", low)
    # ...and the document does reject what must not appear.
    broken = {**eligible, "bonus": {**eligible["bonus"], "reason": None}}
    assert not validator("EmployeeFigures").is_valid(broken)
    assert not validator("EmployeeFigures").is_valid({**eligible, "bonus": None})
    assert not validator("EmployeeFigures").is_valid({**eligible, "extra": 1})


def test_department_and_ticket_from_the_pipeline_conform() -> None:
    p = Pipeline(live=True).apply_all(f.model(e) for e in [
        f.order(),
        f.registered("e-1", "d-1"),
        f.registered("e-2", "d-1"),
        f.opened("t-1", "2026-11-02T10:00:00+03:00", "e-1", decisions=["reactivation"],
                 priority="P2"),
        f.first_response("t-1", "2026-11-02T10:20:00+03:00", "e-1"),
        f.resolved("t-1", "2026-11-02T12:00:00+03:00", "e-1"),
        f.opened("t-2", "2026-11-02T11:00:00+03:00", "e-2"),
        f.merged("t-2", "2026-11-02T11:30:00+03:00", "t-1"),
        f.call("e-1", "2026-11-02T10:00:00+03:00"),
        f.csat("e-1", "2026-11-02T13:00:00+03:00", 5, "t-1"),
        f.quality("e-1", "2026-11-03T10:00:00+03:00", [4, 4, 3]),
    ])
    for period in ("2026-11", "2026-11-02"):
        dept = p.employees.department("d-1", parse_period(period), 1)
        assert len(dept["employees"]) == 2
        assert_conforms("DepartmentFigures", dept)
    now = datetime(2026, 11, 2, 15, tzinfo=UTC)
    for ticket in ("t-1", "t-2"):
        found = p.tickets.view(ticket)
        assert found is not None
        assert_conforms("TicketProjection", describe(found[1], p.cat, True, now))


def test_every_operation_documents_the_errors_it_can_answer() -> None:
    doc = openapi_document()
    for path, item in doc["paths"].items():
        op = item["get"]
        codes = set(op["responses"])
        assert {"400", "405", "500"} <= codes, path
        secured = op.get("security", doc["security"]) != []
        assert secured == ({"401", "403"} <= codes), path
        assert ("{" in path) == ("404" in codes), path  # keyed resources can be unknown
    assert "/internal/employees/{employee_id}" not in doc["paths"]  # worker-to-worker only


@pytest.mark.parametrize("value, ok", [
    ("e-1", True), ("a" * 128, True), ("a" * 129, False), ("x.y:z@w_v", True),
    (".", False), ("..", False), (".hidden", False), ("", False), ("e-1\n", False),
    ("e/1", False), ("e\x00", False), ("é", False),
])
def test_id_pattern(value: str, ok: bool) -> None:
    # fullmatch, like the views: `$` alone would let a trailing newline through.
    assert bool(re.fullmatch(ID_PATTERN, value)) is ok


@given(st.from_regex(DATE_PATTERN, fullmatch=True))
def test_pattern_dates_that_are_real_days_parse(text: str) -> None:
    # The pattern bounds the shape; the view then rejects the 31st of short months (400).
    try:
        period = parse_period(text)
    except BadPeriod:
        assert int(text[8:]) > 28
    else:
        assert not period.is_month


@given(st.from_regex(MONTH_PATTERN, fullmatch=True))
def test_every_pattern_month_parses(text: str) -> None:
    assert parse_period(text).is_month


@pytest.mark.parametrize("text", ["0000-01", "2026-13", "2026-1", "２０２６-11", "2026-11\n"])
def test_month_pattern_rejects(text: str) -> None:
    assert not re.fullmatch(MONTH_PATTERN, text)
