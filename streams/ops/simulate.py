"""Synthetic feeds: a reproducible history for files and a live feed for the broker.

Every event is a plain dict exactly as on the wire and valid (docs/events.md).

The mix, per present employee and working day (documented once, used by both feeds):

- 30–60 ``call.completed`` (uniform): 80 % inbound (8 % of them unanswered), 20 %
  outbound (25 % unanswered); talk ≈ lognormal, median ≈ 160 s (20–1500 s), hold 0 in
  70 % of answered calls else 10–180 s, wrap-up 10–90 s; AHT ≈ 4 minutes.
- 4–8 manual tickets (channel: call 45 %, chat 20 %, email 15 %, crm 10 %, portal 10 %;
  priority: P1 3 %, P2 12 %, P3 45 %, P4 40 %) opened with 2–7 decisions from a 12-code
  catalogue (1.5 % of decisions are codes the catalogue does not price), plus 0–3 auto
  tickets created by telephony when a call is picked up; 40 % of those are merged into
  a manual ticket the employee opens for the same call.
- Lifecycles: 55 % of manual tickets are resolved at once (opened → resolved → closed);
  the rest get a first response, ``in_progress``, a ``waiting_customer`` pause and back
  (25 %), added decisions (60 %), an escalation from line 1 to line 2 (10 %, a quarter of
  them returned), then the resolution. About 5 % are reopened and resolved again, 85 %
  are closed, 25 % get a CSAT rating (mostly 4–5). First responses and resolutions miss
  their SLA targets in roughly 5 % of tickets.
- Together that is about 20–40 ticket-lifecycle events (topics ``tickets``,
  ``escalations``, ``reopens``; mean ≈ 32), a quality evaluation on 35 % of days
  (4–8 scores, mostly 4), and ~2 % employee-days absent (``employee.absent``, no activity).
- Departments of 5–15 people (``d-01``…), a quarter of each on line 2 (``e-001``…).

The norm order prices decisions so that attainment lands around 65–110 % and sets
``calls_per_hour_target`` to 5.0, what 30–60 calls in an 8-hour plan give, so the
dashboards and bonus rules show a realistic spread (SLA compliance ≈ 93–98 % against a
95 % goal) instead of all-zero or all-maxed figures.

A history keeps every action inside 09:00–18:00 on working days of the people involved
(Russian fixed-date holidays, no weekend transfers). The live feed stamps everything with
``now()`` and runs a lifecycle about 100× faster than working time, from a pool of open
tickets sized for `rate`; some P1 tickets wait 16–22 minutes for their first response
(the very first ticket always does), so live SLA warnings and breaches show up.
"""

from __future__ import annotations

import heapq
import itertools
import json
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from functools import partial
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
)
from rich.text import Text

from schemas.topics import prefixed, topic_for_type

Event = dict[str, Any]

# (code, minutes, relative frequency): cheap routine work is common, heavy work rare.
DECISION_CATALOGUE: tuple[tuple[str, float, int], ...] = (
    ("router_reboot", 3.0, 14),
    ("password_reset", 2.5, 10),
    ("payment_inquiry", 4.0, 12),
    ("address_change", 5.0, 8),
    ("tariff_change", 6.0, 12),
    ("service_suspension", 9.0, 8),
    ("line_diagnostics", 15.0, 10),
    ("reactivation", 12.5, 8),
    ("refund_request", 18.0, 7),
    ("contract_termination", 20.0, 4),
    ("number_port", 22.0, 4),
    ("equipment_replacement", 25.0, 3),
)
UNPRICED_CODES = ("sim_swap", "roaming_unlock", "legacy_billing_fix")
UNPRICED_SHARE = 0.015

SLA_TARGETS: dict[str, tuple[int, int, bool]] = {
    "P1": (15, 240, False),
    "P2": (60, 480, True),
    "P3": (240, 960, True),
    "P4": (480, 2400, True),
}
BONUS_SCALE = {"85": 15.0, "93": 20.0, "94": 22.5, "95": 25.0, "96": 27.5,
               "97": 30.0, "98": 32.5, "99": 35.0, "100": 37.5}
DAILY_PLAN_MINUTES = 480
CALLS_PER_HOUR_TARGET = 5.0
WORK_START = dtime(9, 0)
WORK_END = dtime(18, 0)
# Russian public holidays on fixed dates (weekend transfers are left out).
FIXED_HOLIDAYS = ((1, 1), (1, 2), (1, 3), (1, 4), (1, 5), (1, 6), (1, 7), (1, 8),
                  (2, 23), (3, 8), (5, 1), (5, 9), (6, 12), (11, 4))

PRIORITY_MIX = (("P1", 3), ("P2", 12), ("P3", 45), ("P4", 40))
CHANNEL_MIX = (("call", 45), ("chat", 20), ("email", 15), ("crm", 10), ("portal", 10))
CSAT_MIX = ((5, 55), (4, 25), (3, 10), (2, 5), (1, 5))
ESCALATION_REASONS = ("network fault needs line 2", "billing dispute", "equipment diagnostics",
                      "access rights required")
RETURN_REASONS = ("insufficient diagnostics", "not a line-2 issue", "missing customer data")
REOPEN_REASONS = ("customer reports the issue persists", "solution did not work",
                  "customer disputes the resolution")

MALE_FIRST = ("Aleksandr", "Dmitry", "Sergey", "Andrey", "Alexey", "Ivan", "Maxim", "Pavel",
              "Nikolai", "Mikhail", "Artem", "Roman", "Kirill", "Oleg", "Viktor", "Egor")
