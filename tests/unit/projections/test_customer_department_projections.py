"""The customer and department projections on both stores: versioned replacements in and
out, so a redelivered or stale fact changes nothing, and the employee side applies each
replacement once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import orjson
import pytest

from processors.calendar import NormOrder, OrderCatalogue
from processors.counters import Counters
from projections.customers import CustomerProjector
from projections.departments import DepartmentProjector, summary_fact
from projections.employees import (
    CUSTOMER_ENTRY,
    DEPARTMENT_ENTRY,
    EmployeeProjector,
    parse_period,
)
from projections.roster import Roster
from projections.store import MemoryKV, RocksKV, counted_version, next_version
from projections.tickets import TicketProjector, TicketState, contact_fact
from schemas.events import NormOrderIssued
from tests import factory as f


@pytest.fixture(params=["memory", "rocks"])
def kv_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    made: list[RocksKV] = []

    def make(name: str) -> Any:
        if request.param == "memory":
            return MemoryKV()
        kv = RocksKV(tmp_path / name)
        made.append(kv)
        return kv

    yield make
    for kv in made:
        kv.close()


def _record(opened: str, resolutions: list[tuple[str, str, str]], w: int = 7) -> dict[str, Any]:
    return {"at": opened, "d": opened[:10], "w": w,
            "r": [[r, eid, emp] for r, eid, emp in resolutions]}


def _items(out: list[tuple[str, bytes]]) -> list[tuple[str, Any]]:
    return [(e, orjson.loads(b)["i"]) for e, b in out]


def test_customer_stale_and_redelivered_contacts_change_nothing(kv_factory: Any) -> None:
    cp = CustomerProjector(kv_factory("customers"))
    p = contact_fact("t-1", 3, _record("2026-11-02T10:00:00+03:00",
                                       [("2026-11-02T11:00:00+03:00", "a", "e-2")]))
    c = contact_fact("t-2", 1, _record("2026-11-03T10:00:00+03:00", []))
    assert cp.apply_contact("c-1", p) == []
    out = cp.apply_contact("c-1", c)
    assert _items(out) == [("e-2", [["2026-11-03", Counters(repeat_contacts=1).to_list(), 0]])]
    cp.end_batch()
    # redelivery: everything published, again, with the same version
    again = cp.apply_contact("c-1", c)
    assert again == out
    # an older replacement of t-1 (not resolved yet) arriving late is stale
    old_p = contact_fact("t-1", 2, _record("2026-11-02T10:00:00+03:00", []))
    assert cp.apply_contact("c-1", old_p) == out
    cp.end_batch()
    # a newer one retracting t-1 (absorbed by a merge): the repeat is withdrawn
    gone = cp.apply_contact("c-1", contact_fact("t-1", 4, None))
    assert _items(gone) == [("e-2", [["2026-11-03", None, 0]])]
    cp.end_batch()
    assert orjson.loads(cp.republish("c-1")[0][1])["i"] == [["2026-11-03", None, 0]]


def _cat(**over: Any) -> OrderCatalogue:
    cat = OrderCatalogue()
    ev = f.model(f.order(**over))
    assert isinstance(ev, NormOrderIssued)
    cat.add(NormOrder.from_event(ev))
    return cat


def test_department_stale_and_redelivered_summaries_change_nothing(kv_factory: Any) -> None:
    dp = DepartmentProjector(kv_factory("departments"), _cat(daily_plan_minutes=10), live=True)
    day = "2026-11-02"
    absent = summary_fact("e-3", day, 1, Decimal(0), True, True)
    worked = summary_fact("e-1", day, 2, Decimal("25"), False, True)
    assert dp.apply_summary("d-1", absent) == []
    out = dp.apply_summary("d-1", worked)
    assert _items(out) == [("e-1", [[day, Counters(cover_minutes=Fraction(10)).to_list(), 0]])]
    dp.end_batch()
    assert dp.apply_summary("d-1", worked) == out  # redelivered: said again, same version
    stale = summary_fact("e-1", day, 1, Decimal("99"), False, True)
    assert dp.apply_summary("d-1", stale) == out
    # e-1 leaves the department: cover retracted
    left = dp.apply_summary("d-1", summary_fact("e-1", day, 3, Decimal("25"), False, False))
    assert _items(left) == [("e-1", [[day, None, 0]])]


def test_the_employee_side_applies_each_replacement_once(kv_factory: Any) -> None:
    cat = _cat(daily_plan_minutes=10)
    roster = Roster()
    roster.apply(f.model(f.registered("e-1", "d-1")))
    ep = EmployeeProjector(kv_factory("employees"), cat, roster, live=True, extended=True)
    day = parse_period("2026-11-02")

    def fact(version: int, c: Counters) -> bytes:
        return orjson.dumps({"t": "d-1", "v": version, "i": [["2026-11-02", c.to_list(), 0]]})

    cover = fact(2, Counters(cover_minutes=Fraction(7, 3)))
    older = fact(1, Counters(cover_minutes=Fraction(9)))
    repeat = fact(1, Counters(repeat_contacts=2))
    for raw, kind in ((cover, DEPARTMENT_ENTRY), (older, DEPARTMENT_ENTRY),
                      (cover, DEPARTMENT_ENTRY), (repeat, CUSTOMER_ENTRY),
                      (repeat, CUSTOMER_ENTRY)):
        ep.apply_fact("e-1", raw, kind)
        ep.end_batch()
    obj = ep.employee("e-1", day, 1)
    # a customer and a department with the same id are two sources; neither is a ticket
    assert (obj["cover_minutes"], obj["repeat_contacts"], obj["tickets_handled"]) == (
        2.33, 2, 0)
    # the day's sources are listed for a new department's summaries
    assert ep.days_of("e-1") == ["2026-11-02"]
    assert date(2026, 11, 2) not in roster.absences("e-1")


def test_a_ticket_stored_before_contacts_tells_its_customer_on_its_next_event() -> None:
    """Ticket state written before contact records has none: its next event of any kind
    sends the record (the customer side has never heard of it)."""
    kv = MemoryKV()
    cat = _cat()
    tp = TicketProjector(kv, cat, live=True)
    tp.apply_event(f.model(f.opened("t-1", "2026-11-02T10:00:00+03:00", customer_id="c-7")))
    tp.end_batch()
    raw = orjson.loads(kv.get("t-1") or b"")
    del raw["k"]
    kv.put("t-1", orjson.dumps(raw))
    tp.forget()
    assert TicketState.from_bytes(kv.get("t-1") or b"").contact is None
    out = tp.apply_event(f.model(f.status("t-1", "2026-11-02T10:05:00+03:00", "in_progress")))
    assert [(c, orjson.loads(b)["c"]["d"]) for c, b in out.contacts] == [("c-7", "2026-11-02")]
    # and then nothing more until the record changes
    out = tp.apply_event(f.model(f.status("t-1", "2026-11-02T10:06:00+03:00", "open")))
    assert out.contacts == []


def test_a_redelivered_input_says_the_days_summary_again(kv_factory: Any) -> None:
    """After a crash the store may say a summary was sent that never left the process; the
    input that caused it comes again and the last summary is said again, same version."""
    cat = _cat(daily_plan_minutes=10)
    roster = Roster()
    roster.apply(f.model(f.registered("e-1", "d-1")))
    ep = EmployeeProjector(kv_factory("employees"), cat, roster, live=True, extended=True)
    day = "2026-11-02"
    minutes = Counters(kpi_minutes=Decimal(25))
    ticket = orjson.dumps({"t": "t-1", "v": 3, "i": [[day, minutes.to_list(), 1]]})
    assert ep.apply_fact("e-1", ticket) == [date(2026, 11, 2)]
    first = ep.summaries("e-1", [day])
    assert [d for d, _ in first] == ["d-1"]
    ep.end_batch()
    # the same ticket fact again: nothing changes, the summary is said again
    assert ep.apply_fact("e-1", ticket) == []
    assert ep.again() == {("e-1", day)}
    assert ep.summaries("e-1", [day]) == first
    ep.end_batch()
    assert ep.again() == set()
    # a new version saying the same is not a redelivery; nor is a cover said again
    newer = orjson.dumps({"t": "t-1", "v": 4, "i": [[day, minutes.to_list(), 1]]})
    cover = orjson.dumps({"t": "d-1", "v": 1, "i": [[day, Counters(
        cover_minutes=Fraction(5)).to_list(), 0]]})
    for raw, kind in ((newer, "t"), (cover, DEPARTMENT_ENTRY), (cover, DEPARTMENT_ENTRY)):
        ep.apply_fact("e-1", raw, kind)
    assert ep.again() == set() and ep.summaries("e-1", [day]) == []
    assert ep.summaries("e-1", [day], again=True) == first  # after a registration
    ep.end_batch()
    # an absence comes with no id: it is said again each time it arrives
    roster.apply(f.model(f.absent("e-1", day)))
    ep.apply_event(f.model(f.absent("e-1", day)))
    absent = ep.summaries("e-1", [day])
    assert [orjson.loads(b)["a"] for _, b in absent] == [True]
    ep.end_batch()
    ep.apply_event(f.model(f.absent("e-1", day)))
    assert ep.summaries("e-1", [day]) == absent


def test_versions_move_past_what_a_lost_process_sent() -> None:
    """A store taken over from its changelog may count fewer replacements than its
    receivers hold; the next version still goes past every one sent before."""
    sent_before_crash = next_version(next_version(0))
    time.sleep(0.002)  # the restart (seconds, in truth)
    recovered = 0  # the changelog never got the count
    assert next_version(recovered) > sent_before_crash
    assert next_version(10**18) == 10**18 + 1  # within a process: always on from the last
    assert counted_version(4) == 5


def _owed(facts: list[tuple[str, bytes]], held: dict[tuple[str, str], tuple[int, Any]]) -> None:
    """Apply repeat facts as the employee side does: per (employee, day), the highest
    version wins."""
    for emp, raw in facts:
        fact = orjson.loads(raw)
        for day, counters, _ in fact["i"]:
            if (emp, day) not in held or held[(emp, day)][0] <= fact["v"]:
                held[(emp, day)] = (fact["v"], counters)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_customers_contacts_applied_together_owe_what_one_by_one_owe(seed: int) -> None:
    """The rule run once after a batch of a customer's contacts (new tickets, resolutions,
    retractions, stale and redelivered replacements) leaves every employee day with the
    repeat count it has after running the rule for each contact."""
    import random

    rng = random.Random(seed)
    facts: list[bytes] = []
    versions: dict[str, int] = {}
    for _ in range(120):
        t = f"t-{rng.randrange(25)}"
        if rng.random() < 0.15 and t in versions:  # stale or redelivered
            facts.append(contact_fact(t, versions[t] - rng.randrange(2), None))
            continue
        versions[t] = versions.get(t, 0) + 1
        day = 2 + rng.randrange(6)
        opened = f"2026-11-{day:02d}T{9 + rng.randrange(8):02d}:00:00+03:00"
        resolved = [(f"2026-11-{day:02d}T18:00:00+03:00", f"r-{t}", f"e-{rng.randrange(4)}")]
        record = None if rng.random() < 0.1 else _record(
            opened, resolved if rng.random() < 0.7 else [], w=rng.choice([1, 3, 7]))
        facts.append(contact_fact(t, versions[t], record))

    one, together = CustomerProjector(MemoryKV()), CustomerProjector(MemoryKV())
    one.versions = together.versions = counted_version
    held_one: dict[tuple[str, str], tuple[int, Any]] = {}
    held_together: dict[tuple[str, str], tuple[int, Any]] = {}
    for start in range(0, len(facts), 17):
        chunk = facts[start:start + 17]
        for raw in chunk:
            _owed(one.apply_contact("c-1", raw), held_one)
        _owed(together.apply_contacts("c-1", list(chunk)), held_together)
        one.end_batch()
        together.end_batch()
    counts = {k: v[1] for k, v in held_one.items() if v[1] is not None}
    assert counts, "the history owes some repeats"
    assert {k: v[1] for k, v in held_together.items() if v[1] is not None} == counts
    assert together.republish("c-1") and one.kv.get("c-1") and together.kv.get("c-1")
    a, b = orjson.loads(one.kv.get("c-1") or b""), orjson.loads(together.kv.get("c-1") or b"")
    # The same contacts and counts (one by one also keeps tombstones of counts said and
    # withdrawn within a batch, which together never says).
    assert a["c"] == b["c"]
    assert {k: n for k, n in a["p"].items() if n} == {k: n for k, n in b["p"].items() if n}
