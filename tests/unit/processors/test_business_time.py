"""Business-time arithmetic (processors/business_time.py) over calendars (processors/calendar.py).

Nights, weekends, holidays, extra workdays, Europe/Moscow (no DST since 2014) and
Europe/Berlin across both 2026 changes (2026-03-29, 2026-10-25), fractional targets, due_at
as the inverse of business_seconds, additivity, a brute-force minute-by-minute oracle, and
wall-clock mode.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.business_time import business_seconds, due_at, elapsed_seconds, wall_seconds
from processors.calendar import NormOrder, OrderCatalogue
from schemas.events import NormOrderIssued
from tests import factory as f

MSK = ZoneInfo("Europe/Moscow")
BER = ZoneInfo("Europe/Berlin")
H = Decimal(3600)
US = timedelta(microseconds=1)


def order(tz: str = "Europe/Moscow", *, issued: str = "2026-01-01T00:00:00+00:00",
          effective_from: str = "2026-01-01", order_id: str = "ord-1", number: int = 1,
          **calendar: Any) -> NormOrder:
    cal = {**f.ORDER_CALENDAR, "timezone": tz, **calendar}
    ev = f.model(f.order(issued, calendar=cal, effective_from=effective_from,
                         order_id=order_id, number=number))
    assert isinstance(ev, NormOrderIssued)
    return NormOrder.from_event(ev)


def catalogue(*orders: NormOrder) -> OrderCatalogue:
    cat = OrderCatalogue()
    for o in orders or (order(),):
        cat.add(o)
    return cat


def at(text: str) -> datetime:
    """An instant as events carry it: RFC 3339 with a fixed offset."""
    return datetime.fromisoformat(text)


def bs(a: str | datetime, b: str | datetime, cat: OrderCatalogue | None = None,
       live: bool = False) -> Decimal:
    a_ = at(a) if isinstance(a, str) else a
    b_ = at(b) if isinstance(b, str) else b
    return business_seconds(a_, b_, cat or catalogue(), live)


MOSCOW = catalogue()  # Mon-Fri 09:00-18:00, 2026-11-04 a holiday


# -- Moscow: nights, weekends, holidays, extra workdays ---------------------------------------


def test_within_one_working_day() -> None:
    assert bs("2026-11-02T10:00:00+03:00", "2026-11-02T12:30:00+03:00") == Decimal(9000)


def test_clipped_to_working_hours() -> None:
    assert bs("2026-11-02T07:00:00+03:00", "2026-11-02T20:00:00+03:00") == 9 * H
    assert bs("2026-11-02T18:00:00+03:00", "2026-11-03T09:00:00+03:00") == 0
    assert bs("2026-11-02T17:59:59+03:00", "2026-11-03T09:00:01+03:00") == 2


def test_across_a_night() -> None:
    assert bs("2026-11-02T17:00:00+03:00", "2026-11-03T10:00:00+03:00") == 2 * H


def test_across_a_weekend() -> None:  # Friday 2026-11-06 to Monday 2026-11-09
    assert bs("2026-11-06T17:00:00+03:00", "2026-11-09T10:00:00+03:00") == 2 * H
    assert bs("2026-11-07T00:00:00+03:00", "2026-11-09T00:00:00+03:00") == 0


def test_across_a_holiday() -> None:  # Wednesday 2026-11-04
    assert bs("2026-11-03T17:00:00+03:00", "2026-11-05T10:00:00+03:00") == 2 * H
    assert bs("2026-11-04T00:00:00+03:00", "2026-11-05T00:00:00+03:00") == 0


def test_a_whole_week() -> None:
    assert bs("2026-11-02T00:00:00+03:00", "2026-11-09T00:00:00+03:00") == 4 * 9 * H


def test_an_extra_workday_on_a_saturday() -> None:
    cat = catalogue(order(extra_workdays=["2026-11-07"]))
    assert bs("2026-11-06T17:00:00+03:00", "2026-11-09T10:00:00+03:00", cat) == 11 * H


def test_an_extra_workday_that_is_also_a_holiday_is_a_working_day() -> None:
    cat = catalogue(order(holidays=["2026-11-04", "2026-11-07"],
                          extra_workdays=["2026-11-04", "2026-11-07"]))
    assert bs("2026-11-04T00:00:00+03:00", "2026-11-05T00:00:00+03:00", cat) == 9 * H
    assert bs("2026-11-07T00:00:00+03:00", "2026-11-08T00:00:00+03:00", cat) == 9 * H


def test_iso_weekdays_and_a_day_ending_at_midnight() -> None:
    # workdays 6 and 7 only (Saturday, Sunday), 20:00-24:00
    cat = catalogue(order(workdays=[6, 7], work_start="20:00", work_end="24:00"))
    assert bs("2026-11-02T00:00:00+03:00", "2026-11-09T00:00:00+03:00", cat) == 8 * H
    assert bs("2026-11-07T23:00:00+03:00", "2026-11-08T21:00:00+03:00", cat) == 2 * H


def test_a_window_that_ends_before_it_starts_is_no_working_time() -> None:
    cat = catalogue(order(work_start="18:00", work_end="09:00"))
    assert bs("2026-11-02T00:00:00+03:00", "2026-11-09T00:00:00+03:00", cat) == 0
    assert due_at(at("2026-11-02T10:00:00+03:00"), H, True, cat, False) is None


def test_an_empty_or_reversed_interval_is_zero() -> None:
    a = "2026-11-02T10:00:00+03:00"
    assert bs(a, a) == 0
    assert bs(a, "2026-11-02T09:30:00+03:00") == 0
    assert wall_seconds(at(a), at("2026-11-02T09:30:00+03:00")) == 0


def test_no_order_means_no_business_time() -> None:
    empty = OrderCatalogue()
    assert business_seconds(at("2026-11-02T10:00:00+03:00"), at("2026-11-03T10:00:00+03:00"),
                            empty, False) == 0
    assert due_at(at("2026-11-02T10:00:00+03:00"), Decimal(1), True, empty, False) is None


def test_microseconds_are_exact() -> None:
    a = at("2026-11-02T10:00:00.000001+03:00")
    b = at("2026-11-02T10:00:01.5+03:00")
    assert bs(a, b) == Decimal("1.499999")
    assert wall_seconds(a, b) == Decimal("1.499999")


# -- Europe/Moscow: no DST since 2014 --------------------------------------------------------


@pytest.mark.parametrize("d", [date(2026, 3, 27), date(2026, 3, 30), date(2026, 10, 23),
                               date(2026, 10, 26), date(2026, 7, 1), date(2026, 12, 1)])
def test_moscow_windows_are_06_to_15_utc_all_year(d: date) -> None:
    w = MOSCOW.day_window(d, False)
    assert w == (datetime.combine(d, time(6), UTC), datetime.combine(d, time(15), UTC))


@pytest.mark.parametrize(("a", "b"), [
    ("2026-03-27T17:00:00+03:00", "2026-03-30T10:00:00+03:00"),
    ("2026-10-23T17:00:00+03:00", "2026-10-26T10:00:00+03:00"),
])
def test_moscow_weekends_where_berlin_changes_clocks(a: str, b: str) -> None:
    assert bs(a, b) == 2 * H
    assert wall_seconds(at(a), at(b)) == 65 * H


# -- Europe/Berlin: 2026-03-29 (spring forward) and 2026-10-25 (fall back), both Sundays ------

BERLIN = catalogue(order("Europe/Berlin", holidays=[]))
BERLIN_24_7 = catalogue(order("Europe/Berlin", workdays=[1, 2, 3, 4, 5, 6, 7],
                              work_start="00:00", work_end="24:00", holidays=[]))


def test_berlin_windows_move_in_utc_with_the_clock() -> None:
    fri, mon = date(2026, 3, 27), date(2026, 3, 30)
    assert BERLIN.day_window(fri, False) == (datetime(2026, 3, 27, 8, tzinfo=UTC),
                                             datetime(2026, 3, 27, 17, tzinfo=UTC))
    assert BERLIN.day_window(mon, False) == (datetime(2026, 3, 30, 7, tzinfo=UTC),
                                             datetime(2026, 3, 30, 16, tzinfo=UTC))
    assert BERLIN.day_window(date(2026, 10, 26), False) == (
        datetime(2026, 10, 26, 8, tzinfo=UTC), datetime(2026, 10, 26, 17, tzinfo=UTC))


def test_berlin_spring_weekend() -> None:
    a, b = "2026-03-27T17:00:00+01:00", "2026-03-30T10:00:00+02:00"
    assert bs(a, b, BERLIN) == 2 * H
    assert wall_seconds(at(a), at(b)) == 64 * H  # one hour short of 65


def test_berlin_autumn_weekend() -> None:
    a, b = "2026-10-23T17:00:00+02:00", "2026-10-26T10:00:00+01:00"
    assert bs(a, b, BERLIN) == 2 * H
    assert wall_seconds(at(a), at(b)) == 66 * H  # one hour more than 65


@pytest.mark.parametrize(("d", "hours"), [
    (date(2026, 3, 28), 24), (date(2026, 3, 29), 23), (date(2026, 3, 30), 24),
    (date(2026, 10, 24), 24), (date(2026, 10, 25), 25), (date(2026, 10, 26), 24),
])
def test_berlin_round_the_clock_days_have_their_real_length(d: date, hours: int) -> None:
    start = datetime.combine(d, time(0), BER)
    end = datetime.combine(d + timedelta(days=1), time(0), BER)
    assert bs(start, end, BERLIN_24_7) == hours * H
    assert bs(start.astimezone(UTC), end.astimezone(UTC), BERLIN_24_7) == hours * H


@pytest.mark.parametrize(("d", "hours"), [
    (date(2026, 3, 28), 3), (date(2026, 3, 29), 2), (date(2026, 10, 25), 4),
])
def test_berlin_working_hours_that_span_the_change(d: date, hours: int) -> None:
    cat = catalogue(order("Europe/Berlin", workdays=[6, 7], work_start="01:00",
                          work_end="04:00", holidays=[]))
    start = datetime.combine(d, time(0), UTC) - timedelta(hours=3)
    assert bs(start, start + timedelta(days=1), cat) == hours * H


def test_berlin_start_in_the_spring_gap_moves_forward_and_ambiguous_takes_the_first() -> None:
    cat = catalogue(order("Europe/Berlin", workdays=[7], work_start="02:30", work_end="18:00",
                          holidays=[]))
    # 02:30 does not exist on 2026-03-29: the window opens at 03:30 CEST (01:30 UTC)
    assert cat.day_window(date(2026, 3, 29), False) == (
        datetime(2026, 3, 29, 1, 30, tzinfo=UTC), datetime(2026, 3, 29, 16, tzinfo=UTC))
    # 02:30 happens twice on 2026-10-25: the first (CEST, 00:30 UTC) opens the window
    assert cat.day_window(date(2026, 10, 25), False) == (
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 17, tzinfo=UTC))


def test_berlin_zone_aware_inputs_count_real_seconds_across_the_change() -> None:
    # Python subtracts datetimes that share a tzinfo as wall clocks; elapsed time must not.
    a, b = datetime(2026, 3, 29, 1, 0, tzinfo=BER), datetime(2026, 3, 29, 4, 0, tzinfo=BER)
    assert wall_seconds(a, b) == 2 * H
    assert bs(a, b, BERLIN_24_7) == 2 * H
    a, b = datetime(2026, 10, 25, 1, 0, tzinfo=BER), datetime(2026, 10, 25, 4, 0, tzinfo=BER)
    assert wall_seconds(a, b) == 4 * H
    assert bs(a, b, BERLIN_24_7) == 4 * H
    sat = datetime(2026, 3, 28, 12, 0, tzinfo=BER)
    assert wall_seconds(sat, datetime(2026, 3, 29, 12, 0, tzinfo=BER)) == 23 * H
    due = due_at(sat, 24 * H, False, BERLIN_24_7, False)
    assert due == datetime(2026, 3, 29, 13, 0, tzinfo=BER)
    due = due_at(sat, 24 * H, True, BERLIN_24_7, False)
    assert due == datetime(2026, 3, 29, 13, 0, tzinfo=BER)


# -- due_at: fractional targets, nights, weekends, DST -----------------------------------------


def minutes(x: str) -> Decimal:
    return Decimal(x) * 60


@pytest.mark.parametrize(("start", "target_minutes", "expected"), [
    ("2026-11-02T10:00:00+03:00", "0.5", "2026-11-02T10:00:30+03:00"),
    ("2026-11-02T10:00:00+03:00", "0.1", "2026-11-02T10:00:06+03:00"),
    ("2026-11-02T10:00:00+03:00", "1.25", "2026-11-02T10:01:15+03:00"),
    ("2026-11-02T17:59:30+03:00", "1.25", "2026-11-03T09:00:45+03:00"),  # over a night
    ("2026-11-06T17:59:57+03:00", "0.1", "2026-11-09T09:00:03+03:00"),  # over a weekend
    ("2026-11-03T17:30:00+03:00", "60", "2026-11-05T09:30:00+03:00"),  # over a holiday
    ("2026-11-02T03:00:00+03:00", "15", "2026-11-02T09:15:00+03:00"),  # from the night
    ("2026-11-07T12:00:00+03:00", "0.25", "2026-11-09T09:00:15+03:00"),  # from Saturday
    ("2026-11-02T17:00:00+03:00", "60", "2026-11-02T18:00:00+03:00"),  # at the window's end
    ("2026-11-02T09:00:00+03:00", "1080", "2026-11-03T18:00:00+03:00"),  # two whole days
    ("2026-11-02T10:00:00+03:00", "0.0000001", "2026-11-02T10:00:00.000006+03:00"),
])
def test_due_at_in_business_time(start: str, target_minutes: str, expected: str) -> None:
    due = due_at(at(start), minutes(target_minutes), True, MOSCOW, False)
    assert due == at(expected)


def test_due_at_rounds_up_to_the_microsecond() -> None:
    a = at("2026-11-02T10:00:00+03:00")
    assert due_at(a, Decimal("0.0000001"), True, MOSCOW, False) == a + US
    assert due_at(a, Decimal("0.0000001"), False, MOSCOW, False) == a + US
    assert due_at(a, Decimal("1.0000001"), False, MOSCOW, False) == a + timedelta(
        seconds=1, microseconds=1)


def test_due_at_with_nothing_left_is_now() -> None:
    a = at("2026-11-07T12:00:00+03:00")  # a Saturday: even outside working hours
    for bh in (True, False):
        assert due_at(a, Decimal(0), bh, MOSCOW, False) == a
        assert due_at(a, Decimal(-5), bh, MOSCOW, False) == a


def test_due_at_across_berlin_changes() -> None:
    due = due_at(at("2026-03-27T17:00:00+01:00"), 2 * H, True, BERLIN, False)
    assert due == at("2026-03-30T10:00:00+02:00")
    due = due_at(at("2026-10-23T17:00:00+02:00"), 2 * H, True, BERLIN, False)
    assert due == at("2026-10-26T10:00:00+01:00")
    # round the clock: the short Sunday ends 23 hours after it began
    sun = at("2026-03-29T00:00:00+01:00")
    assert due_at(sun, 23 * H, True, BERLIN_24_7, False) == at("2026-03-30T00:00:00+02:00")
    long_sun = at("2026-10-25T00:00:00+02:00")
    assert due_at(long_sun, 25 * H, True, BERLIN_24_7, False) == at("2026-10-26T00:00:00+01:00")


def test_due_at_gives_up_beyond_its_horizon() -> None:
    a = at("2026-11-02T10:00:00+03:00")
    assert due_at(a, 9 * H * 400, True, MOSCOW, False) is None
    assert due_at(a, 9 * H * 10, True, MOSCOW, False, horizon_days=5) is None


# -- wall-clock mode ------------------------------------------------------------------------


def test_wall_clock_mode_counts_every_second() -> None:
    a, b = at("2026-11-06T17:00:00+03:00"), at("2026-11-09T10:00:00+03:00")
    assert elapsed_seconds([(a, b)], False, MOSCOW, False) == 65 * H
    assert elapsed_seconds([(a, b)], True, MOSCOW, False) == 2 * H
    assert due_at(a, 65 * H, False, MOSCOW, False) == b
    assert due_at(a, minutes("0.5"), False, MOSCOW, False) == a + timedelta(seconds=30)


def test_wall_clock_mode_across_berlin_changes_counts_real_seconds() -> None:
    a = at("2026-03-28T12:00:00+01:00")
    b = at("2026-03-29T12:00:00+02:00")
    assert wall_seconds(a, b) == 23 * H
    assert due_at(a, 23 * H, False, BERLIN, False) == b
    c, d = at("2026-10-24T12:00:00+02:00"), at("2026-10-25T12:00:00+01:00")
    assert wall_seconds(c, d) == 25 * H


def test_offsets_do_not_matter_only_instants() -> None:
    a = at("2026-11-02T10:00:00+03:00")
    b = at("2026-11-02T12:00:00+00:00")  # 15:00 Moscow
    assert bs(a, b) == 5 * H
    assert bs(a.astimezone(timezone(timedelta(hours=-7))), b) == 5 * H
    assert wall_seconds(a, b) == 5 * H


def test_elapsed_seconds_sums_intervals() -> None:
    iv = [(at("2026-11-02T10:00:00+03:00"), at("2026-11-02T11:00:00+03:00")),
          (at("2026-11-02T17:30:00+03:00"), at("2026-11-03T09:30:00+03:00")),
          (at("2026-11-03T12:00:00+03:00"), at("2026-11-03T11:00:00+03:00"))]  # reversed: 0
    assert elapsed_seconds(iv, True, MOSCOW, False) == 2 * H
    assert elapsed_seconds(iv, False, MOSCOW, False) == 17 * H
    assert elapsed_seconds([], True, MOSCOW, False) == 0


# -- live and replay views of the calendar ---------------------------------------------------


def test_live_days_use_only_orders_issued_by_their_end() -> None:
    first = order(issued="2026-10-01T10:00:00+03:00", effective_from="2026-10-01", holidays=[])
    second = order(issued="2026-11-04T12:00:00+03:00", effective_from="2026-11-02", holidays=[],
                   work_start="10:00", work_end="12:00", order_id="ord-2", number=2)
    cat = catalogue(first, second)
    a, b = "2026-11-02T00:00:00+03:00", "2026-11-05T00:00:00+03:00"
    # live: the 2nd and 3rd were over before ord-2 was issued; the 4th saw it
    assert bs(a, b, cat, live=True) == (9 + 9 + 2) * H
    # a replay applies ord-2 from its effective date
    assert bs(a, b, cat, live=False) == 3 * 2 * H
    # due_at sees the same days
    assert due_at(at(a), 20 * H, True, cat, True) == at("2026-11-04T12:00:00+03:00")
    assert due_at(at(a), 6 * H, True, cat, False) == at("2026-11-04T12:00:00+03:00")


def test_a_later_order_changes_the_calendar_from_its_effective_date() -> None:
    first = order(holidays=[])
    second = order(effective_from="2026-11-05", holidays=[], workdays=[1, 2, 3, 4, 5, 6],
                   order_id="ord-2", number=2)
    cat = catalogue(first, second)
    # Saturday 2026-10-31 is off under ord-1; Saturday 2026-11-07 works under ord-2
    assert bs("2026-10-31T00:00:00+03:00", "2026-11-01T00:00:00+03:00", cat) == 0
    assert bs("2026-11-07T00:00:00+03:00", "2026-11-08T00:00:00+03:00", cat) == 9 * H


# -- Hypothesis properties ------------------------------------------------------------------

STARTS = ["00:00", "01:00", "09:00", "22:00"]  # none inside a DST gap or fold
ENDS = ["04:00", "18:00", "24:00"]


@st.composite
def calendars(draw: st.DrawFn) -> tuple[OrderCatalogue, ZoneInfo, dict[str, Any]]:
    tz = draw(st.sampled_from(["Europe/Moscow", "Europe/Berlin"]))
    cal: dict[str, Any] = {
        "workdays": sorted(draw(st.sets(st.integers(1, 7), min_size=1))),
        "work_start": draw(st.sampled_from(STARTS)),
        "work_end": draw(st.sampled_from(ENDS)),
        "holidays": [d.isoformat() for d in draw(st.lists(
            st.dates(date(2026, 3, 25), date(2026, 4, 2)) | st.dates(date(2026, 10, 21),
                                                                     date(2026, 10, 29)),
            max_size=3))],
        "extra_workdays": [d.isoformat() for d in draw(st.lists(
            st.dates(date(2026, 3, 25), date(2026, 4, 2)) | st.dates(date(2026, 10, 21),
                                                                     date(2026, 10, 29)),
            max_size=2))],
    }
    return catalogue(order(tz, **cal)), ZoneInfo(tz), cal


# instants around both 2026 changes, to the microsecond
AROUND_SPRING = st.datetimes(datetime(2026, 3, 26), datetime(2026, 4, 1), timezones=st.just(UTC))
AROUND_AUTUMN = st.datetimes(datetime(2026, 10, 22), datetime(2026, 10, 28),
                             timezones=st.just(UTC))
INSTANTS = AROUND_SPRING | AROUND_AUTUMN


def as_zone(instant: datetime, how: int, tz: ZoneInfo) -> datetime:
    """The same instant in UTC, in the calendar's zone, or with a fixed offset."""
    if how == 0:
        return instant
    if how == 1:
        return instant.astimezone(tz)
    return instant.astimezone(timezone(timedelta(hours=how - 5)))