FEMALE_FIRST = ("Anna", "Elena", "Olga", "Natalia", "Maria", "Tatiana", "Irina", "Svetlana",
                "Ekaterina", "Yulia", "Daria", "Anastasia", "Ksenia", "Marina", "Polina", "Vera")
SURNAMES = ("Ivanov", "Smirnov", "Kuznetsov", "Popov", "Vasiliev", "Petrov", "Sokolov",
            "Mikhailov", "Novikov", "Fedorov", "Morozov", "Volkov", "Alekseev", "Lebedev",
            "Semenov", "Egorov", "Pavlov", "Kozlov", "Stepanov", "Nikolaev", "Orlov", "Andreev",
            "Makarov", "Zakharov", "Zaitsev", "Soloviev", "Borisov", "Yakovlev", "Grigoriev")

DEFAULT_TZ = "Europe/Moscow"
WEEKDAYS = (1, 2, 3, 4, 5)
EVERY_DAY = (1, 2, 3, 4, 5, 6, 7)
# Zones the demo may place its centre in, one per offset from UTC-10 to UTC+14, so some
# zone has office hours at any UTC time; the default zone comes first.
DEMO_ZONES = ("Europe/Moscow", "Asia/Dubai", "Asia/Tashkent", "Asia/Dhaka", "Asia/Bangkok",
              "Asia/Shanghai", "Asia/Tokyo", "Australia/Brisbane", "Pacific/Noumea",
              "Pacific/Fiji", "Pacific/Tongatapu", "Pacific/Kiritimati", "Pacific/Honolulu",
              "America/Anchorage", "America/Los_Angeles", "America/Denver", "America/Chicago",
              "America/New_York", "America/Halifax", "America/Sao_Paulo",
              "Atlantic/South_Georgia", "Atlantic/Cape_Verde", "Atlantic/Reykjavik",
              "Africa/Lagos", "Africa/Cairo")
# A seat's working day in the simulated history: ~70 events (calls, ticket steps, QA).
EVENTS_PER_SEAT_HOUR = 70 / 9


@dataclass(frozen=True)
class _Emp:
    id: str
    dept: str
    line: int
    name: str
    skill: float  # scales decisions a ticket gets: the spread of attainment between people
    quality: float  # scales the odds of low quality scores


@dataclass
class _Call:
    """A call's shape; a history fixes `start` in the schedule, the live feed at emission."""

    call_id: str
    emp: _Emp
    direction: str
    customer: str
    ring: int
    talk: int
    hold: int
    wrap: int
    answered: bool
    start: datetime | None = None
    ticket_id: str | None = None

    @property
    def total(self) -> int:
        return self.ring + self.talk + self.hold + self.wrap

    @property
    def answered_at(self) -> datetime:
        assert self.start is not None
        return self.start + timedelta(seconds=self.ring)

    @property
    def ended_at(self) -> datetime:
        assert self.start is not None
        return self.start + timedelta(seconds=self.ring + self.talk + self.hold)

    @property
    def done_at(self) -> datetime:
        assert self.start is not None
        return self.start + timedelta(seconds=self.total)


@dataclass
class _Step:
    """One event of a script: `delay` seconds of `actor`'s working time after the last one."""

    delay: int
    actor: _Emp | None
    build: Callable[[datetime], Event]


class _Calendar:
    """Working hours and holidays of the simulated centre, and working-time arithmetic."""

    def __init__(self, tz: ZoneInfo, years: Iterable[int],
                 workdays: tuple[int, ...] = WEEKDAYS) -> None:
        self.tz = tz
        self.workdays = workdays
        self.holidays = sorted(date(y, m, d) for y in years for m, d in FIXED_HOLIDAYS)
        self._holiday_set = set(self.holidays)
        self.absent: set[tuple[str, date]] = set()

    def working(self, d: date) -> bool:
        return d.isoweekday() in self.workdays and d not in self._holiday_set

    def present(self, d: date, who: _Emp | None) -> bool:
        return self.working(d) and (who is None or (who.id, d) not in self.absent)

    def at(self, d: date, t: dtime) -> datetime:
        return datetime.combine(d, t, tzinfo=self.tz)

    def next_start(self, d: date, who: _Emp | None) -> datetime:
        """The start of the first day from `d` on when `who` works."""
        for _ in range(3660):
            if self.present(d, who):
                return self.at(d, WORK_START)
            d += timedelta(days=1)
        raise ValueError("no working day within ten years")

    def prev_working(self, d: date) -> date:
        d -= timedelta(days=1)
        while not self.working(d):
            d -= timedelta(days=1)
        return d

    def advance(self, t: datetime, seconds: int, who: _Emp | None) -> datetime:
        """`t` plus `seconds` of `who`'s working time, so every action falls in office hours."""
        d = t.date()
        if not self.present(d, who) or t >= self.at(d, WORK_END):
            t = self.next_start(d + timedelta(days=1), who)
        elif t < self.at(d, WORK_START):
            t = self.at(d, WORK_START)
        remaining = seconds
        while True:
            avail = (self.at(t.date(), WORK_END) - t).total_seconds()
            if remaining < avail:
                return t + timedelta(seconds=remaining)
            remaining -= int(avail)
            t = self.next_start(t.date() + timedelta(days=1), who)


def _iso(t: datetime) -> str:
    """RFC 3339 with the offset; whole seconds in a history, milliseconds when live."""
    return t.isoformat(timespec="milliseconds" if t.microsecond else "seconds")


def _pick(rng: random.Random, mix: tuple[tuple[Any, int], ...]) -> Any:
    return rng.choices([v for v, _ in mix], weights=[w for _, w in mix])[0]


