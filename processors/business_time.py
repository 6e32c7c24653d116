"""SLA clock arithmetic: elapsed business or wall-clock time, and when a budget runs out."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, Decimal

from processors.calendar import OrderCatalogue, epoch_us, timedelta_us

_ONE_DAY = timedelta(days=1)
_US = Decimal("0.000001")


def _seconds(td: timedelta) -> Decimal:
    """Exact seconds of a timedelta (integer microseconds, no float)."""
    return Decimal(timedelta_us(td)) * _US


def _ceil_us(seconds: Decimal) -> int:
    """Whole microseconds of at least `seconds`."""
    return int((seconds / _US).to_integral_value(ROUND_CEILING))


def _micros(seconds: Decimal) -> timedelta:
    """A timedelta of at least `seconds` (rounded up to the microsecond: 'reached')."""
    return timedelta(microseconds=_ceil_us(seconds))


def wall_seconds(start: datetime, end: datetime) -> Decimal:
    # In UTC: Python subtracts two datetimes sharing a tzinfo (a ZoneInfo) as wall clocks.
    return _seconds(end.astimezone(UTC) - start.astimezone(UTC)) if end > start else Decimal(0)


def _local_days(start: datetime, end: datetime, cat: OrderCatalogue) -> Iterable[date]:
    """Every local date that [start, end) touches, with a day of slack each side."""
    tz = cat.zone_at(start, None)
    d = start.astimezone(tz).date() - _ONE_DAY
    last = end.astimezone(tz).date() + _ONE_DAY
    while d <= last:
        yield d
        d += _ONE_DAY


def business_seconds(start: datetime, end: datetime, cat: OrderCatalogue, live: bool) -> Decimal:
    """Seconds of [start, end) inside working hours, each day by its own order."""
    if end <= start:
        return Decimal(0)
    start, end = start.astimezone(UTC), end.astimezone(UTC)  # see wall_seconds
    total = Decimal(0)
    for d in _local_days(start, end, cat):
        w = cat.day_window(d, live)
        if w is None:
            continue
        a, b = max(start, w[0]), min(end, w[1])
        if b > a:
            total += _seconds(b - a)
    return total


def elapsed_seconds(intervals: Iterable[tuple[datetime, datetime]], business_hours: bool,
                    cat: OrderCatalogue, live: bool) -> Decimal:
    """The summed running time of a clock's intervals."""
    total = Decimal(0)
    for a, b in intervals:
        total += business_seconds(a, b, cat, live) if business_hours else wall_seconds(a, b)
    return total


def due_at(running_from: datetime, remaining_seconds: Decimal, business_hours: bool,
           cat: OrderCatalogue, live: bool, *, horizon_days: int = 400) -> datetime | None:
    """The earliest instant at which `remaining_seconds` more will have elapsed."""
    if remaining_seconds <= 0:
        return running_from
    if not business_hours:  # elapsed time, not wall-clock arithmetic, in running_from's zone
        return (running_from.astimezone(UTC) + _micros(remaining_seconds)).astimezone(
            running_from.tzinfo)
    # In integer microseconds: a window's length is a whole number of them, so "avail >=
    # left" holds exactly when it holds for left rounded up, and rounding up once at the
    # start equals rounding up what is left at the end. (This walk ran in Decimal and was
    # ~8 % of a live worker: every open ticket's thresholds are recomputed per event.)
    left = _ceil_us(remaining_seconds)
    start_us = epoch_us(running_from)
    tz = cat.zone_at(running_from, None)
    d = running_from.astimezone(tz).date() - _ONE_DAY
    for _ in range(horizon_days):
        w = cat.day_window_us(d, live)
        d += _ONE_DAY
        if w is None or w[2] <= start_us:
            continue
        # max(running_from, window start), the earlier argument on a tie (its zone is kept)
        a, a_us = (w[0], w[1]) if w[1] > start_us else (running_from, start_us)
        avail = w[2] - a_us
        if avail >= left:
            return (a.astimezone(UTC) + timedelta(microseconds=left)).astimezone(a.tzinfo)
        left -= avail
    return None
