"""Cover for absent colleagues: who worked for two gets a share of the absent colleague's day.

For one department and one date: the *pool* is the plan the absent members would have had
(the day's plan of a present member, for each absent one); each present member's *excess*
is max(0, kpi_minutes - plan); with S the sum of the excesses, a present member's cover is
excess * min(1, pool / S), and 0 when pool or S is 0. An absent member covers nothing that
day, whatever minutes they logged.

Covers are exact fractions: a month's cover is the exact sum of its days, and a department
total the exact sum of its members', each rounded once when shown.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

ZERO = Fraction(0)


def exact(x: Decimal) -> Fraction:
    """A decimal as a fraction. Through its integer ratio: `Fraction(decimal)` asks the
    numbers ABCs about Decimal on every call, which measured ~100 us a value."""
    return Fraction(*x.as_integer_ratio())


@dataclass(frozen=True, slots=True)
class MemberDay:
    """One member's day as the department sees it."""

    employee_id: str
    kpi_minutes: Decimal
    absent: bool


@dataclass(frozen=True, slots=True)
class CoverDay:
    """A department's day: its pool, the sum of excesses, and each present member's cover
    (members with a zero cover are left out)."""

    pool: Fraction
    excess_sum: Fraction
    covers: dict[str, Fraction] = field(default_factory=dict)


def cover_day(members: Iterable[MemberDay], plan: Decimal) -> CoverDay:
    """Rule 15 for one department and date; `plan` is the day's plan of a present member
    (`daily_plan_minutes` on a working day of the order in force, else 0)."""
    absent = 0
    # Minutes and plans are exact decimals of a few digits, whose differences and sums
    # Decimal computes exactly; only a share (a quotient) needs a fraction.
    excess: dict[str, Decimal] = {}
    for m in members:
        if m.absent:
            absent += 1
            continue
        x = m.kpi_minutes - plan
        if x > 0:
            excess[m.employee_id] = x
    pool = plan * absent
    s = sum(excess.values(), Decimal(0))
    if pool == 0 or s == 0:
        return CoverDay(exact(pool), exact(s))
    share = min(Fraction(1), exact(pool) / exact(s))
    return CoverDay(exact(pool), exact(s), {e: exact(x) * share for e, x in excess.items()})
