"""Who works where and when they are absent: a small registry every worker holds in full."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime

from schemas.events import EmployeeAbsent, EmployeeRegistered, Event


@dataclass(frozen=True, slots=True)
class Registration:
    occurred_at: datetime
    event_id: str
    department_id: str
    line: int
    name: str


class Roster:
    """Registrations (latest wins, by occurred_at then event_id) and absence dates."""

    def __init__(self) -> None:
        self._reg: dict[str, Registration] = {}
        self._absent: defaultdict[str, set[date]] = defaultdict(set)
        self._seen: set[str] = set()

    def apply(self, ev: Event) -> bool:
        """Apply a roster event; True when it changed anything (duplicates change nothing)."""
        eid = str(ev.event_id)
        if eid in self._seen:
            return False
        self._seen.add(eid)
        if isinstance(ev, EmployeeRegistered):
            new = Registration(ev.occurred_at, eid, ev.department_id, ev.line, ev.name)
            old = self._reg.get(ev.employee_id)
            if old is None or (new.occurred_at, new.event_id) > (old.occurred_at, old.event_id):
                self._reg[ev.employee_id] = new
                return True
            return False
        if isinstance(ev, EmployeeAbsent):
            days = self._absent[ev.employee_id]
            if ev.date in days:
                return False
            days.add(ev.date)
            return True
        return False

    def department_of(self, employee_id: str) -> str | None:
        reg = self._reg.get(employee_id)
        return reg.department_id if reg else None

    def registered(self, employee_id: str) -> bool:
        return employee_id in self._reg

    def absences(self, employee_id: str) -> set[date]:
        return self._absent.get(employee_id, set())

    def employees_of(self, department_id: str) -> list[str]:
        return sorted(e for e, r in self._reg.items() if r.department_id == department_id)

    def departments(self) -> set[str]:
        return {r.department_id for r in self._reg.values()}

    def employees(self) -> list[str]:
        return sorted(self._reg)
