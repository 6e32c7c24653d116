"""Department projection: every member's day of one department together, and the covers.

Rule 15 needs a department's members side by side on a date, but employees are partitioned
by employee_id: the employee side sends each (employee, day) *summary* (the day's
kpi_minutes, whether the employee is absent that day, and whether they are a member of the
department the summary is addressed to) keyed by department_id, as a versioned
replacement (`EmployeeProjector.summaries`). A summary with `in` false takes an employee
out of a department (they registered elsewhere) for that day.

State per (department, day), one key: each member's last summary and its version, the
covers last published, and a version. After every change the rule is re-run for the day
and each member whose cover differs gets a replacement carrying the department-day's
version, which the employee side applies once (`EmployeeProjector.apply_fact` with kind
`DEPARTMENT_ENTRY`). The plan comes from the norm orders (the order in force on the day,
live: as known by the day's end), so a change of orders re-runs the department's days
(`reconcile`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Any

import orjson

from processors.calendar import OrderCatalogue
from processors.counters import Counters
from processors.cover import MemberDay, cover_day, exact
from projections.roster import Roster
from projections.store import next_version, scoped

_DAY_LEN = len("YYYY-MM-DD")


def department_day_key(department_id: str, day: str) -> str:
    """`dept|YYYY-MM-DD`: read from the right, the day has a fixed length, so no two
    (department, day) share a key whatever "|" the ids hold."""
    return f"{department_id}|{day}"


def split_department_day(key: str) -> tuple[str, str]:
    return key[:-_DAY_LEN - 1], key[-_DAY_LEN:]


def summary_fact(employee_id: str, day: str, version: int, minutes: Decimal, absent: bool,
                 member: bool) -> bytes:
    """An employee's day as its department sees it:
    `{"e": employee, "d": date, "v": version, "m": kpi_minutes, "a": absent, "in": member}`."""
    return orjson.dumps({"e": employee_id, "d": day, "v": version, "m": str(minutes),
                         "a": absent, "in": member})


def cover_fact(department_id: str, version: int, items: list[list[Any]]) -> bytes:
    """`{"t": department, "v": version, "i": [[date, counters list | None, 0]]}`: the shape
    of a ticket's fact, so the employee side applies both alike."""
    return orjson.dumps({"t": department_id, "v": version, "i": items})


@dataclass(slots=True)
class DepartmentDay:
    version: int = 0
    # employee_id -> [version, kpi_minutes, absent, member]
    members: dict[str, list[Any]] = field(default_factory=dict)
    # employee_id -> cover last published ("p/q"; "0": retracted, said once)
    published: dict[str, str] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return orjson.dumps({"v": self.version, "m": self.members, "p": self.published})

    @classmethod
    def from_bytes(cls, raw: bytes) -> DepartmentDay:
        d = orjson.loads(raw)
        return cls(d["v"], d["m"], d["p"])


class DepartmentProjector:
    """Applies employee-day summaries to department-day state in a KV store."""

    def __init__(self, kv: Any, cat: OrderCatalogue, *, live: bool) -> None:
        self.kv = kv
        self.cat = cat
        self.live = live
        # How a replacement's version follows the last (see `next_version`).
        self.versions: Callable[[int], int] = next_version
        self._states: dict[str, DepartmentDay] = {}
        self._changed: set[str] = set()

    def _load(self, key: str) -> DepartmentDay:
        st = self._states.get(key)
        if st is None:
            raw = scoped(self.kv, split_department_day(key)[0]).get(key)
            st = DepartmentDay() if raw is None else DepartmentDay.from_bytes(raw)
            self._states[key] = st
        return st

    def end_batch(self) -> None:
        """Write every department day changed since the last call, once."""
        for key in self._changed:
            self.kv.put(key, self._states[key].to_bytes())
        self._changed.clear()
        self._states.clear()

    def apply_summary(self, department_id: str,
                      raw: bytes | dict[str, Any]) -> list[tuple[str, bytes]]:
        """Apply one employee-day summary; returns the (employee_id, cover fact) owed."""
        fact = orjson.loads(raw) if isinstance(raw, bytes | bytearray | memoryview) else raw
        key = department_day_key(department_id, fact["d"])
        st = self._load(key)
        old = st.members.get(fact["e"])
        if old is not None and old[0] >= fact["v"]:
            # Stale or redelivered: what was owed may not have been sent before a crash.
            return self.republish(key)
        new = [fact["v"], fact["m"], fact["a"], fact["in"]]
        st.members[fact["e"]] = new
        self._changed.add(key)
        if old is not None and old[1:] == new[1:]:
            return []
        return self._publish(key, st)

    def _publish(self, key: str, st: DepartmentDay) -> list[tuple[str, bytes]]:
        department_id, day = split_department_day(key)
        covers: dict[str, str] = {}
        # Most department days have nobody absent: no pool, no cover, nothing to compute.
        if any(a and member for _, _, a, member in st.members.values()):
            plan = self.cat.day_plan(date.fromisoformat(day), False, self.live)
            members = [MemberDay(e, Decimal(m), bool(a))
                       for e, (_, m, a, member) in st.members.items() if member]
            covers = {e: str(c) for e, c in cover_day(members, plan).covers.items()}
        out: list[tuple[str, bytes]] = []
        changed: list[tuple[str, str]] = []
        for e, c in covers.items():
            if st.published.get(e) != c:
                changed.append((e, c))
        for e, c in st.published.items():
            if e not in covers:
                if c != "0":
                    changed.append((e, "0"))
                covers[e] = "0"
        st.published = covers
        if not changed:
            return out
        st.version = self.versions(st.version)
        self._changed.add(key)
        for e, c in changed:
            out.append((e, cover_fact(department_id, st.version, [[day, _cover_list(c), 0]])))
        return out

    def republish(self, key: str) -> list[tuple[str, bytes]]:
        """Every cover last published for a department day, again."""
        department_id, day = split_department_day(key)
        st = self._load(key)
        return [(e, cover_fact(department_id, st.version, [[day, _cover_list(c), 0]]))
                for e, c in st.published.items()]

    def reconcile(self, keys: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        """Re-run the rule for department days whose plan norm orders may have changed."""
        for key in keys:
            yield from self._publish(key, self._load(key))


def _cover_list(cover: str) -> list[Any] | None:
    return None if cover == "0" else Counters(cover_minutes=Fraction(cover)).to_list()


def pool_minutes(roster: Roster, cat: OrderCatalogue, department_id: str, days: Iterable[date],
                 *, live: bool) -> Fraction:
    """The sum of a department's pools over days: for each member absent on a
    day, the plan they would have had. Every worker holds the roster and the orders, so
    the read side computes it without the department's state."""
    total = Fraction(0)
    members = roster.employees_of(department_id)
    for d in days:
        absent = sum(1 for e in members if d in roster.absences(e))
        if absent:
            total += exact(cat.day_plan(d, False, live)) * absent
    return total
