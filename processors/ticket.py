"""The ticket fold: a ticket's whole history -> its SLA clocks and its contributions.

A ticket's figures are a pure function of its (time-ordered) history, the merge notices
it received and the norm orders. Re-folding the history on every event makes a late or
out-of-order event cost nothing special: the result always equals the time-ordered fold,
and the caller turns the difference between the old and new contributions into
corrections for the employees concerned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from copy import copy
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from processors.business_time import business_seconds, due_at, wall_seconds
from processors.calendar import NormOrder, OrderCatalogue
from processors.counters import Counters
from schemas.events import Event
from schemas.topics import topic_for_type

UTC = UTC

# Ties at one instant go by type in this order (docs/semantics.md, "Time order").
TYPE_RANK: dict[str, int] = {
    t: i
    for i, t in enumerate(
        (
            "ticket.opened",
            "ticket.merged",
            "ticket.first_response",
            "ticket.status_changed",
            "ticket.decisions_added",
            "ticket.escalated",
            "ticket.escalation_returned",
            "ticket.resolved",
            "ticket.reopened",
            "ticket.closed",
        )
    )
}
TICKET_TYPES = frozenset(TYPE_RANK)
# Duplicates are judged per topic (docs/semantics.md, "Duplicates"), so entries know their topic.
TOPIC_OF_TYPE: dict[str, str] = {t: topic_for_type(t).name for t in TYPE_RANK}
# The SLA alert thresholds: the fraction of a target's time elapsed at each.
THRESHOLDS: tuple[tuple[str, Decimal], ...] = (
    ("warning", Decimal("0.75")),
    ("breached", Decimal(1)),
)
THRESHOLD_FRACTION: dict[str, Decimal] = dict(THRESHOLDS)
# Payload fields the fold needs, per type; the rest of an event is not kept in state.
_KEEP: dict[str, tuple[str, ...]] = {
    "ticket.opened": (
        "employee_id", "department_id", "line", "priority", "origin", "decisions", "customer_id"
    ),
    "ticket.decisions_added": ("employee_id", "decisions"),
    "ticket.first_response": ("employee_id",),
    "ticket.status_changed": ("status",),
    "ticket.resolved": ("employee_id",),
    "ticket.closed": (),
    "ticket.merged": ("into_ticket_id",),
    "ticket.escalated": ("from_employee_id", "from_line", "to_line"),
    "ticket.escalation_returned": ("by_employee_id",),
    "ticket.reopened": (),
}


@dataclass(frozen=True, slots=True)
class Entry:
    """One accepted event of a ticket, reduced to what the fold reads."""

    ts: datetime
    type: str
    event_id: str
    data: Mapping[str, Any]

    @property
    def sort_key(self) -> tuple[datetime, int, str]:
        return (self.ts, TYPE_RANK[self.type], self.event_id)

    def to_list(self) -> list[Any]:
        return [self.type, self.ts.isoformat(), self.event_id, dict(self.data)]

    @classmethod
    def from_list(cls, raw: list[Any]) -> Entry:
        return cls(datetime.fromisoformat(raw[1]), raw[0], raw[2], raw[3])

    @classmethod
    def from_event(cls, ev: Event) -> Entry:
        data = {k: getattr(ev, k) for k in _KEEP[ev.type]}
        if "decisions" in data:
            data["decisions"] = list(data["decisions"])
        return cls(ev.occurred_at, ev.type, str(ev.event_id), data)


@dataclass(slots=True)
class Threshold:
    """The moment a target's clock reaches 75% (warning) or 100% (breached)."""

    target: str
    kind: str
    moment: datetime


@dataclass(slots=True)
class Clock:
    """One SLA clock (first response or resolution) as of the end of the history."""

    target_seconds: Decimal | None
    elapsed: Decimal = Decimal(0)
    since: datetime | None = None  # start of the still-open running interval
    running: bool = False
    done: bool = False  # first response given / ticket resolved

    def clone(self) -> Clock:
        return Clock(self.target_seconds, self.elapsed, self.since, self.running, self.done)

    def elapsed_at(self, now: datetime, seconds: SecondsFn) -> Decimal:
        """Elapsed seconds at `now` (counting the open interval when running)."""
        if self.running and self.since is not None and now > self.since:
            return self.elapsed + seconds(self.since, now)
        return self.elapsed


@dataclass(slots=True)
class Resolution:
    employee_id: str
    ts: datetime
    fr_elapsed: Decimal
    res_elapsed: Decimal
    outcome: str | None  # "met", "breached" or None when no target applies


