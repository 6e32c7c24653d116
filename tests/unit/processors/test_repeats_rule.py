"""Rule 14 (repeat contacts) as a pure function, with hand-computed boundaries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.repeats import (
    Contact,
    ResolutionMark,
    repeat_charges,
    repeat_of,
    repeats_by_employee_day,
    window_of,
)

MSK = timezone(timedelta(hours=3))
T0 = datetime(2026, 11, 10, 10, 0, tzinfo=MSK)


def res(at: datetime, emp: str, eid: str = "00000000-0000-0000-0000-000000000001"
        ) -> ResolutionMark:
    return ResolutionMark(at, eid, emp)


def contact(tid: str, at: datetime, *resolutions: ResolutionMark, w: int = 7) -> Contact:
    return Contact(tid, at, at.date(), w, tuple(resolutions))


def test_resolution_exactly_w_before_is_a_repeat_one_microsecond_more_is_not() -> None:
    c = contact("t-new", T0)
    exactly = contact("t-old", T0 - timedelta(days=7), res(T0 - timedelta(days=7), "e-1"))
    charge = repeat_of(c, [c, exactly])
    assert charge is not None
    assert (charge.employee_id, charge.day, charge.previous) == ("e-1", date(2026, 11, 10),
                                                                 "t-old")
    beyond = contact("t-old", T0 - timedelta(days=8),
                     res(T0 - timedelta(days=7, microseconds=1), "e-1"))
    assert repeat_of(c, [c, beyond]) is None


def test_resolution_at_the_opening_instant_counts_one_after_does_not() -> None:
    c = contact("t-new", T0)
    assert repeat_of(c, [contact("t-old", T0 - timedelta(hours=1), res(T0, "e-2"))]) is not None
    late = contact("t-old", T0 - timedelta(hours=1), res(T0 + timedelta(microseconds=1), "e-2"))
    assert repeat_of(c, [late]) is None


def test_offsets_do_not_matter_only_instants() -> None:
    c = contact("t-new", T0)
    utc_r = (T0 - timedelta(days=7)).astimezone(UTC)
    assert repeat_of(c, [contact("t-old", utc_r, res(utc_r, "e-1"))]) is not None


def test_own_resolutions_never_make_a_repeat() -> None:
    c = contact("t-1", T0, res(T0 - timedelta(hours=1), "e-1"))
    assert repeat_of(c, [c]) is None


def test_latest_resolution_wins_and_a_reopened_one_still_counts() -> None:
    # P was resolved by e-1, reopened, resolved again by e-2: both resolutions count, the
    # latest is charged.
    c = contact("t-new", T0)
    p = contact("t-p", T0 - timedelta(days=3), res(T0 - timedelta(days=2), "e-1", "a"),
                res(T0 - timedelta(days=1), "e-2", "b"))
    q = contact("t-q", T0 - timedelta(days=5), res(T0 - timedelta(days=4), "e-3"))
    charge = repeat_of(c, [p, q, c])
    assert charge is not None and (charge.employee_id, charge.previous) == ("e-2", "t-p")


def test_ties_go_to_the_greater_ticket_id_then_the_later_event() -> None:
    r = T0 - timedelta(days=1)
    c = contact("t-new", T0)
    a = contact("t-a", r, res(r, "e-a"))
    b = contact("t-b", r, res(r, "e-b"))
    charge = repeat_of(c, [b, a])
    assert charge is not None and charge.employee_id == "e-b"
    # "t-10" < "t-9" as strings
    ten, nine = contact("t-10", r, res(r, "e-10")), contact("t-9", r, res(r, "e-9"))
    charge = repeat_of(c, [ten, nine])
    assert charge is not None and charge.employee_id == "e-9"
    # one ticket, two resolutions at one instant: the later event (event_id order) wins
    both = contact("t-a", r, res(r, "e-first", "00000000-0000-0000-0000-00000000000a"),
                   res(r, "e-second", "00000000-0000-0000-0000-00000000000b"))
    charge = repeat_of(c, [both])
    assert charge is not None and charge.employee_id == "e-second"


def test_each_contact_is_charged_once_on_its_opened_date() -> None:
    # t-1 resolved by e-1; t-2 and t-3 open within the window: each is one repeat for e-1,
    # on its own opened date (t-3 also sees t-2's resolution, later, by e-2).
    t1 = contact("t-1", T0, res(T0 + timedelta(hours=1), "e-1"))
    t2 = contact("t-2", T0 + timedelta(days=1), res(T0 + timedelta(days=3), "e-2"))
    t3 = contact("t-3", T0 + timedelta(days=2))
    got = repeat_charges([t1, t2, t3])
    assert {k: (v.employee_id, v.day) for k, v in got.items()} == {
        "t-2": ("e-1", date(2026, 11, 11)), "t-3": ("e-1", date(2026, 11, 12))}
    assert repeats_by_employee_day([t1, t2, t3]) == {("e-1", date(2026, 11, 11)): 1,
                                                     ("e-1", date(2026, 11, 12)): 1}


def test_a_contact_absorbed_later_leaves_the_customers_contacts() -> None:
    # Charged while t-p was a contact; a merge absorbing t-p later removes it from the
    # contacts handed to the rule, and the repeat disappears (the projection re-runs it).
    p = contact("t-p", T0 - timedelta(days=2), res(T0 - timedelta(days=1), "e-1"))
    c = contact("t-c", T0)
    assert repeats_by_employee_day([p, c]) == {("e-1", date(2026, 11, 10)): 1}
    assert repeats_by_employee_day([c]) == {}
    # C absorbed instead: no repeat either
    assert repeats_by_employee_day([p]) == {}


def test_window_is_the_contacts_own() -> None:
    p = contact("t-p", T0 - timedelta(days=10), res(T0 - timedelta(days=10), "e-1"))
    assert repeat_of(contact("t-c", T0, w=7), [p]) is None
    assert repeat_of(contact("t-c", T0, w=10), [p]) is not None
    # a window beyond the calendar's range is the whole calendar
    assert repeat_of(contact("t-c", T0, w=10**12), [p]) is not None


def test_window_defaults_to_seven() -> None:
    assert window_of(None) == 7
    assert window_of(1) == 1


def test_contact_round_trips() -> None:
    c = contact("t-1", T0, res(T0, "e|1", "x"), w=3)
    assert Contact.from_dict("t-1", c.to_dict()) == c


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.lists(st.tuples(st.integers(0, 40),
                                                                 st.sampled_from("ab")),
                                                       max_size=3),
                          st.integers(1, 5)), max_size=6))
def test_the_indexed_search_equals_the_definition(
        spec: list[tuple[int, list[tuple[int, str]], int]]) -> None:
    """repeat_charges (sorted, bisected) gives what repeat_of (the rule as written) gives."""
    hours = timedelta(hours=12)
    contacts = [Contact(f"t-{i}", T0 + o * hours, (T0 + o * hours).date(), w,
                        tuple(ResolutionMark(T0 + r * hours, eid, f"e-{i}{eid}")
                              for r, eid in rs))
                for i, (o, rs, w) in enumerate(spec)]
    expected = {c.ticket_id: x for c in contacts if (x := repeat_of(c, contacts)) is not None}
    assert repeat_charges(contacts) == expected
