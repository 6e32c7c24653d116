"""The read-side formulas (docs/semantics.md, "Quality figures"): percentages, quality,
bonus, objects."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

from processors.counters import Counters

_CENT = Decimal("0.01")
_HUNDRED = Decimal(100)
# Deduction bands on the reported productivity_pct (the bonus): (lower bound, points).
_BANDS: tuple[tuple[Decimal, int], ...] = (
    (Decimal(100), 0), (Decimal(98), 1), (Decimal(96), 2), (Decimal(94), 3),
    (Decimal(92), 4), (Decimal(90), 5),
)


def q2(x: Decimal) -> Decimal:
    """Half-up to 2 decimals, on the exact value."""
    return x.quantize(_CENT, rounding=ROUND_HALF_UP)


def round2(x: Decimal) -> float:
    return float(q2(x))


def round_fraction2(x: Fraction | int) -> float:
    """An exact fraction half-up (away from zero) to 2 decimals, without a detour through
    a finite decimal that could round it twice."""
    fr = x if isinstance(x, Fraction) else Fraction(int(x))
    cents = math.floor(abs(fr) * 100 + Fraction(1, 2))
    return float(Decimal(cents if x >= 0 else -cents).scaleb(-2))


def pct(num: Decimal | int, den: Decimal | int) -> float | None:
    """100 * num / den rounded half-up; None when the denominator is 0."""
    if not den:
        return None
    return round2(_HUNDRED * Decimal(num) / Decimal(den))


def quality_score(q1: int, q2_: int, q3: int, q4: int) -> Decimal | None:
    """Quality score: 95, -10 per 1, -5 per 2, +0.1 per 4; all 4s -> 100; clamp [0, 100]."""
    n = q1 + q2_ + q3 + q4
    if n == 0:
        return None
    if q4 == n:
        return _HUNDRED
    score = Decimal(95) - 10 * q1 - 5 * q2_ + Decimal("0.1") * q4
    return min(_HUNDRED, max(Decimal(0), score))


def deduction(productivity_pct: float) -> int:
    """Points deducted for the reported productivity (>= 90)."""
    p = Decimal(str(productivity_pct))
    for bound, points in _BANDS:
        if p >= bound:
            return points
    raise ValueError("productivity below 90% has no deduction band")


def scale_step(scale: Mapping[str, Decimal], points_floor: Decimal) -> Decimal | None:
    """The value of the greatest key (compared as numbers) not above points_floor."""
    best: tuple[Decimal, Decimal] | None = None
    for k, v in scale.items():
        try:
            kn = Decimal(k)
        except ArithmeticError:
            continue
        if not kn.is_finite():  # "NaN" would raise on comparison; infinities are no step
            continue
        if kn <= points_floor and (best is None or kn > best[0]):
            best = (kn, v)
    return best[1] if best else None


def bonus(quality: Decimal | None, productivity_pct: float | None,
          bonus_scale: Mapping[str, Decimal] | None) -> dict[str, Any]:
    """The bonus, explained: each step's figure, and the first failing step as `reason`."""
    out: dict[str, Any] = {
        "eligible": False,
        "quality_score": round2(quality) if quality is not None else None,
        "productivity_pct": productivity_pct,
        "deduction": None,
        "points": None,
        "bonus_pct": None,
    }
    if productivity_pct is None:
        return {**out, "reason": "no_productivity"}
    if productivity_pct < 90:
        return {**out, "reason": "productivity_below_90"}
    if quality is None:
        return {**out, "reason": "no_quality"}
    ded = deduction(productivity_pct)
    points = q2(quality) - ded
    out["deduction"] = ded
    out["points"] = float(points)
    if points < 85:
        return {**out, "reason": "points_below_85"}
    step = scale_step(bonus_scale or {}, points.to_integral_value(ROUND_FLOOR))
    if step is None:
        return {**out, "reason": "no_scale_step"}
    return {**out, "eligible": True, "bonus_pct": round2(step)}


