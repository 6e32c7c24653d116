"""Employee projection: additive per-(employee, day) figures in a KV store, and the read side.

A day's value is its running total and the tickets it counts as handled (what the read
side reads). Beside it, the day's *sources* say what each source contributed: a ticket's
last applied replacement (version, counters, handled) for that day, and the id of each
call, rating and evaluation applied. Applying a source again replaces its old
contribution, so redelivery and reordering change nothing, and a late reopen or escalation
corrects a past day exactly. The first `INLINE_SOURCES` sources of a day are kept in one
value, written once per batch however many of them the batch adds (a backlog's batch
touches a day many times); any beyond get a small key each, so a day's values, and what
applying an event to it costs, stop growing once it has that many.
"""

from __future__ import annotations

import calendar as _calendar
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import orjson

from processors.calendar import OrderCatalogue
from processors.counters import Counters, event_counters
from processors.figures import department_totals, employee_object, pct, round2
from projections.departments import pool_minutes, summary_fact
from projections.roster import Roster
from projections.store import lru_put, next_version, prefix_scan, scoped
from schemas.events import Event

_PERIOD = re.compile(r"^(\d{4})-(\d{2})(?:-(\d{2}))?$")


class BadPeriod(ValueError):
    """A date or month parameter that is not a real YYYY-MM-DD / YYYY-MM."""


@dataclass(frozen=True, slots=True)
class Period:
    """A day or a calendar month. `today` (the local date in the order's zone, set by the
    API) makes a month object also carry its figures to date (`EmployeeReader.to_date`)."""

    text: str
    first: date
    last: date
    today: date | None = None

    @property
    def is_month(self) -> bool:
        return self.first != self.last

    def days(self) -> list[date]:
        return [date.fromordinal(o) for o in range(self.first.toordinal(),
                                                   self.last.toordinal() + 1)]


def parse_period(text: str) -> Period:
    """'2026-11-02' (a day) or '2026-11' (a month)."""
    m = _PERIOD.match(text)
    if not m:
        raise BadPeriod(f"expected YYYY-MM-DD or YYYY-MM, got {text!r}")
    y, mo = int(m.group(1)), int(m.group(2))
    try:
        if m.group(3):
            d = date(y, mo, int(m.group(3)))
            return Period(text, d, d)
        first = date(y, mo, 1)
    except ValueError as exc:
        what = "date" if m.group(3) else "month"
        raise BadPeriod(f"{text!r} has the right format but no such {what} exists ({exc})"
                        ) from exc
    last = date(y, mo, _calendar.monthrange(y, mo)[1])
    return Period(text, first, last)


@dataclass(slots=True)
class DayState:
    """A day's value: `[total counters, sorted ids of the tickets it counts as handled]`."""

    total: Counters = field(default_factory=Counters)
    handled: set[str] = field(default_factory=set)

    def to_bytes(self) -> bytes:
        return orjson.dumps([self.total.to_list(), sorted(self.handled)])

    @classmethod
    def from_bytes(cls, raw: bytes) -> DayState:
        tot, ids = orjson.loads(raw)
        return cls(Counters.from_list(tot), set(ids))


# Sources a day keeps inline. A seat's busy day in the simulator's history holds 45-80
# (calls, ratings, evaluations and tickets): those stay one value, written once a batch.
# The live soak's seats (a call every 10 s each, all day) pass it within half an hour;
# beyond it each new source is an entry of its own, so the inline value (~3 KiB at most),
# rewritten on each live event, does not grow all day.
INLINE_SOURCES = 64


