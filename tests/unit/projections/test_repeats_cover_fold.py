"""Rules 14 and 15 through the pure fold (tickets -> customers -> employees, employee days
-> departments -> employees), with hand-computed figures."""

from __future__ import annotations

from typing import Any

from projections.pipeline import Pipeline
from tests import factory as f

MON, TUE, WED = "2026-11-02", "2026-11-03", "2026-11-04"


def at(day: str, hhmm: str) -> str:
    return f"{day}T{hhmm}:00+03:00"


def fold(*events: dict[str, Any], live: bool = True) -> Pipeline:
    return Pipeline(live=live, extended=True).apply_all(f.model(e) for e in events)


def emp(p: Pipeline, e: str, period: str) -> dict[str, Any]:
    obj = p.employee(e, period)
    assert obj is not None, f"{e} unknown"
    return obj


def figures(p: Pipeline, e: str, period: str) -> tuple[Any, ...]:
    o = emp(p, e, period)
    return o["repeat_contacts"], o["resolved"], o["repeat_contact_rate_pct"]


# -- repeat contacts -----------------------------------------------------------------------------


def _first_contact() -> list[dict[str, Any]]:
    return [f.order(),
            f.opened("t-1", at(MON, "10:00"), "e-1", customer_id="c-1"),
            f.resolved("t-1", at(MON, "11:00"), "e-2")]


def test_a_repeat_is_charged_to_the_resolver_on_the_new_contacts_date() -> None:
    p = fold(*_first_contact(), f.opened("t-2", at(TUE, "09:00"), "e-1", customer_id="c-1"))
    assert figures(p, "e-2", MON) == (0, 1, 0.0)
    assert figures(p, "e-2", TUE) == (1, 0, None)  # no resolution that day: rate null
    assert figures(p, "e-2", "2026-11") == (1, 1, 100.0)
    assert figures(p, "e-1", TUE) == (0, 0, None)


def test_another_customer_or_an_auto_ticket_is_no_repeat() -> None:
    p = fold(*_first_contact(),
             f.opened("t-2", at(TUE, "09:00"), "e-1", customer_id="c-2"),
             f.opened("t-3", at(TUE, "09:30"), "e-1", customer_id="c-1", origin="auto"))
    assert figures(p, "e-2", "2026-11")[0] == 0


def test_exactly_the_window_counts_and_a_microsecond_more_does_not() -> None:
    exactly = fold(*_first_contact(),
                   f.opened("t-2", "2026-11-09T11:00:00+03:00", "e-1", customer_id="c-1"))
    assert figures(exactly, "e-2", "2026-11-09")[0] == 1
    beyond = fold(*_first_contact(),
                  f.opened("t-2", "2026-11-09T11:00:00.000001+03:00", "e-1",
                           customer_id="c-1"))
    assert figures(beyond, "e-2", "2026-11")[0] == 0


def test_a_late_merge_absorbing_the_new_contact_withdraws_its_repeat() -> None:
    evs = [*_first_contact(), f.opened("t-2", at(TUE, "09:00"), "e-1", customer_id="c-1")]
    p = fold(*evs)
    assert figures(p, "e-2", TUE)[0] == 1
    p.apply(f.model(f.merged("t-2", at(WED, "12:00"), "t-9")))
    assert figures(p, "e-2", TUE)[0] == 0


def test_a_late_merge_absorbing_the_earlier_contact_withdraws_the_repeat() -> None:
    evs = [*_first_contact(), f.opened("t-2", at(TUE, "09:00"), "e-1", customer_id="c-1")]
    p = fold(*evs)
    p.apply(f.model(f.merged("t-1", at(WED, "12:00"), "t-2")))
    assert figures(p, "e-2", TUE)[0] == 0
    # ...and the absorbed ticket leaves resolved/FCR as before (rule 5)
    assert figures(p, "e-2", MON) == (0, 0, None)


def test_a_late_resolution_moves_the_charge_to_the_latest_resolver() -> None:
    evs = [*_first_contact(), f.opened("t-2", at(TUE, "09:00"), "e-1", customer_id="c-1"),
           f.opened("t-3", at(MON, "12:00"), "e-3", customer_id="c-1")]
    p = fold(*evs)
    assert figures(p, "e-2", TUE)[0] == 1
    p.apply(f.model(f.resolved("t-3", at(MON, "18:00"), "e-3")))  # later than t-1's
    assert figures(p, "e-2", TUE)[0] == 0
    assert figures(p, "e-3", TUE)[0] == 1
    # t-3 opened after t-1's resolution: t-3 is itself a repeat charged to e-2 on MON
    assert figures(p, "e-2", MON)[0] == 1


def test_a_reopened_resolution_still_counts() -> None:
    p = fold(*_first_contact(), f.reopened("t-1", at(MON, "15:00")),
             f.opened("t-2", at(TUE, "09:00"), "e-1", customer_id="c-1"))
    assert figures(p, "e-2", TUE)[0] == 1


