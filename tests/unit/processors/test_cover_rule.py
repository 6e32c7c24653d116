"""Rule 15 (cover for absent colleagues) as a pure function, with hand-computed figures."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from processors.cover import MemberDay, cover_day

PLAN = Decimal(480)


def m(emp: str, minutes: str, absent: bool = False) -> MemberDay:
    return MemberDay(emp, Decimal(minutes), absent)


def test_pool_smaller_than_the_excesses_is_shared_in_proportion() -> None:
    # pool 480 (one absent); excesses 960-480=480 and 720-480=240: S=720
    day = cover_day([m("a", "960"), m("b", "720"), m("c", "100"), m("x", "0", True)], PLAN)
    assert day.pool == 480 and day.excess_sum == 720
    assert day.covers == {"a": Fraction(320), "b": Fraction(160)}  # 480*480/720, 240*480/720


def test_pool_larger_than_the_excesses_pays_each_excess_in_full() -> None:
    day = cover_day([m("a", "500.5"), m("b", "490"), m("x", "0", True), m("y", "0", True)],
                    PLAN)
    assert day.pool == 960 and day.excess_sum == Fraction("30.5")
    assert day.covers == {"a": Fraction("20.5"), "b": Fraction(10)}


def test_pool_equal_to_the_excesses() -> None:
    day = cover_day([m("a", "720"), m("b", "720"), m("x", "0", True)], PLAN)
    assert day.covers == {"a": 240, "b": 240}


def test_shares_are_exact_fractions() -> None:
    # pool 480, excesses 1, 1, 1 -> each 1 (min(1, 480/3) = 1); with pool 1 minute plan:
    day = cover_day([m("a", "2"), m("b", "2"), m("c", "2"), m("x", "0", True)], Decimal(1))
    assert day.covers == {"a": Fraction(1, 3), "b": Fraction(1, 3), "c": Fraction(1, 3)}


def test_an_absent_member_who_logged_minutes_covers_nothing() -> None:
    day = cover_day([m("a", "600"), m("x", "900", True)], PLAN)
    assert day.pool == 480 and day.excess_sum == 120
    assert day.covers == {"a": 120}


def test_no_absence_no_pool_no_cover() -> None:
    day = cover_day([m("a", "600"), m("b", "700")], PLAN)
    assert (day.pool, day.covers) == (0, {})


def test_no_excess_no_cover() -> None:
    day = cover_day([m("a", "480"), m("b", "10"), m("x", "0", True)], PLAN)
    assert (day.pool, day.excess_sum, day.covers) == (480, 0, {})


def test_a_non_working_day_has_no_pool_so_no_cover() -> None:
    # plan 0 on a non-working day: the absent member would have had 0; everyone who worked
    # has an excess (all their minutes), but there is nothing to share
    day = cover_day([m("a", "120"), m("x", "0", True)], Decimal(0))
    assert (day.pool, day.excess_sum, day.covers) == (0, 120, {})