@dataclass(slots=True)
class DaySources:
    """A day's inline sources: `{"tk": {ticket_id: [version, counters | None, handled]},
    "ev": {event_id: 0}}` (dicts: insertion-ordered, so a store's bytes do not depend on
    string hashing), and when there are any, `"cu"` (customer_id -> the repeat contacts
    its customer projection charged, as a ticket's `tk`), `"dp"` (department_id -> the
    cover its department projection gave), and `"sm"`: the last summary of the day sent
    to a department, `[version, department_id, kpi_minutes, absent]`."""

    tickets: dict[str, list[Any]] = field(default_factory=dict)
    events: dict[str, Any] = field(default_factory=dict)
    customers: dict[str, list[Any]] = field(default_factory=dict)
    departments: dict[str, list[Any]] = field(default_factory=dict)
    summary: list[Any] | None = None

    def full(self) -> bool:
        """New sources go to entries (they may exist only once the inline value is full:
        it never shrinks)."""
        return (len(self.tickets) + len(self.events) + len(self.customers)
                + len(self.departments)) >= INLINE_SOURCES

    def of_kind(self, kind: str) -> dict[str, list[Any]]:
        """The inline replacements of one kind of projection (tickets, customers,
        departments)."""
        if kind == TICKET_ENTRY:
            return self.tickets
        if kind == CUSTOMER_ENTRY:
            return self.customers
        return self.departments

    def to_bytes(self) -> bytes:
        d: dict[str, Any] = {"tk": self.tickets, "ev": self.events}
        # (left out when empty: a day's bytes are what they were before these existed)
        if self.customers:
            d["cu"] = self.customers
        if self.departments:
            d["dp"] = self.departments
        if self.summary is not None:
            d["sm"] = self.summary
        return orjson.dumps(d)

    @classmethod
    def from_bytes(cls, raw: bytes) -> DaySources:
        d = orjson.loads(raw)
        return cls(d["tk"], d["ev"], d.get("cu", {}), d.get("dp", {}), d.get("sm"))


@dataclass(slots=True)
class _Loaded:
    """A day being changed by the current batch."""

    state: DayState
    sources: DaySources
    sources_key: str


def _counts_handled(counters: list[Any] | None, handled: bool) -> bool:
    """Whether a ticket's contribution to a day makes it one of the day's handled tickets."""
    return bool(handled) and counters is not None


def day_key(employee_id: str, d: date | str) -> str:
    return f"{employee_id}|{d if isinstance(d, str) else d.isoformat()}"


# An employee's "known" marker is `employee_id + "|"`: no day key ("emp|YYYY-MM-DD") ends
# with "|", so no employee id, however many "|" and dates it holds, can make one
# employee's marker another's day.
MARKER_SUFFIX = "|"
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Kinds of entry: a call, rating or evaluation applied (by event_id), a ticket's
# contribution (by ticket_id), a customer's repeat contacts (by customer_id), a
# department's cover (by department_id).
EVENT_ENTRY = "e"
TICKET_ENTRY = "t"
CUSTOMER_ENTRY = "c"
DEPARTMENT_ENTRY = "d"
_SEEN = b"1"


def sources_key(employee_id: str, day: str) -> str:
    """`emp|#YYYY-MM-DD|s#`: a day's inline sources. Like entries it ends with "#" (no
    day key, summary or marker does), and reads from the right with fixed lengths."""
    return f"{employee_id}|#{day}|s#"


def entry_key(employee_id: str, day: str, kind: str, ident: str) -> str:
    """`emp|#YYYY-MM-DD|kind|ident|len(ident)#`: one source beyond the inline ones. Read
    from the right, every part has a known length, so no two (employee, day, kind, ident)
    share a key, whatever "|" and "#" the ids hold; the digit before its "#" tells it from
    a sources key; and it ends with "#", which no day key (a digit), summary ("sum") or
    marker ("|") does. The "#" after the employee keeps sources out of the range a month
    read scans ("emp|YYYY-MM-")."""
    return f"{employee_id}|#{day}|{kind}|{ident}|{len(ident)}#"


def is_entry_key(key: str) -> bool:
    """A day's sources or one of its entries: not needed to answer figures."""
    return key.endswith("#")


def split_day_key(key: str) -> tuple[str, str] | None:
    """(employee_id, day) of a day key; None for other keys (markers, summaries, entries)."""
    if "|" not in key:
        return None
    emp, day = key.rsplit("|", 1)  # employee ids may contain "|"
    return (emp, day) if _DAY.match(day) else None


Sends = list[tuple[str, bytes]]


