"""Repeat contacts: a customer who comes back soon after being told the problem was solved.

A *contact* is a manual ticket never absorbed by a merge. A contact C of a customer, opened
at instant t, is a repeat when another contact P of the same customer has a resolution at
an instant r with t - W <= r <= t (W = the window in days, as real time, of the order in
force on C's opened local date). Of all such resolutions the latest counts (ties: the
greater P ticket_id, then the later event in P's time order); C is charged once, to that
resolution's employee, on C's opened local date.

Everything here is a pure function of one customer's contacts: the projection keyed by
customer re-runs it whenever a contact of the customer changes, and the difference of the
per-(employee, day) counts is what it owes the employees.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

DEFAULT_WINDOW_DAYS = 7
# timedelta stops at 999,999,999 days; any two instants of the calendar are far closer, so
# a larger window is the same window.
_MAX_TIMEDELTA_DAYS = 999_999_999


@dataclass(frozen=True, slots=True)
class ResolutionMark:
    """One `ticket.resolved` of a contact: when, which event, by whom."""

    at: datetime
    event_id: str
    employee_id: str

    def to_list(self) -> list[Any]:
        return [self.at.isoformat(), self.event_id, self.employee_id]

    @classmethod
    def from_list(cls, raw: list[Any]) -> ResolutionMark:
        return cls(datetime.fromisoformat(raw[0]), raw[1], raw[2])


@dataclass(frozen=True, slots=True)
class Contact:
    """What the repeat rule reads of one contact: its opening, its window, its resolutions."""

    ticket_id: str
    opened_at: datetime
    opened_day: date
    window_days: int
    resolutions: tuple[ResolutionMark, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.opened_at.isoformat(), "d": self.opened_day.isoformat(),
                "w": self.window_days, "r": [r.to_list() for r in self.resolutions]}

    @classmethod
    def from_dict(cls, ticket_id: str, raw: Mapping[str, Any]) -> Contact:
        return cls(ticket_id, datetime.fromisoformat(raw["at"]), date.fromisoformat(raw["d"]),
                   int(raw["w"]), tuple(ResolutionMark.from_list(r) for r in raw["r"]))


@dataclass(frozen=True, slots=True)
class RepeatCharge:
    """C's repeat: charged to `employee_id` on `day` (C's opened local date), for the
    resolution `resolution` of contact `previous`."""

    ticket_id: str
    employee_id: str
    day: date
    previous: str
    resolution: ResolutionMark


def window_of(repeat_window_days: int | None) -> int:
    """The window an order gives (absent or null: 7); with no order in force, 7."""
    return DEFAULT_WINDOW_DAYS if repeat_window_days is None else repeat_window_days


def _window(days: int) -> timedelta:
    return timedelta(days=min(days, _MAX_TIMEDELTA_DAYS))


def _rank(previous: str, r: ResolutionMark) -> tuple[datetime, str, str]:
    # Latest instant first; ties: the greater P ticket_id as a string, then the later event
    # in P's time order (one ticket's resolutions at one instant share their type, so that
    # order is the event_id's).
    return (r.at, previous, r.event_id)


def repeat_of(c: Contact, contacts: Iterable[Contact]) -> RepeatCharge | None:
    """C's charge among the customer's contacts (C itself may be among them), or None."""
    w = _window(c.window_days)
    best: tuple[tuple[datetime, str, str], Contact, ResolutionMark] | None = None
    for p in contacts:
        if p.ticket_id == c.ticket_id:
            continue
        for r in p.resolutions:
            # t - W <= r <= t, compared as a distance: t - W may fall before year 1
            if r.at <= c.opened_at and c.opened_at - r.at <= w:
                key = _rank(p.ticket_id, r)
                if best is None or key > best[0]:
                    best = (key, p, r)
    if best is None:
        return None
    _, p, r = best
    return RepeatCharge(c.ticket_id, r.employee_id, c.opened_day, p.ticket_id, r)


def repeat_charges(contacts: Iterable[Contact]) -> dict[str, RepeatCharge]:
    """Every repeat among one customer's contacts, by the repeating contact's ticket_id.

    Equal to `repeat_of` for each contact, in O(n log n): every resolution of the customer
    in rank order once; for a contact, the best one is the first, walking back from its
    opening instant, that is not its own, if it is still inside the window.
    """
    items = list(contacts)
    ranked = sorted(((_rank(p.ticket_id, r), p, r) for p in items for r in p.resolutions),
                    key=lambda x: x[0])
    instants = [x[0][0] for x in ranked]
    out: dict[str, RepeatCharge] = {}
    for c in items:
        w = _window(c.window_days)
        i = bisect_right(instants, c.opened_at)
        while i > 0:
            i -= 1
            _, p, r = ranked[i]
            if c.opened_at - r.at > w:
                break
            if p.ticket_id != c.ticket_id:
                out[c.ticket_id] = RepeatCharge(c.ticket_id, r.employee_id, c.opened_day,
                                                p.ticket_id, r)
                break
    return out


def repeats_by_employee_day(contacts: Iterable[Contact]) -> dict[tuple[str, date], int]:
    """`repeat_contacts` owed per (employee, day) by one customer's contacts."""
    out: dict[tuple[str, date], int] = {}
    for charge in repeat_charges(contacts).values():
        key = (charge.employee_id, charge.day)
        out[key] = out.get(key, 0) + 1
    return out
