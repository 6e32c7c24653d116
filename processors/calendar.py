"""Norm orders, the order in force, calendars and plans (docs/semantics.md, "Which order
governs" and "Minutes, plan and attainment")."""

from __future__ import annotations

import calendar as _cal
import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields, is_dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from processors.repeats import window_of
from schemas.events import NormOrderIssued, SlaTarget

_UTC_ZONE = ZoneInfo("UTC")


def _canon(x: Any) -> Any:
    """JSON-able, order-independent form (set and hash order vary between processes)."""
    if isinstance(x, frozenset | set):
        return sorted(str(_canon(i)) for i in x)
    if isinstance(x, Mapping):
        return {str(k): _canon(v) for k, v in x.items()}
    if is_dataclass(x) and not isinstance(x, type):
        return {f.name: _canon(getattr(x, f.name)) for f in fields(x)}
    if hasattr(x, "model_dump"):
        return _canon(x.model_dump())
    return str(x)


@dataclass(frozen=True, slots=True)
class NormOrder:
    """One director's norm order: a whole catalogue, never a patch."""

    order_id: str
    number: int
    issued_at: datetime
    effective_from: date
    decision_weights: Mapping[str, Decimal]
    daily_plan_minutes: Decimal
    sla_goal_pct: Decimal
    sla_targets: Mapping[str, SlaTarget]
    calls_per_hour_target: Decimal
    bonus_scale: Mapping[str, Decimal]
    tz: ZoneInfo
    workdays: frozenset[int]
    work_start: time
    work_end: time | None  # None: "24:00", the end of the day
    holidays: frozenset[date]
    extra_workdays: frozenset[date]
    # As issued (None: the field was absent or null); `repeat_window` is what it means.
    repeat_window_days: int | None = None

    @classmethod
    def from_event(cls, ev: NormOrderIssued) -> NormOrder:
        c = ev.calendar
        return cls(
            order_id=ev.order_id,
            number=ev.number,
            issued_at=ev.occurred_at,
            effective_from=ev.effective_from,
            decision_weights=dict(ev.decision_weights),
            daily_plan_minutes=ev.daily_plan_minutes,
            sla_goal_pct=ev.sla_goal_pct,
            sla_targets={str(k): v for k, v in ev.sla_targets.items()},
            calls_per_hour_target=ev.calls_per_hour_target,
            bonus_scale=dict(ev.bonus_scale),
            tz=ZoneInfo(c.timezone),
            workdays=frozenset(c.workdays),
            work_start=_hhmm(c.work_start) or time(0),
            work_end=_hhmm(c.work_end),
            holidays=frozenset(c.holidays),
            extra_workdays=frozenset(c.extra_workdays),
            repeat_window_days=ev.repeat_window_days,
        )

    @property
    def repeat_window(self) -> int:
        """Days of the repeat-contact window this order sets (7 when it sets none)."""
        return window_of(self.repeat_window_days)

    def digest(self) -> str:
        """A stable fingerprint of the whole order (across processes: sets are sorted)."""
        canon = _canon(self)
        if self.repeat_window_days is None:
            # An order without the field keeps the fingerprint it had before the field
            # existed: a store reconciled with it is not reconciled again for nothing.
            del canon["repeat_window_days"]
        return hashlib.sha256(orjson.dumps(canon, option=orjson.OPT_SORT_KEYS)
                              ).hexdigest()[:20]

    def with_issued_at(self, issued_at: datetime) -> NormOrder:
        """The same order, as if issued at another instant (a replay's cutoff)."""
        return replace(self, issued_at=issued_at)

    def is_working_day(self, d: date) -> bool:
        """A workdays weekday that is no holiday, or an extra workday (which wins)."""
        if d in self.extra_workdays:
            return True
        return d.isoweekday() in self.workdays and d not in self.holidays

    def working_window(self, d: date) -> tuple[datetime, datetime] | None:
        """[work_start, work_end) of local day d as aware UTC instants; None if not working.

        Local times are resolved by zoneinfo's fold=0 rule: a start inside a spring-forward
        gap moves forward with the clock, an ambiguous autumn time takes its first instance.
        """
        if not self.is_working_day(d):
            return None
        start = datetime.combine(d, self.work_start, self.tz).astimezone(UTC)
        if self.work_end is None:
            end = datetime.combine(d + timedelta(days=1), time(0), self.tz).astimezone(UTC)
        else:
            end = datetime.combine(d, self.work_end, self.tz).astimezone(UTC)
        if end <= start:
            return None
        return start, end

    def day_plan(self, d: date, absent: bool) -> Decimal:
        if absent or not self.is_working_day(d):
            return Decimal(0)
        return self.daily_plan_minutes


_START_OF_TIME = datetime(1, 1, 2, tzinfo=UTC)


def with_cutoff(order: NormOrder, cutoff: datetime | None) -> NormOrder:
    """A replay's view: an order issued by the cutoff counts as issued at the start."""
    if cutoff is not None and order.issued_at <= cutoff:
        return order.with_issued_at(_START_OF_TIME)
    return order


def _hhmm(text: str) -> time | None:
    h, m = int(text[:2]), int(text[3:5])
    if h == 24:
        return None
    return time(h, m)


def _end_of_day(d: date, tz: ZoneInfo) -> datetime:
    """The first instant of the day after d in zone tz."""
    return datetime.combine(d + timedelta(days=1), time(0), tz)