def next_summary(employee_id: str, day: str, last: list[Any] | None, department: str | None,
                 minutes: Decimal, absent: bool,
                 versions: Callable[[int], int] = next_version
                 ) -> tuple[list[Any] | None, Sends]:
    """A day's summary for departments after a change: (what to remember as sent, the
    (department_id, summary fact) to send). A day whose kpi_minutes, absence or
    department moved since its last summary is told again with the next version; a
    department the employee left is told they are no member that day any more; a day
    with nothing to say (no department, or no minutes and no absence) sends nothing."""
    if last is None and (department is None or (not absent and not minutes)):
        return last, []
    if last is not None and (last[1], Decimal(last[2]), last[3]) == (department, minutes,
                                                                      absent):
        return last, []
    version = versions(last[0] if last is not None else 0)
    out: Sends = []
    if last is not None and last[1] is not None and last[1] != department:
        out.append((last[1], summary_fact(employee_id, day, version, Decimal(last[2]),
                                          last[3], False)))
    if department is not None:
        out.append((department, summary_fact(employee_id, day, version, minutes, absent,
                                             True)))
    return [version, department, str(minutes), absent], out


def stored_days(kv: Any, employee_id: str) -> set[str]:
    """The days an employee has a day value or sources for in the store."""
    found = prefix_scan(scoped(kv, employee_id), employee_id + "|")
    if found is None:
        raise TypeError("listing an employee's days needs a store that reads ranges")
    days: set[str] = set()
    for key, _ in found:
        parts = split_day_key(key)
        if parts is not None and parts[0] == employee_id:
            days.add(parts[1])
        elif key.endswith("|s#") and key.startswith(employee_id + "|#"):
            day = key[len(employee_id) + 2:-3]
            if _DAY.match(day):
                days.add(day)
    return days


