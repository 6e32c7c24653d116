"""Additive per-(employee, period) figures: projections are sums of contributions."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from operator import add, sub
from typing import Any, NamedTuple

from schemas.events import CallCompleted, CsatRated, Event, QualityEvaluated

_ZERO = Decimal(0)


class Counters(NamedTuple):
    """Everything summed per employee and day; a correction is `- old + new`.

    A NamedTuple rather than a frozen dataclass: it is built and added hundreds of
    thousands of times a second in a fold, and a tuple is made in C.
    """

    # Tickets: minutes priced by the norm order, decisions it has no price for, and the
    # outcomes that rates are computed from.
    kpi_minutes: Decimal = _ZERO
    unpriced_decisions: int = 0
    resolved: int = 0
    fcr: int = 0
    # SLA outcomes of the tickets resolved.
    met: int = 0
    breached: int = 0
    # What happened to tickets after their first resolution or line.
    reopened: int = 0
    escalated: int = 0
    escalations_returned: int = 0
    # Calls answered and their talk, hold and wrap-up time.
    calls_answered: int = 0
    handle_seconds: Decimal = _ZERO
    # Customer ratings (CSAT 1-5): their sum and count.
    csat_sum: int = 0
    csat_count: int = 0
    # Quality evaluations: how many scores of 1, 2, 3 and 4.
    q1: int = 0
    q2: int = 0
    q3: int = 0
    q4: int = 0
    # Repeat contacts charged to the employee that day, and the day's cover, an exact
    # fraction of minutes: a month is the exact sum of its days. Its zero is the int 0,
    # so that adding two counters without cover (nearly all of them) costs an int
    # addition, not a Fraction's.
    repeat_contacts: int = 0
    cover_minutes: Fraction | int = 0

    def __add__(self, o: Counters) -> Counters:  # type: ignore[override]
        return Counters._make(map(add, self, o))

    def __sub__(self, o: Counters) -> Counters:
        return Counters._make(map(sub, self, o))

    def is_zero(self) -> bool:
        return not any(self)

    def to_list(self) -> list[Any]:
        """Compact and exact: Decimals as strings, trailing zeros dropped."""
        out: list[Any] = list(self)
        for i in _DECIMAL_IDX:  # only these two fields can hold a Decimal
            if isinstance(out[i], Decimal):
                out[i] = str(out[i])
        if isinstance(out[_COVER_IDX], Fraction):  # "p/q", or "p" for a whole number
            out[_COVER_IDX] = str(out[_COVER_IDX])
        while out and out[-1] in (0, "0"):
            out.pop()
        return out

    @classmethod
    def from_list(cls, raw: list[Any]) -> Counters:
        vals: list[Any] = []
        for i, v in enumerate(raw):
            if i in _DECIMAL_IDX:
                vals.append(Decimal(v))
            elif i == _COVER_IDX and isinstance(v, str):
                vals.append(Fraction(v))
            else:
                vals.append(v)
        return cls(*vals)


# Decimal fields are the ones whose default is a Decimal zero.
_DECIMAL_IDX = frozenset(i for i, name in enumerate(Counters._fields)
                         if isinstance(Counters._field_defaults[name], Decimal))
_COVER_IDX = Counters._fields.index("cover_minutes")


def event_counters(ev: Event) -> Counters:
    """What one call, rating or evaluation adds to its employee's day: a call counts
    once answered, with its talk, hold and wrap-up as handle time."""
    if isinstance(ev, CallCompleted):
        if ev.answered_at is None:
            return Counters()
        return Counters(calls_answered=1,
                        handle_seconds=ev.talk_seconds + ev.hold_seconds + ev.wrap_up_seconds)
    if isinstance(ev, CsatRated):
        return Counters(csat_sum=ev.score, csat_count=1)
    if isinstance(ev, QualityEvaluated):
        q = [0, 0, 0, 0]
        for s in ev.scores:
            q[s - 1] += 1
        return Counters(q1=q[0], q2=q[1], q3=q[2], q4=q[3])
    return Counters()