@dataclass(slots=True)
class TicketView:
    """Everything the projections, the API and the alert timer read about a ticket."""

    ticket_id: str
    opened_at: datetime | None = None
    owner: str | None = None
    department_id: str | None = None
    line: int | None = None
    priority: str | None = None
    origin: str = "manual"
    status: str = "open"
    resolved: bool = False
    closed: bool = False
    absorbed_into: str | None = None
    clock_start: datetime | None = None
    order_id: str | None = None
    business_hours: bool = False
    fr: Clock = field(default_factory=lambda: Clock(None))
    res: Clock = field(default_factory=lambda: Clock(None))
    last_resolution: Resolution | None = None
    # (employee_id, local date) -> (additive counters, handled 0/1)
    contributions: dict[tuple[str, date], tuple[Counters, int]] = field(default_factory=dict)
    # every outcome decided by a resolution, in time order:
    # (priority, "met"|"breached", first-response seconds, resolution seconds)
    outcomes: list[tuple[str, str, Decimal, Decimal]] = field(default_factory=list)
    thresholds: list[Threshold] = field(default_factory=list)
    last_ts: datetime | None = None

    def participants(self) -> set[str]:
        """Employees the ticket concerns: its current owner and everyone it credits."""
        people = {emp for emp, _ in self.contributions}
        if self.owner is not None:
            people.add(self.owner)
        return people

    @property
    def is_open(self) -> bool:
        return not self.resolved and not self.closed and self.absorbed_into is None

    def __copy__(self) -> TicketView:
        # copy.copy's generic path (__reduce_ex__) cost more than the fold step itself.
        new = object.__new__(TicketView)
        for name in _VIEW_SLOTS:
            setattr(new, name, getattr(self, name))
        return new

    def seconds_fn(self, cat: OrderCatalogue, live: bool) -> SecondsFn:
        return _seconds_fn(self.business_hours, cat, live)


_VIEW_SLOTS: tuple[str, ...] = tuple(f.name for f in fields(TicketView))


class SecondsFn:
    """Elapsed seconds between two instants, in business or wall-clock time."""

    __slots__ = ("_bh", "_cat", "_live")

    def __init__(self, business_hours: bool, cat: OrderCatalogue, live: bool) -> None:
        self._bh, self._cat, self._live = business_hours, cat, live

    def __call__(self, a: datetime, b: datetime) -> Decimal:
        if self._bh:
            return business_seconds(a, b, self._cat, self._live)
        return wall_seconds(a, b)

    def due(self, start: datetime, remaining: Decimal) -> datetime | None:
        return due_at(start, remaining, self._bh, self._cat, self._live)


def _within(clock: Clock) -> bool:
    """'Within target' means elapsed <= target, exactly (docs/semantics.md)."""
    return clock.target_seconds is None or clock.elapsed <= clock.target_seconds


def clock_state(clock: Clock, now_elapsed: Decimal, finished: bool) -> str:
    """running | paused | met | breached, for the ticket view and the open-breach gauge."""
    if clock.target_seconds is None:
        return "running" if clock.running else "paused"
    if finished:
        return "met" if clock.elapsed <= clock.target_seconds else "breached"
    if now_elapsed > clock.target_seconds:
        return "breached"
    return "running" if clock.running else "paused"


def _seconds_fn(bh: bool, cat: OrderCatalogue, live: bool) -> SecondsFn:
    return SecondsFn(bh, cat, live)


def _weights(
    codes: Iterable[str], order: NormOrder | None, auto: bool
) -> tuple[Decimal, int]:
    """(minutes, unpriced count) for decision codes under an order (docs/semantics.md)."""
    minutes = Decimal(0)
    unpriced = 0
    catalogue = order.decision_weights if order is not None else {}
    for code in codes:
        w = catalogue.get(code)
        if w is None:
            unpriced += 1
        elif not auto:
            minutes += w
    return minutes, unpriced


def fold(
    ticket_id: str,
    entries: Iterable[Entry],
    merge_ins: Mapping[str, datetime],
    cat: OrderCatalogue,
    *,
    live: bool,
    alerts: bool = False,
) -> TicketView:
    """Fold a ticket's history (any order) into its view; `live` picks the order view.

    live=True: each event sees only orders issued by its own occurred_at;
    live=False (replay): every order counts as issued at the start.
    """
    return Folder.over(ticket_id, entries, merge_ins, cat, live=live, alerts=alerts).finish()


