"""`repeat_window_days` of `norm_order.issued`: decoding, dead-letter reasons, and the window
in force on a local date, live and in a replay."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import pytest

from processors.calendar import NormOrder, OrderCatalogue
from schemas.decode import Rejection, decode
from schemas.events import NormOrderIssued
from tests import factory as f


def decoded(**over: Any) -> NormOrderIssued | Rejection:
    ev = f.order(**over)
    out = decode("norm-orders", ev["order_id"].encode(), json.dumps(ev).encode())
    assert isinstance(out, NormOrderIssued | Rejection)
    return out


def test_absent_or_null_means_seven() -> None:
    absent = decoded()
    assert isinstance(absent, NormOrderIssued) and absent.repeat_window_days is None
    null = decoded(repeat_window_days=None)
    assert isinstance(null, NormOrderIssued)
    assert NormOrder.from_event(null).repeat_window == 7


@pytest.mark.parametrize("days", [1, 3, 7, 400, 10**30])
def test_integers_of_one_or_more_are_accepted(days: int) -> None:
    ev = decoded(repeat_window_days=days)
    assert isinstance(ev, NormOrderIssued) and ev.repeat_window_days == days
    assert NormOrder.from_event(ev).repeat_window == days


@pytest.mark.parametrize("value", [7.5, 7.0, 1e3, "7", True, False, [7], {"days": 7}])
def test_a_non_integer_is_wrong_type(value: Any) -> None:
    r = decoded(repeat_window_days=value)
    assert isinstance(r, Rejection) and r.reason == "wrong_type", r
    assert "repeat_window_days" in r.detail


@pytest.mark.parametrize("value", [0, -1, -(10**30)])
def test_an_integer_below_one_is_invalid_value(value: int) -> None:
    r = decoded(repeat_window_days=value)
    assert isinstance(r, Rejection) and r.reason == "invalid_value", r
    assert "repeat_window_days" in r.detail


def test_wrong_type_ranks_before_invalid_value_elsewhere() -> None:
    r = decoded(repeat_window_days="7", daily_plan_minutes=-1)
    assert isinstance(r, Rejection) and r.reason == "wrong_type"


def _order(ev: dict[str, Any]) -> NormOrder:
    m = f.model(ev)
    assert isinstance(m, NormOrderIssued)
    return NormOrder.from_event(m)


def test_an_order_without_the_field_keeps_its_fingerprint() -> None:
    # the fingerprint leaves out an unset window, so an order without one has the
    # fingerprint it had before the field was known (and stores need no reconcile)
    plain = _order(f.order())
    seven = _order(f.order(repeat_window_days=7))
    assert plain.repeat_window == seven.repeat_window == 7
    assert plain.digest() != seven.digest()
    assert plain.digest() == _order(f.order(repeat_window_days=None)).digest()


def _cat(*events: dict[str, Any]) -> OrderCatalogue:
    cat = OrderCatalogue()
    for ev in events:
        cat.add(_order(ev))
    return cat


def test_no_order_in_force_is_seven() -> None:
    cat = _cat(f.order(effective_from="2026-11-01", repeat_window_days=3))
    assert cat.repeat_window_days(date(2026, 10, 31), None) == 7
    assert cat.repeat_window_days(date(2026, 11, 1), None) == 3


def test_a_window_changed_by_a_later_order_live_and_in_replay() -> None:
    # ord-1 (window 7 by default) in force from October; ord-2 sets 14 days from
    # 2026-11-01 but is issued only on 2026-11-10 at noon.
    cat = _cat(f.order(),
               f.order("2026-11-10T12:00:00+03:00", order_id="ord-2", number=2,
                       effective_from="2026-11-01", repeat_window_days=14))
    before = datetime.fromisoformat("2026-11-05T10:00:00+03:00")
    just_before = datetime.fromisoformat("2026-11-10T11:59:59.999999+03:00")
    at_issue = datetime.fromisoformat("2026-11-10T12:00:00+03:00")
    # live: a contact opened before the issue keeps 7, even on a date ord-2 covers
    assert cat.repeat_window_days(before.date(), before) == 7
    assert cat.repeat_window_days(just_before.date(), just_before) == 7
    # live: from the issue's instant on (issued at or before the opening), 14
    assert cat.repeat_window_days(at_issue.date(), at_issue) == 14
    # replay: every order counts as issued at the start
    assert cat.repeat_window_days(before.date(), None) == 14
    # before ord-2's effective date, ord-1 is in force either way
    assert cat.repeat_window_days(date(2026, 10, 31), None) == 7


def test_ties_on_effective_from_go_to_the_greater_number() -> None:
    cat = _cat(f.order(order_id="a", number=5, repeat_window_days=2),
               f.order(order_id="b", number=6, repeat_window_days=30))
    assert cat.repeat_window_days(date(2026, 11, 2), None) == 30