def dumps(event: Event) -> bytes:
    """The one serialisation of an event, so files and broker records are byte-identical."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


class _Feed:
    """State shared by the history and the live feed: people, ids, the order, the mix."""

    def __init__(self, *, employees: int, rng: random.Random, tz: str, years: Iterable[int],
                 workdays: tuple[int, ...] = WEEKDAYS) -> None:
        if employees < 1:
            raise ValueError("employees must be at least 1")
        self.rng = rng
        self.tz = ZoneInfo(tz)
        self.tz_name = tz
        self.cal = _Calendar(self.tz, years, workdays)
        self.tag = f"{rng.getrandbits(24):06x}"
        self._ids = itertools.count(1)
        self.customers = 1000 + 150 * employees
        self.emps = self._people(employees)
        self.line2: dict[str, list[_Emp]] = {}
        for e in self.emps:
            if e.line == 2:
                self.line2.setdefault(e.dept, []).append(e)
        self.all_line2 = [e for e in self.emps if e.line == 2]

    # -- people and ids -------------------------------------------------------------------

    def _people(self, n: int) -> list[_Emp]:
        rng = self.rng
        sizes: list[int] = []
        while sum(sizes) < n:
            sizes.append(min(rng.randint(5, 15), n - sum(sizes)))
        if len(sizes) > 1 and sizes[-1] < 5 and sizes[-2] + sizes[-1] <= 15:
            tail = sizes.pop()
            sizes[-1] += tail
        out: list[_Emp] = []
        for d, size in enumerate(sizes, start=1):
            n_line2 = max(1, round(size * 0.25)) if size >= 3 else 0
            for i in range(size):
                female = rng.random() < 0.6
                first = rng.choice(FEMALE_FIRST if female else MALE_FIRST)
                last = rng.choice(SURNAMES) + ("a" if female else "")
                out.append(_Emp(id=f"e-{len(out) + 1:03d}", dept=f"d-{d:02d}",
                                line=2 if i < n_line2 else 1, name=f"{first} {last}",
                                skill=rng.uniform(0.85, 1.35), quality=rng.uniform(0.3, 2.0)))
        return out

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def next_id(self, kind: str) -> str:
        return f"{kind}-{self.tag}-{next(self._ids)}"

    def customer(self) -> str:
        return f"c-{self.rng.randint(1, self.customers)}"

    def event(self, type_: str, at: datetime, **fields: Any) -> Event:
        return {"event_id": self.uuid(), "type": type_, "schema_version": 1,
                "occurred_at": _iso(at), **fields}

    def later(self, type_: str, **fields: Any) -> Callable[[datetime], Event]:
        """A builder: the event is made (and gets its id) only when its time is known."""
        return lambda at: self.event(type_, at, **fields)

    # -- the catalogue ----------------------------------------------------------------------

    def order(self, effective_from: date, issued: datetime) -> Event:
        """The whole norm catalogue in force for the simulated period."""
        years = sorted({h.year for h in self.cal.holidays})
        return self.event(
            "norm_order.issued", issued,
            order_id=f"ord-{effective_from:%Y-%m}", number=effective_from.month,
            effective_from=effective_from.isoformat(),
            decision_weights={code: w for code, w, _ in DECISION_CATALOGUE},
            daily_plan_minutes=DAILY_PLAN_MINUTES, sla_goal_pct=95.0,
            sla_targets={p: {"first_response_minutes": fr, "resolution_minutes": res,
                             "business_hours": bh} for p, (fr, res, bh) in SLA_TARGETS.items()},
            calls_per_hour_target=CALLS_PER_HOUR_TARGET,
            calendar={"timezone": self.tz_name, "workdays": list(self.cal.workdays),
                      "work_start": WORK_START.strftime("%H:%M"),
                      "work_end": WORK_END.strftime("%H:%M"),
                      "holidays": [h.isoformat() for h in self.cal.holidays
                                   if h.year in years],
                      "extra_workdays": []},
            bonus_scale=dict(BONUS_SCALE),
        )

    def registration(self, e: _Emp, at: datetime) -> Event:
        return self.event("employee.registered", at, employee_id=e.id, department_id=e.dept,
                          line=e.line, name=e.name)

    def decisions(self, lo: int, hi: int, skill: float = 1.0) -> list[str]:
        rng = self.rng
        n = max(0, round(rng.randint(lo, hi) * skill))
        codes = rng.choices([c for c, _, _ in DECISION_CATALOGUE],
                            weights=[f for _, _, f in DECISION_CATALOGUE], k=n)
        return [rng.choice(UNPRICED_CODES) if rng.random() < UNPRICED_SHARE else c
                for c in codes]

    # -- calls ------------------------------------------------------------------------------

    def new_call(self, e: _Emp, *, answered_inbound: bool = False) -> _Call:
        """One call's shape: direction, answered or not, and realistic durations."""
        rng = self.rng
        inbound = answered_inbound or rng.random() < 0.8
        answered = answered_inbound or rng.random() >= (0.08 if inbound else 0.25)
        if answered:
            talk = int(min(1500, max(20, rng.lognormvariate(5.1, 0.55))))
            hold = 0 if rng.random() < 0.7 else rng.randint(10, 180)
            return _Call(self.next_id("call"), e, "inbound" if inbound else "outbound",
                         self.customer(), rng.randint(3, 25), talk, hold, rng.randint(10, 90),
                         True)
        return _Call(self.next_id("call"), e, "inbound" if inbound else "outbound",
                     self.customer(), rng.randint(10, 60), 0, 0, rng.randint(0, 15), False)

    def call_event(self, c: _Call, at: datetime | None = None) -> Event:
        """The call.completed record; in the live feed its times end at `at`."""
        if at is not None:
            c.start = at - timedelta(seconds=c.total)
        assert c.start is not None
        body: dict[str, Any] = {
            "call_id": c.call_id, "employee_id": c.emp.id, "department_id": c.emp.dept,
            "direction": c.direction, "started_at": _iso(c.start),
            "answered_at": _iso(c.answered_at) if c.answered else None,
            "ended_at": _iso(c.ended_at), "talk_seconds": c.talk, "hold_seconds": c.hold,
            "wrap_up_seconds": c.wrap, "customer_id": c.customer,
        }
        if c.ticket_id is not None:
            body["ticket_id"] = c.ticket_id
        return self.event("call.completed", c.done_at, **body)

    # -- tickets ----------------------------------------------------------------------------

    def opened(self, tid: str, e: _Emp, *, priority: str, channel: str, origin: str,
               customer: str, call_id: str | None, decisions: list[str]
               ) -> Callable[[datetime], Event]:
        body: dict[str, Any] = {
            "ticket_id": tid, "employee_id": e.id, "department_id": e.dept, "line": e.line,
            "priority": priority, "channel": channel, "origin": origin, "customer_id": customer,
        }
        if call_id is not None:
            body["call_id"] = call_id
        body["decisions"] = decisions
        return self.later("ticket.opened", **body)

    def manual_open(self, e: _Emp, *, channel: str, customer: str, call_id: str | None,
                    priority: str | None = None) -> tuple[str, str, _Step]:
        tid = self.next_id("t")
        prio = priority or _pick(self.rng, PRIORITY_MIX)
        step = _Step(0, e, self.opened(tid, e, priority=prio, channel=channel, origin="manual",
                                       customer=customer, call_id=call_id,
                                       decisions=self.decisions(3, 9, e.skill)))
        return tid, prio, step

    def auto_open(self, e: _Emp, call: _Call) -> tuple[str, str, _Step]:
        tid = self.next_id("t")
        prio = _pick(self.rng, PRIORITY_MIX)
        ivr = self.decisions(1, 1) if self.rng.random() < 0.3 else []
        call.ticket_id = tid
        step = _Step(0, e, self.opened(tid, e, priority=prio, channel="call", origin="auto",
                                       customer=call.customer, call_id=call.call_id,
                                       decisions=ivr))
        return tid, prio, step

    def lifecycle(self, tid: str, owner: _Emp, prio: str, *, quick_share: float = 0.55
                  ) -> list[_Step]:
        """What happens to a ticket after it is opened, until it is closed."""
        rng = self.rng
        fr_target, res_target, _ = SLA_TARGETS[prio]
        fr = int(fr_target * 60 * (rng.uniform(0.05, 0.7) if rng.random() >= 0.05
                                   else rng.uniform(1.05, 2.0)))
        res = int(res_target * 60 * (rng.uniform(0.03, 0.5) if rng.random() >= 0.04
                                     else rng.uniform(1.05, 1.5)))
        steps: list[_Step] = []
        resolver = owner
        if rng.random() < quick_share:
            steps.append(_Step(max(60, min(fr, rng.randint(180, 1500))), owner,
                               self.later("ticket.resolved", ticket_id=tid,
                                          employee_id=owner.id)))
            return steps + self.after_resolution(tid, owner)
        steps.append(_Step(fr, owner, self.later("ticket.first_response", ticket_id=tid,
                                                 employee_id=owner.id)))
        spent = fr
        if rng.random() < 0.8:
            d = rng.randint(30, 600)
            steps.append(_Step(d, owner, self.later("ticket.status_changed", ticket_id=tid,
                                                    status="in_progress")))
            spent += d
        if rng.random() < 0.25:
            d = rng.randint(300, 3600)
            steps.append(_Step(d, owner, self.later("ticket.status_changed", ticket_id=tid,
                                                    status="waiting_customer")))
            spent += d
            steps.append(_Step(rng.randint(1800, 6 * 3600), None,
                               self.later("ticket.status_changed", ticket_id=tid,
                                          status="in_progress")))
        if rng.random() < 0.6:
            d = rng.randint(300, 3600)
            steps.append(_Step(d, owner, self.later("ticket.decisions_added", ticket_id=tid,
                                                    employee_id=owner.id,
                                                    decisions=self.decisions(2, 5, owner.skill))))
            spent += d
        l2 = self.escalation_target(owner)
        if l2 is not None and rng.random() < 0.10:
            d = rng.randint(1200, 7200)
            steps.append(_Step(d, owner, self.later(
                "ticket.escalated", ticket_id=tid, from_employee_id=owner.id,
                from_line=owner.line, to_line=2, reason=rng.choice(ESCALATION_REASONS))))
            steps.append(_Step(rng.randint(1800, 4 * 3600), l2, self.later(
                "ticket.decisions_added", ticket_id=tid, employee_id=l2.id,
                decisions=self.decisions(1, 4, l2.skill))))
            spent += d
            if rng.random() < 0.25:
                steps.append(_Step(rng.randint(600, 3600), l2, self.later(
                    "ticket.escalation_returned", ticket_id=tid, by_employee_id=l2.id,
                    reason=rng.choice(RETURN_REASONS))))
            else:
                resolver = l2
        steps.append(_Step(max(300, res - spent), resolver, self.later(
            "ticket.resolved", ticket_id=tid, employee_id=resolver.id)))
        return steps + self.after_resolution(tid, resolver)

    def after_resolution(self, tid: str, resolver: _Emp) -> list[_Step]:
        """Sometimes a reopen and a second resolution; then a rating and the closure."""
        rng = self.rng
        steps: list[_Step] = []
        if rng.random() < 0.05:
            steps.append(_Step(rng.randint(3600, 8 * 3600), None, self.later(
                "ticket.reopened", ticket_id=tid, reason=rng.choice(REOPEN_REASONS))))
            steps.append(_Step(rng.randint(300, 3600), resolver, self.later(
                "ticket.status_changed", ticket_id=tid, status="in_progress")))
            if rng.random() < 0.5:
                steps.append(_Step(rng.randint(300, 3600), resolver, self.later(
                    "ticket.decisions_added", ticket_id=tid, employee_id=resolver.id,
                    decisions=self.decisions(1, 3, resolver.skill))))
            steps.append(_Step(rng.randint(900, 4 * 3600), resolver, self.later(
                "ticket.resolved", ticket_id=tid, employee_id=resolver.id)))
        if rng.random() < 0.25:
            steps.append(_Step(rng.randint(300, 4 * 3600), None, self.later(
                "csat.rated", ticket_id=tid, employee_id=resolver.id,
                score=_pick(rng, CSAT_MIX))))
        if rng.random() < 0.85:
            steps.append(_Step(rng.randint(1800, 8 * 3600), None,
                               self.later("ticket.closed", ticket_id=tid)))
        return steps

    def escalation_target(self, owner: _Emp) -> _Emp | None:
        if owner.line != 1 or not self.all_line2:
            return None
        return self.rng.choice(self.line2.get(owner.dept) or self.all_line2)

    def merge_steps(self, absorbed: str, e: _Emp, call: _Call, gap: int) -> list[_Step]:
        """The employee's own ticket for the call, then the auto ticket merged into it."""
        tid, prio, open_step = self.manual_open(e, channel="call", customer=call.customer,
                                                call_id=call.call_id)
        open_step.delay = gap
        merged = _Step(self.rng.randint(30, 300), e, self.later(
            "ticket.merged", ticket_id=absorbed, into_ticket_id=tid))
        return [open_step, merged, *self.lifecycle(tid, e, prio)]

    def quality(self, e: _Emp, dialog_id: str) -> Callable[[datetime], Event]:
        return self.later("quality.evaluated", employee_id=e.id, dialog_id=dialog_id,
                          scores=self.scores(e, self.rng.randint(4, 8)))

    def scores(self, e: _Emp, n: int) -> list[int]:
        out = []
        for _ in range(n):
            r = self.rng.random() * 1000
            if r < 3 * e.quality:
                out.append(1)
            elif r < 20 * e.quality:
                out.append(2)
            elif r < 150:
                out.append(3)
            else:
                out.append(4)
        return out