def test_a_window_changed_by_a_later_order_live_and_in_replay() -> None:
    # t-1 was resolved on MON 11:00. ord-2 sets 1 day from 2026-11-01 and is issued on
    # 11-06 08:00: live, a contact opened before the issue keeps 7 days, one opened after
    # gets 1; a replay gives both 1.
    later = f.order("2026-11-06T08:00:00+03:00", order_id="ord-2", number=2,
                    effective_from="2026-11-01", repeat_window_days=1)
    before = f.opened("t-3", "2026-11-05T12:00:00+03:00", "e-1", customer_id="c-1")  # +3d1h
    after = f.opened("t-2", "2026-11-06T12:00:00+03:00", "e-1", customer_id="c-1")  # +4d1h
    evs = [*_first_contact(), later, before, after]
    live = fold(*evs)
    assert figures(live, "e-2", "2026-11-05")[0] == 1
    assert figures(live, "e-2", "2026-11-06")[0] == 0
    replay = fold(*evs, live=False)
    assert figures(replay, "e-2", "2026-11-05")[0] == 0
    assert figures(replay, "e-2", "2026-11-06")[0] == 0
    without = fold(*_first_contact(), before, after)
    assert figures(without, "e-2", "2026-11-06")[0] == 1


def test_a_retroactive_window_counts_only_through_a_replay() -> None:
    # ord-2 sets 1 day from 2026-11-01 but is issued on the 20th: live, t-2 keeps 7 days.
    retro = f.order("2026-11-20T08:00:00+03:00", order_id="ord-2", number=2,
                    effective_from="2026-11-01", repeat_window_days=1)
    evs = [*_first_contact(), retro,
           f.opened("t-2", "2026-11-05T12:00:00+03:00", "e-1", customer_id="c-1")]
    assert figures(fold(*evs), "e-2", "2026-11-05")[0] == 1
    assert figures(fold(*evs, live=False), "e-2", "2026-11-05")[0] == 0


# -- cover --------------------------------------------------------------------------------

# plan 10 minutes a day; decisions: tariff_change 6, reactivation 12.5, router_reboot 3
SMALL = f.order(daily_plan_minutes=10)