@settings(max_examples=150, deadline=None)
@given(c=calendars(), xs=st.lists(INSTANTS, min_size=3, max_size=3), live=st.booleans())
def test_business_time_is_additive(c: Any, xs: list[datetime], live: bool) -> None:
    cat, _, _ = c
    a, b, d = sorted(xs)
    whole = business_seconds(a, d, cat, live)
    assert whole == business_seconds(a, b, cat, live) + business_seconds(b, d, cat, live)
    assert 0 <= whole <= wall_seconds(a, d)


@settings(max_examples=150, deadline=None)
@given(c=calendars(), xs=st.lists(INSTANTS, min_size=2, max_size=2),
       how=st.tuples(st.integers(0, 9), st.integers(0, 9)))
def test_only_the_instants_matter_not_their_zones(c: Any, xs: list[datetime],
                                                  how: tuple[int, int]) -> None:
    cat, tz, _ = c
    a, b = sorted(xs)
    a2, b2 = as_zone(a, how[0], tz), as_zone(b, how[1], tz)
    assert business_seconds(a2, b2, cat, False) == business_seconds(a, b, cat, False)
    assert wall_seconds(a2, b2) == wall_seconds(a, b)


def _brute_minutes(a: datetime, b: datetime, tz: ZoneInfo, cal: dict[str, Any]) -> int:
    """Minutes in [a, b) whose local wall-clock time lies in a working window."""
    start = time.fromisoformat(cal["work_start"])
    end = None if cal["work_end"] == "24:00" else time.fromisoformat(cal["work_end"])
    holidays = {date.fromisoformat(x) for x in cal["holidays"]}
    extra = {date.fromisoformat(x) for x in cal["extra_workdays"]}
    n = 0
    m = a
    while m < b:
        local = m.astimezone(tz)
        d = local.date()
        working = d in extra or (d.isoweekday() in cal["workdays"] and d not in holidays)
        t = local.time()
        if working and start <= t and (end is None or t < end) and (end is None or start < end):
            n += 1
        m += timedelta(minutes=1)
    return n