class Folder:
    """The fold as a cursor over the time-ordered history: `step` one entry, `finish` to
    read the view. Folding a history from the start and stepping a cursor left after its
    prefix give the same result; the ticket projector keeps cursors so that an event
    arriving in order costs one step instead of a re-fold of the whole history. A cursor
    is only valid while what it was started with holds: the ticket's first `opened` and
    merge notices (they set the clock start), and the catalogue of norm orders.
    """

    __slots__ = (
        "alerts",
        "auto",
        "cat",
        "contrib",
        "count",
        "crossed",
        "due_memo",
        "escalated_any",
        "last_key",
        "latest_escalator",
        "live",
        "merge_ins",
        "opened",
        "reopened_any",
        "revision",
        "runs",
        "seconds",
        "target",
        "v",
    )

    def __init__(self, ticket_id: str, opened: Entry | None, merge_ins: Mapping[str, datetime],
                 cat: OrderCatalogue, *, live: bool, alerts: bool,
                 first_ts: datetime | None) -> None:
        v = self.v = TicketView(ticket_id)
        self.cat, self.live, self.alerts, self.opened = cat, live, alerts, opened
        self.revision = cat.revision
        self.merge_ins = dict(merge_ins)
        self.crossed: dict[tuple[str, str], datetime] = {}
        self.contrib: dict[tuple[str, date], list[Any]] = {}
        self.latest_escalator: str | None = None
        self.escalated_any = False
        self.reopened_any = False
        self.last_key: tuple[datetime, int, str] | None = None
        self.count = 0
        self.target = None
        # How many times each clock (first response, resolution) has started running, and
        # the threshold moments computed within its current run: while a clock runs on,
        # each event moves `since` forward and adds to `elapsed` by exactly the business
        # time in between, so the moment the clock reaches a limit does not change (it is
        # recomputed when the clock stops and starts again, and a cursor never outlives a
        # change of norm orders). (target, kind) -> (run, moment)
        self.runs = [0, 0]
        self.due_memo: dict[tuple[str, str], tuple[int, datetime]] = {}
        if opened is not None:
            d = opened.data
            v.opened_at = opened.ts
            v.owner = d["employee_id"]
            v.department_id = d["department_id"]
            v.line = d["line"]
            v.priority = d["priority"]
            v.origin = d["origin"]
            order = cat.in_force(self.local(opened.ts), self.issued(opened.ts))
            if order is not None:
                v.order_id = order.order_id
                self.target = order.sla_targets.get(d["priority"])
        starts = list(merge_ins.values())
        if v.opened_at is not None:
            starts.append(v.opened_at)
        v.clock_start = min(starts) if starts else None
        if self.target is not None:
            v.business_hours = self.target.business_hours
            v.fr = Clock(self.target.first_response_minutes * 60)
            v.res = Clock(self.target.resolution_minutes * 60)
        self.seconds = _seconds_fn(v.business_hours, cat, live)
        self.auto = v.origin == "auto"
        if v.clock_start is not None and (first_ts is None or v.clock_start < first_ts):
            self._set_running(v.clock_start)

    @classmethod
    def over(cls, ticket_id: str, entries: Iterable[Entry], merge_ins: Mapping[str, datetime],
             cat: OrderCatalogue, *, live: bool, alerts: bool) -> Folder:
        """A cursor after the whole history (any order)."""
        ordered = sorted(entries, key=lambda e: e.sort_key)
        opened = next((e for e in ordered if e.type == "ticket.opened"), None)
        f = cls(ticket_id, opened, merge_ins, cat, live=live, alerts=alerts,
                first_ts=ordered[0].ts if ordered else None)
        for e in ordered:
            f.step(e)
        return f

    def can_step(self, e: Entry, merge_ins: Mapping[str, datetime]) -> bool:
        """Whether stepping `e` equals re-folding the history with `e` added: it comes
        after everything folded, names no new first `opened`, and the merge notices and
        the norm orders are those the cursor was started with."""
        return (self.last_key is not None and e.sort_key > self.last_key
                and (self.opened is not None or e.type != "ticket.opened")
                and self.revision == self.cat.revision and self.merge_ins == merge_ins)

    def issued(self, ts: datetime) -> datetime | None:
        return ts if self.live else None

    def local(self, ts: datetime) -> date:
        return self.cat.local_date(ts, self.issued(ts))

    def _add(self, emp: str, d: date, c: Counters | None = None, handled: int = 0) -> None:
        slot = self.contrib.get((emp, d))
        if slot is None:
            slot = self.contrib[(emp, d)] = [Counters(), 0]
        if c is not None:
            slot[0] = slot[0] + c
        if handled:
            slot[1] = 1

    def _credit(self, e: Entry, emp: str, codes: list[str]) -> None:
        # Weighed under the order in force on the opened date (or this event's own date
        # for a ticket never opened), as seen from this crediting event.
        v = self.v
        opened_date = self.local(v.opened_at) if v.opened_at is not None else self.local(e.ts)
        order = self.cat.in_force(opened_date, self.issued(e.ts))
        minutes, unpriced = _weights(codes, order, self.auto)
        self._add(emp, self.local(e.ts),
                  Counters(kpi_minutes=minutes, unpriced_decisions=unpriced), 1)

    def _run_until(self, t: datetime) -> None:
        """Advance both clocks to t, recording threshold crossings on the way."""
        v, seconds, crossed = self.v, self.seconds, self.crossed
        for name, clock in (("first_response", v.fr), ("resolution", v.res)):
            if not clock.running or clock.since is None or t <= clock.since:
                continue
            gained = seconds(clock.since, t)
            if self.alerts and clock.target_seconds is not None:
                for kind, frac in THRESHOLDS:
                    limit = clock.target_seconds * frac
                    if (name, kind) not in crossed and clock.elapsed + gained >= limit:
                        moment = seconds.due(clock.since, limit - clock.elapsed)
                        crossed[(name, kind)] = moment or t
            clock.elapsed += gained
            clock.since = t

    def _set_running(self, t: datetime) -> None:
        """Recompute which clocks run after the state change at t."""
        v = self.v
        started = v.clock_start is not None and t >= v.clock_start
        fr_run = started and not v.fr.done and not v.closed and not v.resolved
        res_run = started and not v.resolved and not v.closed and v.status != "waiting_customer"
        for i, (clock, run) in enumerate(((v.fr, fr_run), (v.res, res_run))):
            if run and not clock.running:
                clock.since = t
                self.runs[i] += 1
            clock.running = run

    def step(self, e: Entry) -> None:
        """Fold the next entry in time order."""
        v = self.v
        self.last_key = e.sort_key
        self.count += 1
        v.last_ts = e.ts
        t = e.ts if v.clock_start is None else max(e.ts, v.clock_start)
        self._run_until(t)
        d = e.data
        typ = e.type
        add = self._add
        if typ == "ticket.opened":
            # Every opened names its employee (known, docs/semantics.md), even a second one that
            # defines nothing: else it would be known only if it arrived first.
            add(d["employee_id"], self.local(e.ts))
            if e is self.opened and d["origin"] == "manual":
                self._credit(e, d["employee_id"], d["decisions"])
        elif typ == "ticket.decisions_added":
            self._credit(e, d["employee_id"], d["decisions"])
        elif typ == "ticket.first_response":
            add(d["employee_id"], self.local(e.ts))
            v.fr.done = True
        elif typ == "ticket.status_changed":
            v.status = d["status"]
        elif typ == "ticket.escalated":
            self.escalated_any = True
            self.latest_escalator = d["from_employee_id"]
            add(d["from_employee_id"], self.local(e.ts), Counters(escalated=1))
        elif typ == "ticket.escalation_returned":
            add(d["by_employee_id"], self.local(e.ts))
            if self.latest_escalator is not None:
                add(self.latest_escalator, self.local(e.ts), Counters(escalations_returned=1))
        elif typ == "ticket.resolved":
            v.fr.done = True
            v.resolved = True
            outcome = None
            if self.target is not None:
                ok = _within(v.fr) and _within(v.res)
                outcome = "met" if ok else "breached"
                if v.priority is not None:
                    v.outcomes.append((v.priority, outcome, v.fr.elapsed, v.res.elapsed))
            v.last_resolution = Resolution(d["employee_id"], e.ts, v.fr.elapsed, v.res.elapsed,
                                           outcome)
            add(d["employee_id"], self.local(e.ts))
        elif typ == "ticket.reopened":
            self.reopened_any = True
            if v.last_resolution is not None:
                add(v.last_resolution.employee_id, self.local(e.ts), Counters(reopened=1))
            v.resolved = False
            v.closed = False
            v.status = "open"
        elif typ == "ticket.closed":
            v.closed = True
        elif typ == "ticket.merged":
            v.absorbed_into = d["into_ticket_id"]
        self._set_running(t)

    def finish(self) -> TicketView:
        """The view after the entries stepped so far (the cursor itself is unchanged)."""
        src = self.v
        v = copy(src)
        v.fr, v.res = src.fr.clone(), src.res.clone()
        v.outcomes = list(src.outcomes)
        contributions = {k: (s[0], s[1]) for k, s in self.contrib.items()}
        lr = v.last_resolution
        if lr is not None and v.absorbed_into is None:
            # The last resolution carries the ticket's resolved/FCR/SLA outcome (rules 5, 7).
            fcr = 0 if (self.escalated_any or self.reopened_any) else 1
            key = (lr.employee_id, self.local(lr.ts))
            c, h = contributions.get(key, (Counters(), 0))
            contributions[key] = (c + Counters(
                resolved=1, fcr=fcr,
                met=1 if lr.outcome == "met" else 0,
                breached=1 if lr.outcome == "breached" else 0,
            ), h)
        v.contributions = contributions
        crossed = dict(self.crossed)
        if self.alerts and v.is_open:
            memo = self.due_memo
            for run, name, clock in ((self.runs[0], "first_response", v.fr),
                                     (self.runs[1], "resolution", v.res)):
                if not clock.running or clock.since is None or clock.target_seconds is None:
                    continue
                for kind, frac in THRESHOLDS:
                    if (name, kind) in crossed:
                        continue
                    known = memo.get((name, kind))
                    if known is not None and known[0] == run:
                        crossed[(name, kind)] = known[1]
                        continue
                    limit = clock.target_seconds * frac
                    moment = self.seconds.due(clock.since, limit - clock.elapsed)
                    if moment is not None:
                        # (not "never": a later start searches a later horizon)
                        memo[(name, kind)] = (run, moment)
                        crossed[(name, kind)] = moment
        # An absorbed ticket leaves every SLA count: no alerts either.
        v.thresholds = ([] if v.absorbed_into is not None
                        else [Threshold(n, k, m) for (n, k), m in crossed.items()])
        return v