# -- the history ------------------------------------------------------------------------------


def historical(*, employees: int, start: date, days: int, seed: int,
               tz: str = DEFAULT_TZ) -> Iterator[Event]:
    """A reproducible past of `days` calendar days from `start`, in `occurred_at` order."""
    if days < 1:
        raise ValueError("days must be at least 1")
    end = start + timedelta(days=days - 1)
    feed = _Feed(employees=employees, rng=random.Random(seed), tz=tz,
                 years=range(start.year - 1, end.year + 2))
    return _History(feed, start, end).events()


class _History:
    """Day-by-day generation into a time-ordered heap; a day is released once it is over."""

    def __init__(self, feed: _Feed, start: date, end: date) -> None:
        self.f = feed
        self.start = start
        self.end = end
        self.heap: list[tuple[float, int, Event]] = []
        self.seq = itertools.count()

    def push(self, ev: Event, at: datetime) -> None:
        heapq.heappush(self.heap, (at.timestamp(), next(self.seq), ev))

    def schedule(self, steps: list[_Step], t0: datetime) -> None:
        t = t0
        for i, s in enumerate(steps):
            if i:
                t = self.f.cal.advance(t, s.delay, s.actor)
            self.push(s.build(t), t)

    def release(self, before: datetime) -> Iterator[Event]:
        while self.heap and self.heap[0][0] < before.timestamp():
            yield heapq.heappop(self.heap)[2]

    def events(self) -> Iterator[Event]:
        f, cal = self.f, self.f.cal
        reg_day = cal.prev_working(self.start)
        order_day = cal.prev_working(reg_day)
        effective = self.start.replace(day=1)
        yield f.order(effective, cal.at(order_day, dtime(12, 0)))
        spacing = min(20.0, 7 * 3600 / len(f.emps))
        for i, e in enumerate(f.emps):
            yield f.registration(e, cal.at(reg_day, dtime(10, 0)) + timedelta(
                seconds=int(i * spacing)))
        days = [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]
        pairs = [(e, d) for d in days if cal.working(d) for e in f.emps]
        for e, d in f.rng.sample(pairs, round(0.02 * len(pairs))):
            cal.absent.add((e.id, d))
        for d in days:
            if cal.working(d):
                self.day(d)
            yield from self.release(cal.at(d + timedelta(days=1), dtime(0, 0)))
        while self.heap:
            yield heapq.heappop(self.heap)[2]

    def day(self, d: date) -> None:
        f, cal = self.f, self.f.cal
        for e in f.emps:
            if (e.id, d) in cal.absent:
                at = cal.at(d, WORK_START) + timedelta(seconds=f.rng.randint(0, 900))
                self.push(f.event("employee.absent", at, employee_id=e.id,
                                  date=d.isoformat()), at)
        for e in f.emps:
            if cal.present(d, e):
                self.employee_day(e, d)

    def employee_day(self, e: _Emp, d: date) -> None:
        """One person's day: a non-overlapping call schedule, tickets hung on calls, QA."""
        f, rng, cal = self.f, self.f.rng, self.f.cal
        calls = self.call_schedule(e, d)
        latest = cal.at(d, dtime(17, 30))
        linkable = [c for c in calls if c.answered and c.direction == "inbound"
                    and c.done_at <= latest]
        rng.shuffle(linkable)
        for _ in range(rng.randint(0, 3)):
            if not linkable:
                break
            call = linkable.pop()
            tid, prio, open_step = f.auto_open(e, call)
            t0 = call.answered_at + timedelta(seconds=1)
            if rng.random() < 0.4:
                gap = int((call.ended_at - t0).total_seconds()) + rng.randint(1, max(1, call.wrap))
                self.schedule([open_step, *f.merge_steps(tid, e, call, gap)], t0)
            else:
                self.schedule([open_step, *f.lifecycle(tid, e, prio, quick_share=0.3)], t0)
        for _ in range(rng.randint(4, 7)):
            channel = _pick(rng, CHANNEL_MIX)
            if channel == "call" and linkable:
                call = linkable.pop()
                tid, prio, open_step = f.manual_open(e, channel="call", customer=call.customer,
                                                     call_id=call.call_id)
                call.ticket_id = tid
                t0 = call.ended_at + timedelta(seconds=rng.randint(1, max(1, call.wrap)))
            else:
                channel = "chat" if channel == "call" else channel
                tid, prio, open_step = f.manual_open(e, channel=channel, customer=f.customer(),
                                                     call_id=None)
                t0 = cal.at(d, WORK_START) + timedelta(seconds=rng.randint(300, 8 * 3600 + 1800))
            self.schedule([open_step, *f.lifecycle(tid, e, prio)], t0)
        for c in calls:
            self.push(f.call_event(c), c.done_at)
        answered = [c for c in calls if c.answered]
        if answered and rng.random() < 0.35:
            c = rng.choice(answered)
            at = cal.advance(c.done_at, rng.randint(600, 3 * 3600), None)
            self.push(f.quality(e, c.call_id)(at), at)

    def call_schedule(self, e: _Emp, d: date) -> list[_Call]:
        """30–60 calls laid end to end with random gaps inside 09:02–17:59."""
        f, rng, cal = self.f, self.f.rng, self.f.cal
        calls = [f.new_call(e) for _ in range(rng.randint(30, 60))]
        window_start = cal.at(d, WORK_START) + timedelta(minutes=2)
        window = int((cal.at(d, WORK_END) - window_start).total_seconds()) - 60
        while sum(c.total for c in calls) > 0.9 * window:
            calls.pop()
        gaps = [rng.expovariate(1.0) for _ in range(len(calls) + 1)]
        free = window - sum(c.total for c in calls)
        scale = free / sum(gaps)
        cursor = window_start
        for c, g in zip(calls, gaps, strict=False):
            cursor += timedelta(seconds=int(g * scale))
            c.start = cursor
            cursor += timedelta(seconds=c.total)
        return calls