class OrderCatalogue:
    """Every known order; answers "which order is in force" for live and replay views.

    A view is `issued_by`: None means every order counts as issued at the start (replay);
    an instant means only orders issued at or before it count (live figures).
    """

    def __init__(self) -> None:
        self._orders: dict[str, NormOrder] = {}
        self._sorted: list[NormOrder] = []
        self._day_cache: dict[tuple[date, bool], NormOrder | None] = {}
        self._window_cache: dict[tuple[date, bool], tuple[datetime, datetime] | None] = {}
        self._window_us_cache: dict[tuple[date, bool], tuple[datetime, int, int] | None] = {}
        # The zone every known order shares (orders are expected to share one), else None.
        self._one_zone: ZoneInfo | None = None
        self._digests: dict[str, str] = {}
        # Bumped on every change, so a projection can tell cheaply that it must reconcile.
        self.revision = 0

    def __len__(self) -> int:
        return len(self._orders)

    @property
    def orders(self) -> list[NormOrder]:
        return list(self._sorted)

    def add(self, order: NormOrder) -> bool:
        """Add or replace (same order_id) an order; True when anything changed."""
        if self._orders.get(order.order_id) == order:
            return False
        self._orders[order.order_id] = order
        self._digests[order.order_id] = order.digest()
        self.revision += 1
        # Greatest effective_from first; ties go to the greater number.
        self._sorted = sorted(self._orders.values(),
                              key=lambda o: (o.effective_from, o.number), reverse=True)
        self._day_cache.clear()
        self._window_cache.clear()
        self._window_us_cache.clear()
        zones = {o.tz for o in self._sorted}
        self._one_zone = zones.pop() if len(zones) == 1 else None
        return True

    def digests(self) -> dict[str, str]:
        """order_id -> digest of every known order: what a projection was reconciled with."""
        return dict(self._digests)

    def changed_since(self, digests: Mapping[str, str] | None) -> list[NormOrder]:
        """Orders added or replaced since a projection was reconciled with `digests`."""
        return [o for o in self._sorted
                if digests is None or digests.get(o.order_id) != self._digests[o.order_id]]

    def in_force(self, d: date, issued_by: datetime | None) -> NormOrder | None:
        """The order with the greatest effective_from not after d (tie: greater number)."""
        for o in self._sorted:
            if o.effective_from <= d and (issued_by is None or o.issued_at <= issued_by):
                return o
        return None

    def repeat_window_days(self, d: date, issued_by: datetime | None) -> int:
        """The repeat-contact window of a contact opened on local date d: the
        order in force on d among those issued by `issued_by` (live: the contact's opening
        instant; None: a replay, every order); 7 when none is in force."""
        order = self.in_force(d, issued_by)
        return order.repeat_window if order is not None else window_of(None)

    def zone_at(self, instant: datetime, issued_by: datetime | None) -> ZoneInfo:
        """The zone of the order in force at an instant; before any, the earliest's zone."""
        if self._one_zone is not None:
            return self._one_zone  # whichever order is in force, this is its zone
        visible = [o for o in self._sorted if issued_by is None or o.issued_at <= issued_by]
        if not visible:
            visible = self._sorted
        if not visible:
            return _UTC_ZONE
        for o in visible:
            if o.effective_from <= instant.astimezone(o.tz).date():
                return o.tz
        return min(visible, key=lambda o: (o.effective_from, o.number)).tz

    def local_date(self, instant: datetime, issued_by: datetime | None) -> date:
        return instant.astimezone(self.zone_at(instant, issued_by)).date()

    def day_order(self, d: date, live: bool) -> NormOrder | None:
        """The order governing day d's plan and calendar (live: issued by the day's end)."""
        key = (d, live)
        if key in self._day_cache:
            return self._day_cache[key]
        found = None
        for o in self._sorted:
            if o.effective_from <= d and (not live or o.issued_at < _end_of_day(d, o.tz)):
                found = o
                break
        self._day_cache[key] = found
        return found

    def day_plan(self, d: date, absent: bool, live: bool) -> Decimal:
        o = self.day_order(d, live)
        return o.day_plan(d, absent) if o is not None else Decimal(0)

    def month_plan(self, year: int, month: int, absent_days: Collection[date],
                   live: bool) -> Decimal:
        total = Decimal(0)
        for day in range(1, _cal.monthrange(year, month)[1] + 1):
            d = date(year, month, day)
            total += self.day_plan(d, d in absent_days, live)
        return total

    def month_order(self, year: int, month: int, live: bool) -> NormOrder | None:
        """The order in force on the month's last day: calls target, goal, bonus scale."""
        return self.day_order(date(year, month, _cal.monthrange(year, month)[1]), live)

    def day_window(self, d: date, live: bool) -> tuple[datetime, datetime] | None:
        key = (d, live)
        try:
            return self._window_cache[key]
        except KeyError:
            pass
        o = self.day_order(d, live)
        w = self._window_cache[key] = o.working_window(d) if o is not None else None
        return w

    def day_window_us(self, d: date, live: bool) -> tuple[datetime, int, int] | None:
        """`day_window` as (start, start, end) with both ends in epoch microseconds, for
        arithmetic in integers (`business_time.due_at`)."""
        key = (d, live)
        try:
            return self._window_us_cache[key]
        except KeyError:
            pass
        w = self.day_window(d, live)
        out = self._window_us_cache[key] = (
            None if w is None else (w[0], epoch_us(w[0]), epoch_us(w[1])))
        return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timedelta_us(td: timedelta) -> int:
    """A timedelta in whole microseconds, exactly."""
    return (td.days * 86400 + td.seconds) * 1_000_000 + td.microseconds


def epoch_us(t: datetime) -> int:
    """Microseconds since the epoch of an aware instant, exactly."""
    return timedelta_us(t - _EPOCH)


def from_epoch_us(us: int) -> datetime:
    """The aware UTC instant `us` microseconds after the epoch (inverse of `epoch_us`)."""
    return _EPOCH + timedelta(microseconds=us)