class EmployeeReads:
    """The read side over an employees store: the employee and department objects the
    API, snapshots and gauges answer (the projector below writes the same store)."""

    def __init__(self, kv: Any, cat: OrderCatalogue, roster: Roster, *, live: bool,
                 extended: bool = True) -> None:
        self.kv = kv
        self.cat = cat
        self.roster = roster
        self.live = live
        # With the repeat-contact and cover figures in the objects it answers (False: the
        # objects without them, which some tests of the other figures compare).
        self.extended = extended

    def known(self, employee_id: str) -> bool:
        """Named by an accepted event (a fact, a call, a rating, a roster entry)."""
        kv = scoped(self.kv, employee_id)
        return (self.roster.registered(employee_id)
                or kv.get(employee_id + MARKER_SUFFIX) is not None)

    def totals(self, employee_id: str, period: Period) -> tuple[Counters, int]:
        """Summed counters and distinct handled tickets over the period's days."""
        total = Counters()
        handled: set[str] = set()
        for raw in self._day_values(employee_id, period):
            tot, ids = orjson.loads(raw)
            total = total + Counters.from_list(tot)
            handled.update(ids)
        return total, len(handled)

    def _day_values(self, employee_id: str, period: Period) -> Iterator[bytes]:
        """The value (`DayState` bytes) of each day of the period that holds figures.

        A month's days are one range of the store ("emp|2026-11-01", "emp|2026-11-02", ...;
        a source's entries sort elsewhere, "emp|#..."): read in one pass where the store
        can (RocksDB: one seek), instead of a point read for each of the month's days, most
        of which are empty (snapshots and gauges compute a month object for every changed
        employee).
        """
        kv = scoped(self.kv, employee_id)
        prefix = f"{employee_id}|{period.first.isoformat()[:8]}"  # "emp|2026-11-"
        found = prefix_scan(kv, prefix) if period.is_month else None
        if found is None:
            for d in period.days():
                key = day_key(employee_id, d)
                raw = kv.get(key)
                if raw is not None:
                    yield raw
            return
        for key, value in found:
            rest = key[len(prefix):]  # "01", else another key sharing the prefix
            # the period may end before the month does (a month to date)
            if (len(rest) == 2 and rest.isascii() and rest.isdigit()
                    and int(rest) <= period.last.day):
                yield value

    def plan(self, employee_id: str, period: Period) -> Decimal:
        absent = self.roster.absences(employee_id)
        if period.is_month:
            return self.cat.month_plan(period.first.year, period.first.month, absent, self.live)
        return self.cat.day_plan(period.first, period.first in absent, self.live)

    def to_date(self, employee_id: str, period: Period) -> dict[str, Any]:
        """A month's figures to date, beside its whole-month ones: kpi minutes, plan and
        attainment over the month's days up to and including `period.today`. Today counts
        whole (its full plan), so in the morning the to-date attainment reads low and
        climbs as the day's work is credited. A past month is all to date (its values
        equal the whole month's); a future month has nothing to date (plan 0, attainment
        null, `to_date_through` null)."""
        today = period.today
        assert today is not None and period.is_month
        last = min(period.last, today)
        if last < period.first:
            kpi, plan, through = Decimal(0), Decimal(0), None
        else:
            so_far = Period(period.text, period.first, last)
            absent = self.roster.absences(employee_id)
            kpi = self.totals(employee_id, so_far)[0].kpi_minutes
            plan = sum((self.cat.day_plan(d, d in absent, self.live) for d in so_far.days()),
                       Decimal(0))
            through = last.isoformat()
        return {"to_date_through": through, "kpi_minutes_to_date": round2(kpi),
                "plan_minutes_to_date": round2(plan),
                "attainment_to_date_pct": pct(kpi, plan)}

    def _params(self, period: Period) -> tuple[Decimal | None, Decimal | None, Any]:
        if period.is_month:
            order = self.cat.month_order(period.first.year, period.first.month, self.live)
        else:
            order = self.cat.day_order(period.first, self.live)
        if order is None:
            return None, None, None
        return order.calls_per_hour_target, order.sla_goal_pct, order.bonus_scale

    def employee(self, employee_id: str, period: Period, generation: int) -> dict[str, Any]:
        """The employee object (docs/events.md) for a day or a month; a month read with
        `today` known also carries its figures to date (snapshots do not: a value "to date"
        would go stale on the topic while nothing changes)."""
        c, handled = self.totals(employee_id, period)
        target, goal, scale = self._params(period)
        obj = employee_object(
            employee_id=employee_id,
            department_id=self.roster.department_of(employee_id),
            period=period.text,
            generation=generation,
            c=c,
            tickets_handled=handled,
            plan_minutes=self.plan(employee_id, period),
            is_month=period.is_month,
            calls_per_hour_target=target,
            sla_goal_pct=goal,
            bonus_scale=scale,
            extended=self.extended,
        )
        if period.is_month and period.today is not None:
            obj.update(self.to_date(employee_id, period))
        return obj

    def detail(self, employee_id: str, period: Period, generation: int) -> dict[str, Any]:
        """An employee object plus the raw numerators a department total needs."""
        c, handled = self.totals(employee_id, period)
        return {"employee": self.employee(employee_id, period, generation),
                "counters": c.to_list(), "handled": handled,
                "plan": str(self.plan(employee_id, period))}

    def department_from(self, department_id: str, period: Period, generation: int,
                        details: list[dict[str, Any]]) -> dict[str, Any]:
        """The manager's view from each employee's `detail` (gathered from their owners)."""
        items = [(Counters.from_list(d["counters"]), d["handled"], Decimal(d["plan"]))
                 for d in details]
        target, goal, _ = self._params(period)
        pool = (pool_minutes(self.roster, self.cat, department_id, period.days(),
                             live=self.live) if self.extended else 0)
        return {
            "department_id": department_id,
            "period": period.text,
            "generation": generation,
            "employees": [d["employee"] for d in details],
            "totals": department_totals(items, is_month=period.is_month,
                                        calls_per_hour_target=target, sla_goal_pct=goal,
                                        extended=self.extended, pool_minutes=pool),
        }

    def department(self, department_id: str, period: Period, generation: int) -> dict[str, Any]:
        """The manager's view when every member's state is in this store."""
        details = [self.detail(e, period, generation)
                   for e in self.roster.employees_of(department_id)]
        return self.department_from(department_id, period, generation, details)