def _calls(c: Counters, plan_minutes: Decimal,
           target: Decimal | None) -> tuple[dict[str, Any], float | None]:
    aht = round2(c.handle_seconds / c.calls_answered) if c.calls_answered else None
    cph_exact = (Decimal(c.calls_answered) / (plan_minutes / 60)) if plan_minutes else None
    cph = round2(cph_exact) if cph_exact is not None else None
    # productivity comes from the unrounded calls_per_hour (docs/semantics.md, "Rounding")
    prod = pct(cph_exact, target) if cph_exact is not None and target else None
    return {"answered": c.calls_answered, "aht_seconds": aht, "calls_per_hour": cph,
            "productivity_pct": prod}, prod


def _common(c: Counters, tickets_handled: int, plan_minutes: Decimal,
            calls_per_hour_target: Decimal | None,
            sla_goal_pct: Decimal | None) -> tuple[dict[str, Any], float | None]:
    compliance = pct(c.met, c.met + c.breached)
    goal_met = (None if compliance is None or sla_goal_pct is None
                else Decimal(str(compliance)) >= sla_goal_pct)
    calls, prod = _calls(c, plan_minutes, calls_per_hour_target)
    body = {
        "kpi_minutes": round2(c.kpi_minutes),
        "plan_minutes": round2(plan_minutes),
        "attainment_pct": pct(c.kpi_minutes, plan_minutes),
        "tickets_handled": tickets_handled,
        "unpriced_decisions": c.unpriced_decisions,
        "sla": {"met": c.met, "breached": c.breached, "compliance_pct": compliance,
                "goal_met": goal_met},
        "resolved": c.resolved,
        "fcr_pct": pct(c.fcr, c.resolved),
        "reopened": c.reopened,
        "reopen_rate_pct": pct(c.reopened, c.resolved),
        "escalated": c.escalated,
        "escalation_rate_pct": pct(c.escalated, tickets_handled),
        "escalations_returned": c.escalations_returned,
        "bounce_back_pct": pct(c.escalations_returned, c.escalated),
        "calls": calls,
        "csat_avg": round2(Decimal(c.csat_sum) / c.csat_count) if c.csat_count else None,
    }
    return body, prod


def employee_object(*, employee_id: str, department_id: str | None, period: str,
                    generation: int, c: Counters, tickets_handled: int, plan_minutes: Decimal,
                    is_month: bool, calls_per_hour_target: Decimal | None,
                    sla_goal_pct: Decimal | None,
                    bonus_scale: Mapping[str, Decimal] | None,
                    extended: bool = True) -> dict[str, Any]:
    """The employee object (docs/events.md); bonus and quality only for months;
    `extended`: with the repeat-contact and cover figures."""
    body, prod = _common(c, tickets_handled, plan_minutes, calls_per_hour_target, sla_goal_pct)
    obj: dict[str, Any] = {"employee_id": employee_id, "department_id": department_id,
                           "period": period, "generation": generation, **body}
    if extended:
        obj.update(repeat_cover_fields(c))
    if is_month:
        quality = quality_score(c.q1, c.q2, c.q3, c.q4)
        obj["quality_score"] = round2(quality) if quality is not None else None
        obj["bonus"] = bonus(quality, prod, bonus_scale)
    return obj


def repeat_cover_fields(c: Counters) -> dict[str, Any]:
    """The repeat-contact and cover figures of an employee or department object: the rate is
    over the same object's `resolved` (dated differently, so it may exceed 100)."""
    return {"repeat_contacts": c.repeat_contacts,
            "repeat_contact_rate_pct": pct(c.repeat_contacts, c.resolved),
            "cover_minutes": round_fraction2(c.cover_minutes)}


def department_totals(items: Sequence[tuple[Counters, int, Decimal]], *, is_month: bool,
                      calls_per_hour_target: Decimal | None,
                      sla_goal_pct: Decimal | None, extended: bool = True,
                      pool_minutes: Fraction | int = 0) -> dict[str, Any]:
    """Totals: summed counts and minutes, percentages from summed numerators/denominators;
    `extended`: with the repeat-contact and cover figures, the covers' exact sum and the
    period's pools."""
    total = Counters()
    handled = 0
    plan = Decimal(0)
    for c, h, p in items:
        total = total + c
        handled += h
        plan += p
    body, _ = _common(total, handled, plan, calls_per_hour_target, sla_goal_pct)
    if extended:
        body.update(repeat_cover_fields(total))
        body["cover_pool_minutes"] = round_fraction2(pool_minutes)
    return body
