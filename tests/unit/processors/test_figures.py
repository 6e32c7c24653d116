"""Rules 10-13: calls, quality score, the monthly bonus and rounding, to the cent.

The bonus scale is the example order's (tests/factory.py BONUS_SCALE):
85 -> 15, 93 -> 20, 94 -> 22.5, 95 -> 25, 96 -> 27.5, 97 -> 30, 98 -> 32.5, 99 -> 35, 100 -> 37.5.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.counters import Counters
from processors.figures import (
    bonus,
    deduction,
    department_totals,
    employee_object,
    pct,
    q2,
    quality_score,
    round2,
    scale_step,
)
from projections.pipeline import Pipeline
from tests import factory as f

SCALE = {k: Decimal(str(v)) for k, v in f.BONUS_SCALE.items()}
PLAN = Decimal(9600)  # November 2026: 20 working days of 480 minutes = 160 hours


def month(c: Counters, *, plan: Decimal = PLAN, target: Decimal | None = Decimal(35),
          goal: Decimal | None = Decimal(95), scale: Any = SCALE, handled: int = 0,
          is_month: bool = True) -> dict[str, Any]:
    return employee_object(employee_id="e-1", department_id="d-1", period="2026-11",
                           generation=1, c=c, tickets_handled=handled, plan_minutes=plan,
                           is_month=is_month, calls_per_hour_target=target, sla_goal_pct=goal,
                           bonus_scale=scale)


def scores(*s: int) -> Counters:
    q = [0, 0, 0, 0]
    for x in s:
        q[x - 1] += 1
    return Counters(q1=q[0], q2=q[1], q3=q[2], q4=q[3])


def calls_for(productivity_pct: Decimal, *, target: Decimal = Decimal(35),
              plan: Decimal = PLAN) -> int:
    n = productivity_pct / 100 * target * plan / 60
    assert n == n.to_integral_value(), "choose a productivity that is a whole number of calls"
    return int(n)


# -- worked examples of the bonus -------------------------------------------------------------


def test_worked_example_quality_100_at_100_pct_productivity_is_37_5() -> None:
    obj = month(scores(4, 4, 4) + Counters(calls_answered=calls_for(Decimal(100))))
    assert obj["calls"]["productivity_pct"] == 100.0
    assert obj["quality_score"] == 100.0
    assert obj["bonus"] == {"eligible": True, "quality_score": 100.0, "productivity_pct": 100.0,
                            "deduction": 0, "points": 100.0, "bonus_pct": 37.5}


def test_worked_example_quality_100_at_90_pct_is_95_points_and_25() -> None:
    obj = month(scores(4) + Counters(calls_answered=calls_for(Decimal(90))))
    assert obj["calls"]["productivity_pct"] == 90.0
    assert obj["bonus"] == {"eligible": True, "quality_score": 100.0, "productivity_pct": 90.0,
                            "deduction": 5, "points": 95.0, "bonus_pct": 25.0}


def test_below_90_pct_is_not_eligible_and_later_figures_stay_null() -> None:
    obj = month(scores(4) + Counters(calls_answered=calls_for(Decimal(89))))
    assert obj["bonus"] == {"eligible": False, "quality_score": 100.0, "productivity_pct": 89.0,
                            "deduction": None, "points": None, "bonus_pct": None,
                            "reason": "productivity_below_90"}


def test_all_scores_4_is_quality_100() -> None:
    assert quality_score(0, 0, 0, 1) == 100
    assert quality_score(0, 0, 0, 37) == 100
    assert month(scores(4, 4))["quality_score"] == 100.0


def test_a_month_with_no_evaluations_has_null_quality() -> None:
    assert quality_score(0, 0, 0, 0) is None
    obj = month(Counters(calls_answered=calls_for(Decimal(100))))
    assert obj["quality_score"] is None
    assert obj["bonus"]["reason"] == "no_quality"
    assert obj["bonus"]["quality_score"] is None
    assert obj["bonus"]["points"] is None and obj["bonus"]["bonus_pct"] is None


# -- the quality score ------------------------------------------------------------------------


@pytest.mark.parametrize(("s", "expected"), [
    ((3,), "95"), ((3, 3, 3), "95"), ((4, 3), "95.1"), ((4, 4, 3), "95.2"),
    ((2,), "90"), ((1,), "85"), ((1, 2, 3, 4), "80.1"), ((2, 4, 4), "90.2"),
    ((1,) * 9, "5"), ((1,) * 10, "0"), ((1,) * 11, "0"),  # clamped at 0
    ((4,) * 60 + (3,), "100"),  # 95 + 6 = 101, clamped at 100
    ((4,) * 49 + (3,), "99.9"),
])
def test_quality_score(s: tuple[int, ...], expected: str) -> None:
    c = scores(*s)
    assert quality_score(c.q1, c.q2, c.q3, c.q4) == Decimal(expected)


# -- the deduction bands, each edge -----------------------------------------------------------

BANDS = [  # (reported productivity, deduction, bonus_pct at quality 100)
    (150.0, 0, 37.5), (100.0, 0, 37.5),
    (99.99, 1, 35.0), (98.0, 1, 35.0),
    (97.99, 2, 32.5), (96.0, 2, 32.5),
    (95.99, 3, 30.0), (94.0, 3, 30.0),
    (93.99, 4, 27.5), (92.0, 4, 27.5),
    (91.99, 5, 25.0), (90.0, 5, 25.0),
]


@pytest.mark.parametrize(("prod", "ded", "bonus_pct"), BANDS)
def test_deduction_band_edges(prod: float, ded: int, bonus_pct: float) -> None:
    assert deduction(prod) == ded
    b = bonus(Decimal(100), prod, SCALE)
    assert b == {"eligible": True, "quality_score": 100.0, "productivity_pct": prod,
                 "deduction": ded, "points": 100.0 - ded, "bonus_pct": bonus_pct}


def test_just_below_90_has_no_band() -> None:
    with pytest.raises(ValueError):
        deduction(89.99)
    b = bonus(Decimal(100), 89.99, SCALE)
    assert (b["eligible"], b["reason"], b["deduction"], b["points"]) == (
        False, "productivity_below_90", None, None)


def test_bands_compare_the_reported_rounded_productivity() -> None:
    # 89.996 % exactly is reported as 90.0 %: eligible, 5 points off
    obj = month(scores(4) + Counters(calls_answered=89996), plan=Decimal(60000),
                target=Decimal(100))
    assert obj["calls"]["productivity_pct"] == 90.0
    assert obj["bonus"]["deduction"] == 5 and obj["bonus"]["eligible"] is True
    # 97.995 % is reported as 98.0 %: 1 point, not 2
    obj = month(scores(4) + Counters(calls_answered=97995), plan=Decimal(60000),
                target=Decimal(100))
    assert obj["calls"]["productivity_pct"] == 98.0
    assert obj["bonus"]["deduction"] == 1
    # 89.994 % is reported as 89.99 %: not eligible
    obj = month(scores(4) + Counters(calls_answered=89994), plan=Decimal(60000),
                target=Decimal(100))
    assert obj["bonus"]["reason"] == "productivity_below_90"


@pytest.mark.parametrize(("quality", "prod", "points", "bonus_pct"), [
    ("100", 100.0, 100.0, 37.5), ("99.9", 100.0, 99.9, 35.0), ("99.9", 99.0, 98.9, 32.5),
    ("95.1", 100.0, 95.1, 25.0), ("95", 99.0, 94.0, 22.5), ("95", 97.0, 93.0, 20.0),
    ("95", 95.0, 92.0, 15.0),  # floor(92) -> greatest key not above is 85
    ("90", 90.0, 85.0, 15.0), ("93.1", 98.5, 92.1, 15.0), ("94.9", 100.0, 94.9, 22.5),
])
def test_points_and_the_scale_step_of_floor_points(quality: str, prod: float, points: float,
                                                   bonus_pct: float) -> None:
    b = bonus(Decimal(quality), prod, SCALE)
    assert b["eligible"] is True
    assert b["points"] == points
    assert b["bonus_pct"] == bonus_pct


def test_points_below_85_are_reported_but_not_eligible() -> None:
    b = bonus(Decimal("85.1"), 98.0, SCALE)  # 85.1 - 1 = 84.1
    assert b == {"eligible": False, "quality_score": 85.1, "productivity_pct": 98.0,
                 "deduction": 1, "points": 84.1, "bonus_pct": None,
                 "reason": "points_below_85"}
    b = bonus(Decimal("89.99"), 90.0, SCALE)
    assert (b["points"], b["reason"]) == (84.99, "points_below_85")
    assert bonus(Decimal(85), 100.0, SCALE)["bonus_pct"] == 15.0  # exactly 85: eligible


def test_no_scale_step() -> None:
    b = bonus(Decimal(90), 100.0, {"95": Decimal(25)})
    assert b == {"eligible": False, "quality_score": 90.0, "productivity_pct": 100.0,
                 "deduction": 0, "points": 90.0, "bonus_pct": None, "reason": "no_scale_step"}
    assert bonus(Decimal(100), 100.0, None)["reason"] == "no_scale_step"
    assert bonus(Decimal(100), 100.0, {})["reason"] == "no_scale_step"


def test_no_productivity_comes_first() -> None:
    b = bonus(None, None, SCALE)
    assert b == {"eligible": False, "quality_score": None, "productivity_pct": None,
                 "deduction": None, "points": None, "bonus_pct": None,
                 "reason": "no_productivity"}
    assert bonus(Decimal(100), None, SCALE)["reason"] == "no_productivity"
    assert bonus(None, 50.0, SCALE)["reason"] == "productivity_below_90"
    assert bonus(None, 95.0, SCALE)["reason"] == "no_quality"


def test_no_productivity_when_the_month_has_no_plan_or_no_target() -> None:
    obj = month(scores(4), plan=Decimal(0))
    assert obj["calls"]["calls_per_hour"] is None
    assert obj["bonus"]["reason"] == "no_productivity"
    obj = month(scores(4) + Counters(calls_answered=10), target=None)
    assert obj["calls"]["productivity_pct"] is None
    assert obj["bonus"]["reason"] == "no_productivity"


def test_scale_keys_compare_as_numbers() -> None:
    scale = {"100": Decimal("37.5"), "85": Decimal(15), "93": Decimal(20)}
    assert scale_step(scale, Decimal(99)) == 20  # not "100" < "85" as text
    assert scale_step({"85.0": Decimal(1), "9.5e1": Decimal(2)}, Decimal(96)) == 2
    assert scale_step({"085": Decimal(1)}, Decimal(85)) == 1
    assert scale_step({"abc": Decimal(9), "85": Decimal(1)}, Decimal(99)) == 1
    assert scale_step(scale, Decimal(84)) is None


@pytest.mark.parametrize("key", ["NaN", "sNaN", "-nan", "Infinity", "-Infinity", "inf"])
def test_scale_keys_that_are_not_finite_numbers_are_ignored(key: str) -> None:
    scale = {key: Decimal(99), "85": Decimal(15)}
    assert scale_step(scale, Decimal(90)) == 15
    assert bonus(Decimal(100), 95.0, scale)["bonus_pct"] == 15.0


def test_goal_met_compares_the_reported_compliance() -> None:
    obj = month(Counters(met=18999, breached=1001))  # 94.995 % -> 95.0 %
    assert obj["sla"] == {"met": 18999, "breached": 1001, "compliance_pct": 95.0,
                          "goal_met": True}
    obj = month(Counters(met=18998, breached=1002))  # 94.99 %
    assert obj["sla"]["goal_met"] is False
    assert month(Counters())["sla"]["goal_met"] is None
    assert month(Counters(met=1), goal=None)["sla"]["goal_met"] is None


# -- calls and rounding -----------------------------------------------------------------------


def test_calls_per_hour_and_productivity_from_the_unrounded_rate() -> None:
    obj = month(Counters(calls_answered=1), plan=Decimal(420))  # 1 call in 7 hours
    calls = obj["calls"]
    assert calls["calls_per_hour"] == 0.14
    assert calls["productivity_pct"] == 0.41  # 100 * (1/7) / 35 = 0.408..., not 0.14/35 = 0.4


def test_calls_nulls_and_zeros() -> None:
    c = month(Counters(), plan=Decimal(480), is_month=False)["calls"]
    assert c == {"answered": 0, "aht_seconds": None, "calls_per_hour": 0.0,
                 "productivity_pct": 0.0}
    c = month(Counters(calls_answered=3, handle_seconds=Decimal(300)), plan=Decimal(0),
              is_month=False)["calls"]
    assert c == {"answered": 3, "aht_seconds": 100.0, "calls_per_hour": None,
                 "productivity_pct": None}


def test_aht_and_csat_round_half_up_to_the_cent() -> None:
    obj = month(Counters(calls_answered=2, handle_seconds=Decimal("200.01")), is_month=False)
    assert obj["calls"]["aht_seconds"] == 100.01  # 100.005 -> 100.01, half-up
    obj = month(Counters(csat_sum=14, csat_count=3), is_month=False)
    assert obj["csat_avg"] == 4.67
    assert month(Counters(), is_month=False)["csat_avg"] is None


@pytest.mark.parametrize(("x", "expected"), [
    ("2.675", 2.68), ("2.665", 2.67), ("0.005", 0.01), ("0.004999", 0.0), ("1.995", 2.0),
    ("99.995", 100.0), ("12.344999999", 12.34), ("-0.005", -0.01), ("7", 7.0),
])
def test_round2_is_half_up_on_the_exact_value(x: str, expected: float) -> None:
    assert round2(Decimal(x)) == expected
    assert q2(Decimal(x)) == Decimal(str(expected)).quantize(Decimal("0.01"))


def test_percentages() -> None:
    assert pct(107, 4000) == 2.68  # exactly 2.675: a float round() would give 2.67
    assert pct(1, 3) == 33.33 and pct(2, 3) == 66.67
    assert pct(0, 5) == 0.0
    assert pct(5, 0) is None and pct(Decimal(5), Decimal(0)) is None
    assert pct(Decimal("21.5"), Decimal(480)) == 4.48


def test_day_object_has_no_bonus_or_quality_and_attainment() -> None:
    obj = month(Counters(kpi_minutes=Decimal("240.005")), plan=Decimal(480), is_month=False)
    assert "bonus" not in obj and "quality_score" not in obj
    assert obj["kpi_minutes"] == 240.01
    assert obj["attainment_pct"] == 50.0  # 50.00104...
    assert month(Counters(kpi_minutes=Decimal(5)), plan=Decimal(0),
                 is_month=False)["attainment_pct"] is None


def test_rates_with_zero_denominators_are_null() -> None:
    obj = month(Counters(), is_month=False)
    for k in ("fcr_pct", "reopen_rate_pct", "escalation_rate_pct", "bounce_back_pct"):
        assert obj[k] is None, k
    obj = month(Counters(resolved=3, fcr=2, reopened=1, escalated=1, escalations_returned=1),
                handled=4, is_month=False)
    assert (obj["fcr_pct"], obj["reopen_rate_pct"], obj["escalation_rate_pct"],
            obj["bounce_back_pct"]) == (66.67, 33.33, 25.0, 100.0)


def test_department_totals_use_summed_numerators_and_denominators() -> None:
    a = (Counters(met=1, breached=0, calls_answered=10, kpi_minutes=Decimal(100)), 2,
         Decimal(480))
    b = (Counters(met=1, breached=2, calls_answered=0, kpi_minutes=Decimal(20)), 1, Decimal(0))
    t = department_totals([a, b], is_month=False, calls_per_hour_target=Decimal(35),
                          sla_goal_pct=Decimal(95))
    assert t["sla"]["compliance_pct"] == 50.0  # 2 / 4, not the mean of 100 and 33.33
    assert t["kpi_minutes"] == 120.0 and t["plan_minutes"] == 480.0
    assert t["attainment_pct"] == 25.0
    assert t["tickets_handled"] == 3
    assert t["calls"]["calls_per_hour"] == 1.25
    assert "bonus" not in t and "quality_score" not in t


# -- the same through the pure fold (events in, month objects out) ---------------------------


def _month_via_pipeline(calls: int, evaluations: list[list[int]]) -> dict[str, Any]:
    # 0.125 calls per hour: 20 answered calls over November's 160 plan hours are 100 %.
    events = [f.order(calls_per_hour_target=0.125), f.registered("e-1", "d-1")]
    for i in range(calls):
        events.append(f.call("e-1", f"2026-11-{2 + i % 20:02d}T10:00:00+03:00"))
    events.append(f.call("e-1", "2026-11-02T11:00:00+03:00", answered=False))
    for s in evaluations:
        events.append(f.quality("e-1", "2026-11-10T12:00:00+03:00", s))
    p = Pipeline(live=True).apply_all(f.model(e) for e in events)
    obj = p.employee("e-1", "2026-11")
    assert obj is not None
    assert obj["plan_minutes"] == 9600
    return obj


def test_pipeline_worked_examples() -> None:
    full = _month_via_pipeline(20, [[4, 4], [4]])
    assert (full["quality_score"], full["calls"]["productivity_pct"]) == (100.0, 100.0)
    assert full["bonus"]["bonus_pct"] == 37.5
    ninety = _month_via_pipeline(18, [[4]])
    assert ninety["calls"]["productivity_pct"] == 90.0
    assert (ninety["bonus"]["points"], ninety["bonus"]["bonus_pct"]) == (95.0, 25.0)
    below = _month_via_pipeline(17, [[4]])
    assert below["calls"]["productivity_pct"] == 85.0
    assert below["bonus"]["reason"] == "productivity_below_90"
    none = _month_via_pipeline(20, [])
    assert none["quality_score"] is None and none["bonus"]["reason"] == "no_quality"
    mixed = _month_via_pipeline(20, [[4, 3], [2]])  # 95 + 0.1 - 5 = 90.1
    assert mixed["quality_score"] == 90.1
    assert (mixed["bonus"]["points"], mixed["bonus"]["bonus_pct"]) == (90.1, 15.0)


# -- Hypothesis -----------------------------------------------------------------------------


def _half_up(x: Fraction) -> Fraction:
    sign = -1 if x < 0 else 1
    return sign * Fraction(math.floor(abs(x) * 100 + Fraction(1, 2)), 100)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(0, 10**9), d=st.integers(1, 10**9))
def test_pct_is_half_up_of_the_exact_ratio(n: int, d: int) -> None:
    got = pct(n, d)
    assert got is not None
    assert Decimal(str(got)) == Decimal(_half_up(Fraction(100 * n, d)).numerator) / Decimal(
        _half_up(Fraction(100 * n, d)).denominator)


QUALITY = st.integers(0, 1000).map(lambda t: Decimal(t) / 10)
PRODUCTIVITY = st.integers(0, 20000).map(lambda c: c / 100)


@settings(max_examples=300, deadline=None)
@given(q=st.one_of(st.none(), QUALITY), p=st.one_of(st.none(), PRODUCTIVITY))
def test_bonus_explains_itself(q: Decimal | None, p: float | None) -> None:
    b = bonus(q, p, SCALE)
    assert b["quality_score"] == (float(q) if q is not None else None)
    assert b["productivity_pct"] == p
    if b["eligible"]:
        assert "reason" not in b
        assert q is not None and p is not None and p >= 90
        assert b["points"] == float(q - deduction(p)) >= 85
        floor = math.floor(b["points"])
        best = max(int(k) for k in SCALE if int(k) <= floor)
        assert b["bonus_pct"] == float(SCALE[str(best)])
        return
    reason = b["reason"]
    expected = ("no_productivity" if p is None else "productivity_below_90" if p < 90
                else "no_quality" if q is None else "points_below_85")
    assert reason == expected
    assert b["bonus_pct"] is None
    if reason == "points_below_85":
        assert b["points"] is not None and b["points"] < 85
        assert b["deduction"] == deduction(p)  # type: ignore[arg-type]
    else:
        assert b["points"] is None and b["deduction"] is None


@settings(max_examples=200, deadline=None)
@given(a=st.integers(9000, 20000).map(lambda c: c / 100),
       b=st.integers(9000, 20000).map(lambda c: c / 100))
def test_more_productivity_never_deducts_more(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert deduction(hi) <= deduction(lo)
    assert 0 <= deduction(lo) <= 5