@settings(max_examples=40, deadline=None)
@given(c=calendars(), a=INSTANTS, span=st.integers(0, 3 * 24 * 60))
def test_business_time_matches_a_minute_by_minute_count(c: Any, a: datetime, span: int) -> None:
    cat, tz, cal = c
    a = a.replace(second=0, microsecond=0)
    b = a + timedelta(minutes=span)
    assert business_seconds(a, b, cat, False) == 60 * _brute_minutes(a, b, tz, cal)


SECONDS = st.decimals(min_value=0, max_value=5 * 24 * 3600, places=6, allow_nan=False,
                      allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(c=calendars(), a=INSTANTS, s=SECONDS, live=st.booleans())
def test_due_at_is_the_inverse_of_business_seconds(c: Any, a: datetime, s: Decimal,
                                                   live: bool) -> None:
    cat, _, _ = c
    due = due_at(a, s, True, cat, live)
    if due is None:  # beyond due_at's 400-day horizon (e.g. 2 working hours a week)
        assert business_seconds(a, a + timedelta(days=398), cat, live) < s
        return
    assert due >= a
    assert business_seconds(a, due, cat, live) == s
    if s > 0:  # and it is the earliest such instant
        assert business_seconds(a, due - US, cat, live) < s


@settings(max_examples=100, deadline=None)
@given(c=calendars(), a=INSTANTS, s=SECONDS, how=st.integers(0, 9))
def test_due_at_in_wall_clock_mode(c: Any, a: datetime, s: Decimal, how: int) -> None:
    cat, tz, _ = c
    start = as_zone(a, how, tz)
    due = due_at(start, s, False, cat, False)
    assert due is not None
    assert wall_seconds(start, due) == s
    # Compared as UTC instants: Python's == between zones treats an ambiguous local
    # time (a DST fold) as unequal to every instant (PEP 495).
    assert due.astimezone(UTC) == (a + timedelta(microseconds=int(s * 1_000_000))
                                   ).astimezone(UTC)


def _reference_due_at(running_from: datetime, remaining: Decimal, cat: OrderCatalogue,
                      live: bool) -> datetime | None:
    """due_at in business time as first written: Decimal seconds, window by window."""
    from decimal import ROUND_CEILING

    def secs(td: timedelta) -> Decimal:
        return Decimal((td.days * 86400 + td.seconds) * 1_000_000 + td.microseconds) / 10**6

    if remaining <= 0:
        return running_from
    left = remaining
    d = running_from.astimezone(cat.zone_at(running_from, None)).date() - timedelta(days=1)
    for _ in range(400):
        w = cat.day_window(d, live)
        d += timedelta(days=1)
        if w is None or w[1] <= running_from:
            continue
        a = max(running_from, w[0])
        avail = secs(w[1] - a)
        if avail >= left:
            us = int((left * 10**6).to_integral_value(ROUND_CEILING))
            return (a.astimezone(UTC) + timedelta(microseconds=us)).astimezone(a.tzinfo)
        left -= avail
    return None


@settings(max_examples=200, deadline=None)
@given(c=calendars(), a=INSTANTS, s=st.decimals(min_value=-10, max_value=5 * 24 * 3600,
                                                 places=9, allow_nan=False,
                                                 allow_infinity=False),
       how=st.integers(0, 9), live=st.booleans())
def test_due_at_in_integer_microseconds_equals_the_decimal_walk(
        c: Any, a: datetime, s: Decimal, how: int, live: bool) -> None:
    cat, tz, _ = c
    start = as_zone(a, how, tz)
    got, want = due_at(start, s, True, cat, live), _reference_due_at(start, s, cat, live)
    assert got == want
    if want is not None:  # the same instant written the same way (zone kept)
        assert got is not None and got.isoformat() == want.isoformat()