class EmployeeProjector(EmployeeReads):
    """Applies ticket facts and employee-keyed events; answers the employee and department API."""

    def __init__(self, kv: Any, cat: OrderCatalogue, roster: Roster, *, live: bool,
                 extended: bool = True, ranges: Any = None, warm_limit: int = 2_000) -> None:
        super().__init__(kv, cat, roster, live=live, extended=extended)
        # How a summary's version follows the last (see `next_version`).
        self.versions: Callable[[int], int] = next_version
        # Where an employee's stored days are listed (a store that reads key ranges):
        # the store itself, unless its writes go where ranges cannot be read back from it.
        self.ranges = kv if ranges is None else ranges
        # Employees whose marker this process knows is written (so an event costs no read
        # for it); like the store's other mirrors, dropped on a rebalance (`forget`).
        self._known: set[str] = set()
        # The decoded days of recent batches, least recently written first, each exactly
        # what `end_batch` last wrote: a seat's day is changed batch after batch, and
        # decoding it again each time (two values, up to INLINE_SOURCES sources) was ~6 %
        # of the pure fold. Bounded (a decoded day is a few KiB to ~15 KiB), so a large
        # centre keeps its busiest days warm and reads the rest from the store; dropped
        # on a rebalance, as state may come back from a changelog as another worker left it.
        self._warm: OrderedDict[str, _Loaded] = OrderedDict()
        self.warm_limit = warm_limit
        # Days changed in the current batch, decoded, written once at `end_batch()`: the
        # day values whose figures moved and the days whose inline sources did.
        self._days: dict[str, _Loaded] = {}
        self._dirty: set[str] = set()
        self._dirty_sources: set[str] = set()
        # (employee, day) whose input came again (a redelivery after a crash, or a
        # duplicate): the state may say a summary was sent that never left the process,
        # so `summaries` says the last one again (departments take a repeat as stale).
        self._again: set[tuple[str, str]] = set()

    # -- write side -------------------------------------------------------------------

    def _load(self, employee_id: str, day: str) -> tuple[str, _Loaded]:
        key = day_key(employee_id, day)
        loaded = self._days.get(key)
        if loaded is not None:
            return key, loaded
        loaded = self._warm.get(key)
        if loaded is not None:
            self._days[key] = loaded
            return key, loaded
        skey = sources_key(employee_id, day)
        raw = self.kv.get(key)
        # Read apart from the day value: a source may change nothing a day shows (an
        # unanswered call), and then only the sources are written.
        found = self.kv.get(skey)
        loaded = _Loaded(DayState() if raw is None else DayState.from_bytes(raw),
                         DaySources() if found is None else DaySources.from_bytes(found),
                         skey)
        self._days[key] = loaded
        return key, loaded

    def forget(self) -> None:
        """Drop what describes the store as this process wrote it (after a rebalance:
        state may have moved under it)."""
        self._known.clear()
        self._warm.clear()

    def end_batch(self) -> None:
        """Write every day value and inline sources changed since the last call, once
        (entries beyond the inline ones are written as they come). The worker calls it
        before flushing its store and committing."""
        for key in self._dirty:
            self.kv.put(key, self._days[key].state.to_bytes())
        for key in self._dirty_sources:
            loaded = self._days[key]
            self.kv.put(loaded.sources_key, loaded.sources.to_bytes())
        for key, loaded in self._days.items():
            lru_put(self._warm, key, loaded, self.warm_limit)
        self._dirty.clear()
        self._dirty_sources.clear()
        self._days.clear()
        self._again.clear()

    def again(self) -> set[tuple[str, str]]:
        """The (employee, day) whose input came again since the last `end_batch`: their
        summaries are said again even when nothing changed (see `summaries`)."""
        return set(self._again)

    def _mark_known(self, employee_id: str) -> None:
        if employee_id in self._known:
            return
        marker = employee_id + MARKER_SUFFIX
        if self.kv.get(marker) is None:
            self.kv.put(marker, b"1")
        self._known.add(employee_id)

    def apply_fact(self, employee_id: str, raw: bytes | dict[str, Any],
                   kind: str = TICKET_ENTRY) -> list[date]:
        """Apply a ticket's replacement contributions (a fact, encoded or already read from
        a bundle, see `projections.tickets.read_facts`), or a customer's repeat contacts
        or a department's cover (`kind`, facts of the same shape); returns the days that
        changed."""
        fact = orjson.loads(raw) if isinstance(raw, bytes | bytearray | memoryview) else raw
        ticket_id, version = fact["t"], fact["v"]
        touched: list[date] = []
        self._mark_known(employee_id)
        for day, clist, handled in fact["i"]:
            key, loaded = self._load(employee_id, day)
            src, st = loaded.sources, loaded.state
            inline = src.of_kind(kind)
            old = inline.get(ticket_id)
            ekey = None
            if old is None and src.full():
                ekey = entry_key(employee_id, day, kind, ticket_id)
                found = self.kv.get(ekey)
                old = orjson.loads(found) if found is not None else None
            if old is not None and old[0] > version:
                continue  # a newer replacement already landed: this one is stale
            same = old is not None and old[1] == clist and old[2] == handled
            if same and old is not None and old[0] == version and kind == TICKET_ENTRY:
                # Only a ticket's minutes reach a summary, and repeating one answered
                # by a cover would ping-pong between the two agents.
                self._again.add((employee_id, day))
            if not (same and old is not None and old[0] == version):
                if ekey is None:
                    inline[ticket_id] = [version, clist, handled]
                    self._dirty_sources.add(key)
                else:
                    self.kv.put(ekey, orjson.dumps([version, clist, handled]))
            if same:
                continue  # a new version of the same contribution: the day is as it was
            if old is not None and old[1] is not None:
                st.total = st.total - Counters.from_list(old[1])
            if clist is not None:
                st.total = st.total + Counters.from_list(clist)
            if kind != TICKET_ENTRY:
                pass  # only tickets are handled (and a source id may equal a ticket's)
            elif _counts_handled(clist, handled):
                st.handled.add(ticket_id)
            else:
                st.handled.discard(ticket_id)
            self._dirty.add(key)
            touched.append(date.fromisoformat(day))
        return touched

    def apply_event(self, ev: Event) -> tuple[bool, list[date]]:
        """Apply a call, rating, evaluation or roster event: (duplicate, touched days)."""
        employee_id: str = ev.employee_id  # type: ignore[attr-defined]
        self._mark_known(employee_id)
        if ev.type == "employee.absent":
            # An absence is a summary's input with no id to know it again by.
            self._again.add((employee_id, ev.date.isoformat()))  # type: ignore[attr-defined]
            return False, [ev.date]  # type: ignore[attr-defined]
        if ev.type == "employee.registered":
            return False, []
        d = self.cat.local_date(ev.occurred_at, ev.occurred_at if self.live else None)
        day = d.isoformat()
        key, loaded = self._load(employee_id, day)
        src = loaded.sources
        eid = str(ev.event_id)
        if eid in src.events:
            self._again.add((employee_id, day))
            return True, []
        if src.full():
            ekey = entry_key(employee_id, day, EVENT_ENTRY, eid)
            if self.kv.get(ekey) is not None:
                self._again.add((employee_id, day))
                return True, []
            self.kv.put(ekey, _SEEN)
        else:
            src.events[eid] = 0
            self._dirty_sources.add(key)
        c = event_counters(ev)
        if not c.is_zero():
            loaded.state.total = loaded.state.total + c
            self._dirty.add(key)
        return False, [d]

    def summaries(self, employee_id: str, days: Iterable[date | str], *,
                  again: bool = False) -> list[tuple[str, bytes]]:
        """The (department_id, summary fact) owed to departments for these days of the
        employee (the cover rule; see `next_summary`). Call it with the days an event touched,
        or with `days_of` after a registration. A day whose input came again (`again()`),
        or every day with `again`, has its last summary said again when nothing moved."""
        out: list[tuple[str, bytes]] = []
        department = self.roster.department_of(employee_id)
        absences = self.roster.absences(employee_id)
        for d in days:
            day = d if isinstance(d, str) else d.isoformat()
            key, loaded = self._load(employee_id, day)
            last, sent = next_summary(employee_id, day, loaded.sources.summary, department,
                                      loaded.state.total.kpi_minutes,
                                      date.fromisoformat(day) in absences, self.versions)
            if sent:
                loaded.sources.summary = last
                self._dirty_sources.add(key)
                out += sent
            elif last is not None and last[1] is not None and (
                    again or (employee_id, day) in self._again):
                out.append((last[1], summary_fact(employee_id, day, last[0], Decimal(last[2]),
                                                  last[3], True)))
        return out

    def days_of(self, employee_id: str) -> list[str]:
        """Every day the employee has figures, sources or an absence on (after a
        registration, each is summarised again for the new department)."""
        days = {d.isoformat() for d in self.roster.absences(employee_id)}
        for key in self._days:  # days of this batch, not written yet
            parts = split_day_key(key)
            if parts is not None and parts[0] == employee_id:
                days.add(parts[1])
        return sorted(days | stored_days(self.ranges, employee_id))