def _minutes(seconds: Decimal) -> float:
    return float((seconds / 60).quantize(Decimal("0.01")))


def _local(moment: datetime | None, v: TicketView, cat: OrderCatalogue, now: datetime,
           live: bool) -> str | None:
    """A computed moment in the zone of the ticket's order (the one whose targets it
    runs on), so it reads like the ticket's other times, which carry their events' local
    offsets; without that order, the zone of the order in force at that moment."""
    if moment is None:
        return None
    order = next((o for o in cat.orders if o.order_id == v.order_id), None)
    zone = order.tz if order is not None else cat.zone_at(moment, now if live else None)
    return moment.astimezone(zone).isoformat()


def describe(v: TicketView, cat: OrderCatalogue, live: bool, now: datetime) -> dict[str, Any]:
    """The ticket's projection for GET /tickets/{id}: state and each target's clock."""
    seconds = v.seconds_fn(cat, live)
    targets: dict[str, Any] = {}
    for name, clock in (("first_response", v.fr), ("resolution", v.res)):
        finished = clock.done if name == "first_response" else v.resolved
        elapsed = clock.elapsed if finished else clock.elapsed_at(now, seconds)
        entry: dict[str, Any] = {
            "target_minutes": _minutes(clock.target_seconds) if clock.target_seconds else None,
            "elapsed_minutes": _minutes(elapsed),
            "remaining_minutes": (
                _minutes(max(Decimal(0), clock.target_seconds - elapsed))
                if clock.target_seconds is not None else None
            ),
            "state": clock_state(clock, elapsed, finished),
        }
        due = next((t.moment for t in v.thresholds
                    if t.target == name and t.kind == "breached"), None)
        entry["due_at"] = _local(due, v, cat, now, live)
        targets[name] = entry
    lr = v.last_resolution
    return {
        "ticket_id": v.ticket_id,
        "status": ("merged" if v.absorbed_into else "closed" if v.closed
                   else "resolved" if v.resolved else v.status),
        "owner": v.owner,
        "department_id": v.department_id,
        "line": v.line,
        "priority": v.priority,
        "origin": v.origin,
        "opened_at": v.opened_at.isoformat() if v.opened_at else None,
        "clock_start": v.clock_start.isoformat() if v.clock_start else None,
        "merged_into": v.absorbed_into,
        "order_id": v.order_id,
        "business_hours": v.business_hours,
        "sla": targets,
        "last_resolution": None if lr is None else {
            "employee_id": lr.employee_id, "at": lr.ts.isoformat(), "outcome": lr.outcome,
        },
    }