# -- the live feed ------------------------------------------------------------------------------


@dataclass
class _Open:
    """A ticket still in the live pool: its remaining steps and when the next is due."""

    steps: deque[_Step]
    due: datetime
    firm: bool = False  # a deliberately late ticket: not hurried when the pool is full
    seq: int = 0


@dataclass
class _Live:
    """The live mix, every event stamped with now(): calls, QA and a small pool of tickets."""

    f: _Feed
    now: Callable[[], datetime]
    rate: float
    pool: list[tuple[datetime, int, _Open]] = field(default_factory=list)  # heap by due time
    immediate: deque[Callable[[datetime], Event]] = field(default_factory=deque)
    today: date | None = None
    absent: set[str] = field(default_factory=set)
    present: list[_Emp] = field(default_factory=list)  # today's seats less the absent
    opened: int = 0
    stalled: int = 0

    # Nominal working seconds of a lifecycle run this much faster in the live feed, so a
    # ticket passes through its states within minutes while a demo is watched.
    SPEED = 0.01
    # Share of live actions: calls, ticket steps, quality evaluations (as in a history).
    MIX = (("call", 580), ("ticket", 415), ("quality", 5))
    STALL_SECONDS = (16 * 60, 22 * 60)  # past the 15-minute P1 first-response target
    TICKET_LIFE_SECONDS = 180  # the pool is sized so a ticket lives about this long

    cap: int = field(init=False)
    max_stalled: int = field(init=False)

    def __post_init__(self) -> None:
        events_per_ticket = 4.6
        open_rate = self.rate * 0.415 / events_per_ticket
        self.cap = max(5, min(4 * len(self.f.emps), round(open_rate * self.TICKET_LIFE_SECONDS)))
        self.max_stalled = max(2, len(self.f.emps) // 10)

    def local_now(self) -> datetime:
        t = self.now()
        if t.tzinfo is None:
            raise ValueError("now() must return an aware datetime")
        return t.astimezone(self.f.tz)

    def events(self) -> Iterator[Event]:
        f = self.f
        t = self.local_now()
        effective = t.date().replace(day=1)
        yield f.order(effective, datetime.combine(effective - timedelta(days=1), dtime(12, 0),
                                                  tzinfo=f.tz))
        for e in f.emps:
            yield f.registration(e, self.local_now())
        while True:
            yield self.next_event()

    def next_event(self) -> Event:
        f, rng = self.f, self.f.rng
        t = self.local_now()
        if t.date() != self.today:
            self.new_day(t.date())
        if self.immediate:
            return self.immediate.popleft()(t)
        action = _pick(rng, self.MIX)
        present = self.present
        if action == "call":
            return f.call_event(f.new_call(rng.choice(present)), t)
        if action == "quality":
            return f.quality(rng.choice(present), f.next_id("dialog"))(t)
        if self.pool and self.pool[0][0] <= t:
            return self.advance(heapq.heappop(self.pool)[2], t)
        if len(self.pool) < self.cap:
            return self.open_ticket(rng.choice(present), t)
        # The pool is full: hurry the ticket due soonest, except the deliberately late ones.
        held = []
        while self.pool and self.pool[0][2].firm:
            held.append(heapq.heappop(self.pool))
        hurried = heapq.heappop(self.pool)[2] if self.pool else None
        for h in held:
            heapq.heappush(self.pool, h)
        if hurried is not None:
            return self.advance(hurried, t)
        return f.call_event(f.new_call(rng.choice(present)), t)

    def new_day(self, d: date) -> None:
        """A fresh local day: a couple of people call in sick, and say so."""
        f = self.f
        self.today = d
        k = round(0.02 * len(f.emps))
        chosen = f.rng.sample(f.emps, k) if len(f.emps) > 1 else []
        self.absent = {e.id for e in chosen}
        # Once a day, not per event: at 2,000 seats the list was most of the feed's cost.
        self.present = [e for e in f.emps if e.id not in self.absent] or f.emps
        for e in chosen:
            self.immediate.append(f.later("employee.absent", employee_id=e.id,
                                          date=d.isoformat()))

    def advance(self, o: _Open, t: datetime) -> Event:
        """Emit a pooled ticket's next step; it stays pooled while it has more."""
        ev = o.steps.popleft().build(t)
        if o.firm:
            o.firm = False
            self.stalled -= 1
        if o.steps:
            o.due = t + timedelta(seconds=o.steps[0].delay * self.SPEED)
            heapq.heappush(self.pool, (o.due, o.seq, o))
        return ev

    def open_ticket(self, e: _Emp, t: datetime) -> Event:
        """A new ticket: manual (maybe on a call), or an auto call ticket, maybe merged."""
        f, rng = self.f, self.f.rng
        self.opened += 1
        stall = self.opened == 1 or (self.stalled < self.max_stalled and rng.random() < 0.012)
        steps: list[_Step]
        if not stall and rng.random() < 0.2:
            call = f.new_call(e, answered_inbound=True)
            tid, prio, open_step = f.auto_open(e, call)
            call_step = _Step(call.talk + call.hold + call.wrap, e, partial(f.call_event, call))
            if rng.random() < 0.4:
                steps = [open_step, call_step, *f.merge_steps(tid, e, call, 5)]
            else:
                steps = [open_step, call_step, *f.lifecycle(tid, e, prio, quick_share=0.3)]
        else:
            channel = "call" if stall else _pick(rng, CHANNEL_MIX)
            if channel == "call":
                call = f.new_call(e, answered_inbound=True)
                tid, prio, open_step = f.manual_open(
                    e, channel="call", customer=call.customer, call_id=call.call_id,
                    priority="P1" if stall else None)
                call.ticket_id = tid
                steps = [open_step, _Step(rng.randint(5, 40), e, partial(f.call_event, call))]
            else:
                tid, prio, open_step = f.manual_open(e, channel=channel, customer=f.customer(),
                                                     call_id=None)
                steps = [open_step]
            steps += f.lifecycle(tid, e, prio, quick_share=0.0 if stall else 0.55)
        queue = deque(steps)
        first = queue.popleft().build(t)
        o = _Open(queue, t, seq=self.opened)
        if stall:
            # A P1 on a call nobody answers in time: the call record follows at once, the
            # first response only after the 15-minute target, so live alerts fire.
            self.immediate.append(queue.popleft().build)
            o.due = t + timedelta(seconds=rng.randint(*self.STALL_SECONDS))
            o.firm = True
            self.stalled += 1
        elif queue:
            o.due = t + timedelta(seconds=queue[0].delay * self.SPEED)
        if queue:
            heapq.heappush(self.pool, (o.due, o.seq, o))
        return first


def live(*, employees: int, seed: int, rate: float, now: Callable[[], datetime]
         ) -> Iterator[Event]:
    """An endless feed of events happening at `now()`: the order and roster, then the mix."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    t = now()
    if t.tzinfo is None:
        raise ValueError("now() must return an aware datetime")
    local = t.astimezone(ZoneInfo(DEFAULT_TZ))
    # The clock's first reading joins the seed: two live runs never repeat ids, a fixed
    # clock repeats the feed exactly.
    rng = random.Random(f"{seed}/{local.isoformat()}")
    feed = _Feed(employees=employees, rng=rng, tz=DEFAULT_TZ,
                 years=range(local.year - 1, local.year + 2))
    return _Live(feed, now, rate).events()


# -- the demo: a recent past, then live at a seat's own pace -------------------------------------


@dataclass
class DemoPlan:
    """Where and when the demo's centre works, so that now is inside its working day."""

    tz: str
    workdays: tuple[int, ...]
    local_now: datetime
    history_start: date
    holidays: bool = True
    last_ticket: str | None = field(default=None, compare=False)

    def describe(self) -> str:
        days = "Monday to Friday" if self.workdays == WEEKDAYS else "every day"
        if not self.holidays:
            days += " including holidays"
        return (f"a centre in {self.tz} (local time {self.local_now:%a %H:%M}), open "
                f"{WORK_START:%H:%M}-{WORK_END:%H:%M} {days}; history from "
                f"{self.history_start.isoformat()}")


def _in_hours(local: datetime, workdays: tuple[int, ...]) -> bool:
    """Inside the working day, at least an hour after it starts and before it ends."""
    t = local.time()
    return (local.isoweekday() in workdays and dtime(WORK_START.hour + 1) <= t
            and t < dtime(WORK_END.hour - 1))


def demo_plan(now: datetime, history_days: int) -> DemoPlan:
    """The first demo zone whose clock reads working time now, on a weekday if possible.

    At a UTC weekend no zone is inside a Monday-to-Friday working day; the centre then
    works every day (as many contact centres do), and in the New Year holidays it works
    through them too.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    for workdays, holidays in ((WEEKDAYS, True), (EVERY_DAY, True), (EVERY_DAY, False)):
        for tz in DEMO_ZONES:
            local = now.astimezone(ZoneInfo(tz))
            if _in_hours(local, workdays) and not (
                    holidays and (local.month, local.day) in FIXED_HOLIDAYS):
                return DemoPlan(tz, workdays, local,
                                local.date() - timedelta(days=history_days), holidays)
    raise ValueError(f"no demo zone has working hours at {now.isoformat()}")


def seat_rate(employees: int) -> float:
    """Live events per second of a centre of `employees` seats at a realistic pace."""
    return employees * EVENTS_PER_SEAT_HOUR / 3600


def demo(*, employees: int, seed: int, now: Callable[[], datetime], history_days: int
         ) -> tuple[DemoPlan, Iterator[Event], Iterator[Event]]:
    """(plan, the history up to now, then the live feed): one centre, the same people."""
    t = now()
    plan = demo_plan(t, history_days)
    local = plan.local_now
    rng = random.Random(f"{seed}/{local.isoformat()}")
    years = range(local.year - 1, local.year + 2) if plan.holidays else range(0)
    feed = _Feed(employees=employees, rng=rng, tz=plan.tz, workdays=plan.workdays,
                 years=years)
    # The history runs through today; what it plans for later today is left out, so
    # the morning is done and the afternoon belongs to the live feed.
    past = _History(feed, plan.history_start, local.date()).events()
    def history() -> Iterator[Event]:
        for ev in past:
            if datetime.fromisoformat(ev["occurred_at"]) <= t:
                if ev["type"] == "ticket.opened":
                    plan.last_ticket = ev["ticket_id"]  # one to show in the banner
                yield ev

    # The history already issued the order and registered everyone: the live feed goes
    # straight to the day's work.
    live_feed = _Live(feed, now, seat_rate(employees))
    return plan, history(), iter(live_feed.next_event, None)


# -- records and sinks ---------------------------------------------------------------------------


def to_record(event: Event, prefix: str = "") -> tuple[str, bytes, bytes]:
    """(topic, key, value) as it goes on the wire (docs/events.md)."""
    spec = topic_for_type(event["type"])
    if not spec.key_field:
        raise ValueError(f"{event['type']} has no key field")
    return prefixed(spec.name, prefix), str(event[spec.key_field]).encode(), dumps(event)


class _RateColumn(ProgressColumn):
    """Items per second, for feeds whose length is unknown."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} {self.unit}/s" if speed else f"– {self.unit}/s",
                    style="progress.data.speed")