def _team(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [SMALL, f.registered("e-1", "d-1"), f.registered("e-2", "d-1"),
            f.registered("e-3", "d-1"), *extra]


def _work(ticket: str, day: str, e: str, decisions: list[str]) -> dict[str, Any]:
    return f.opened(ticket, at(day, "10:00"), e, decisions=decisions)


def cover(p: Pipeline, e: str, period: str) -> float:
    return float(emp(p, e, period)["cover_minutes"])


def test_a_pool_smaller_than_the_excesses_is_shared() -> None:
    # e-1: 25 minutes (excess 15), e-2: 18 (excess 8), e-3 absent: pool 10, S 23
    p = fold(*_team(f.absent("e-3", MON),
                    _work("t-1", MON, "e-1", ["reactivation", "reactivation"]),
                    _work("t-2", MON, "e-2", ["tariff_change"] * 3)))
    assert cover(p, "e-1", MON) == 6.52  # 15 * 10 / 23 = 6.5217...
    assert cover(p, "e-2", MON) == 3.48  # 8 * 10 / 23 = 3.4782...
    assert cover(p, "e-3", MON) == 0.0
    dept = p.department("d-1", MON)
    assert dept is not None
    assert dept["totals"]["cover_minutes"] == 10.0  # the exact sum, rounded once
    assert dept["totals"]["cover_pool_minutes"] == 10.0
    # cover changes no other figure
    assert emp(p, "e-1", MON)["attainment_pct"] == 250.0


def test_a_pool_larger_than_the_excesses_pays_them_in_full() -> None:
    p = fold(*_team(f.absent("e-2", MON), f.absent("e-3", MON),
                    _work("t-1", MON, "e-1", ["reactivation"])))
    assert cover(p, "e-1", MON) == 2.5
    dept = p.department("d-1", MON)
    assert dept is not None and dept["totals"]["cover_pool_minutes"] == 20.0


def test_an_absent_member_who_logged_minutes_covers_nothing() -> None:
    p = fold(*_team(f.absent("e-3", MON), _work("t-1", MON, "e-3", ["reactivation"] * 4),
                    _work("t-2", MON, "e-1", ["reactivation"])))
    assert cover(p, "e-3", MON) == 0.0
    assert cover(p, "e-1", MON) == 2.5


def test_a_non_working_day_has_no_pool() -> None:
    sat = "2026-11-07"
    p = fold(*_team(f.absent("e-3", sat), _work("t-1", sat, "e-1", ["reactivation"])))
    assert cover(p, "e-1", sat) == 0.0
    dept = p.department("d-1", sat)
    assert dept is not None and dept["totals"]["cover_pool_minutes"] == 0.0


def test_a_month_is_the_exact_sum_of_its_days_rounded_once() -> None:
    # each day: e-1..e-3 log 18 minutes (excess 8 each, S 24), e-4 is absent (pool 10):
    # 8 * 10 / 24 = 10/3 each, 3.33 a day; the month is 20/3 = 6.67, not 3.33 + 3.33
    evs: list[dict[str, Any]] = [f.registered("e-4", "d-1")]
    for day in (MON, TUE):
        evs.append(f.absent("e-4", day))
        for e in ("e-1", "e-2", "e-3"):
            evs.append(_work(f"t-{e}-{day}", day, e, ["tariff_change"] * 3))
    p = fold(*_team(*evs))
    assert cover(p, "e-1", MON) == 3.33
    assert cover(p, "e-1", "2026-11") == 6.67
    dept = p.department("d-1", "2026-11")
    assert dept is not None
    assert dept["totals"]["cover_minutes"] == 20.0
    assert dept["totals"]["cover_pool_minutes"] == 20.0


def test_a_late_absence_revises_everyone_it_touches() -> None:
    evs = _team(_work("t-1", MON, "e-1", ["reactivation"]),
                _work("t-2", MON, "e-2", ["reactivation", "reactivation"]))
    p = fold(*evs)
    assert (cover(p, "e-1", MON), cover(p, "e-2", MON)) == (0.0, 0.0)
    p.apply(f.model(f.absent("e-3", MON, at=at(WED, "09:00"))))
    # pool 10, excesses 2.5 and 15: S 17.5 -> 2.5 * 10/17.5 = 1.428..., 15 * 10/17.5 = 8.571...
    assert (cover(p, "e-1", MON), cover(p, "e-2", MON)) == (1.43, 8.57)


def test_a_late_ticket_revises_the_others_cover() -> None:
    p = fold(*_team(f.absent("e-3", MON), _work("t-1", MON, "e-1", ["reactivation"] * 2)))
    assert cover(p, "e-1", MON) == 10.0  # excess 15, pool 10
    p.apply(f.model(_work("t-2", MON, "e-2", ["reactivation"] * 2)))
    assert (cover(p, "e-1", MON), cover(p, "e-2", MON)) == (5.0, 5.0)


def test_a_member_who_registers_elsewhere_leaves_the_departments_days() -> None:
    p = fold(*_team(f.absent("e-3", MON), _work("t-1", MON, "e-1", ["reactivation"] * 2),
                    _work("t-2", MON, "e-2", ["reactivation"] * 2)))
    assert cover(p, "e-1", MON) == 5.0
    p.apply(f.model(f.registered("e-2", "d-2", at=at(WED, "09:00"))))
    assert (cover(p, "e-1", MON), cover(p, "e-2", MON)) == (10.0, 0.0)
    # and back: shared again
    p.apply(f.model(f.registered("e-2", "d-1", at=at(WED, "10:00"))))
    assert (cover(p, "e-1", MON), cover(p, "e-2", MON)) == (5.0, 5.0)


def test_an_unregistered_employee_has_no_cover_and_feeds_no_pool() -> None:
    p = fold(SMALL, f.registered("e-1", "d-1"), f.absent("e-9", MON),
             _work("t-1", MON, "e-1", ["reactivation"]), _work("t-9", MON, "e-9", ["reactivation"]))
    assert cover(p, "e-1", MON) == 0.0
    assert cover(p, "e-9", MON) == 0.0


def test_a_late_earlier_opening_moves_a_contact_to_its_customer() -> None:
    # t-2 first seen opened for c-2 (no repeat); a late `opened` of the same ticket at an
    # earlier instant names c-1: the first opening defines the ticket, so t-2 becomes c-1's
    # contact (a repeat of t-1), and c-2 is told it is none of its contacts any more.
    evs = [*_first_contact(), f.opened("t-2", at(TUE, "09:00"), "e-1", customer_id="c-2"),
           f.opened("t-3", at(TUE, "10:00"), "e-1", customer_id="c-2")]
    p = fold(*evs)
    assert figures(p, "e-2", TUE)[0] == 0
    p.apply(f.model(f.resolved("t-2", at(TUE, "09:30"), "e-3")))
    assert figures(p, "e-3", TUE)[0] == 1  # t-3 repeats t-2 within c-2
    p.apply(f.model(f.opened("t-2", at(TUE, "08:00"), "e-1", customer_id="c-1")))
    assert figures(p, "e-2", TUE)[0] == 1  # t-2 repeats t-1 within c-1
    assert figures(p, "e-3", TUE)[0] == 0  # t-3 alone in c-2 now
    assert p.customers.contacts("c-2")[0].ticket_id == "t-3"