def progress_bar(unit: str, *, enabled: bool) -> Progress:
    """A rich progress display counting `unit`s and their rate (silent when disabled)."""
    return Progress(SpinnerColumn(), TextColumn("[progress.description]{task.description}"),
                    BarColumn(), TextColumn("{task.completed:,.0f} " + unit), _RateColumn(unit),
                    disable=not enabled, transient=False)


def write_jsonl(path: Path | str, events: Iterable[Event], progress: bool) -> int:
    """Write one event per line (UTF-8 JSON, the exact bytes a producer would send)."""
    n = 0
    with progress_bar("events", enabled=progress) as bar, Path(path).open("wb") as out:
        task = bar.add_task("writing", total=None)
        for ev in events:
            out.write(dumps(ev) + b"\n")
            n += 1
            if n % 1000 == 0:
                bar.update(task, completed=n)
        bar.update(task, completed=n)
    return n


class SendFailed(RuntimeError):
    """The broker rejected or never acknowledged a simulated record."""


class _Producer(Protocol):
    def send(self, topic: str, value: bytes | None = ..., key: bytes | None = ...) -> Any: ...


def send(events: Iterable[Event], producer: _Producer, prefix: str, rate: float | None,
         limit: int | None, progress: bool, *,
         clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep) -> int:
    """Send events at `rate` per second (None: as fast as possible); stop after `limit`."""
    if rate is not None and rate <= 0:
        raise ValueError("rate must be positive")
    errors: list[BaseException] = []
    n = 0
    feed = iter(events)
    started = clock()
    with progress_bar("events", enabled=progress) as bar:
        task = bar.add_task("sending", total=limit)
        while limit is None or n < limit:
            if rate is not None:
                # Wait before drawing the next event, so a live event's occurred_at is
                # the moment it leaves, not the moment it was queued.
                wait = started + n / rate - clock()
                if wait > 0:
                    sleep(wait)
            ev = next(feed, None)
            if ev is None:
                break
            if errors:
                raise SendFailed(f"delivery failed after {n} events: {errors[0]}")
            topic, key, value = to_record(ev, prefix)
            producer.send(topic, value=value, key=key).add_errback(errors.append)
            n += 1
            if rate is None or rate < 1000 or n % 100 == 0:
                bar.update(task, completed=n)
        bar.update(task, completed=n)
    if errors:
        raise SendFailed(f"delivery failed: {errors[0]}")
    return n


__all__ = [
    "CALLS_PER_HOUR_TARGET",
    "DAILY_PLAN_MINUTES",
    "DECISION_CATALOGUE",
    "SLA_TARGETS",
    "DemoPlan",
    "SendFailed",
    "demo",
    "demo_plan",
    "dumps",
    "historical",
    "live",
    "progress_bar",
    "seat_rate",
    "send",
    "to_record",
    "write_jsonl",
]
