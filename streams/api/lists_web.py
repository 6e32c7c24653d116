"""The list endpoints: departments, a department's employees, and tickets by department
or by employee, paged, under the same scopes as the objects they list."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from streams.api.auth import Principal
from streams.api.listing import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    STATUSES,
    Incomplete,
    local_tickets,
    merge,
    page,
    worker_urls,
)
from streams.api.openapi import LIMIT_PATTERN, OFFSET_PATTERN
from streams.api.readside import ReadSide

LIMIT_RE, OFFSET_RE = re.compile(LIMIT_PATTERN), re.compile(OFFSET_PATTERN)
Require = Callable[[Any, Callable[[Principal], bool]], None]


def paging(request: Any, error: type[Exception]) -> tuple[int, int]:
    """offset and limit from the query, as the API document's patterns allow them;
    `error(400, ...)` otherwise."""
    out = []
    for name, default, pattern, bound in (("offset", "0", OFFSET_RE, "below 10^9"),
                                          ("limit", str(DEFAULT_LIMIT), LIMIT_RE,
                                           f"1-{MAX_LIMIT}")):
        text = request.query.get(name, default)
        if not pattern.fullmatch(text):
            raise error(400, "invalid_parameter",
                        f"{name} must be a whole number {bound}, got {text[:20]!r}")
        out.append(int(text))
    return out[0], out[1]


async def gather_tickets(worker: ReadSide, authorization: str | None, *,
                         department: str | None = None, employee: str | None = None,
                         status: str = "all") -> list[dict[str, Any]]:
    """Every worker's matching tickets, merged and sorted (Incomplete if not all there)."""
    query = f"department={department}" if department is not None else f"employee={employee}"
    at_risk = status == "at_risk"
    if at_risk:
        query += "&status=at_risk"
    headers = {"Authorization": authorization} if authorization else {}

    async def ask(url: str | None) -> dict[str, Any]:
        if url is None:
            return await local_tickets(worker, department=department, employee=employee,
                                       at_risk=at_risk)
        async with worker.app.http_client.get(f"{url}/internal/tickets?{query}",
                                              headers=headers) as resp:
            if resp.status != 200:
                raise Incomplete(f"a worker answered {resp.status}")
            answer: dict[str, Any] = await resp.json()
            return answer

    answers = await asyncio.gather(*(ask(u) for u in worker_urls(worker)))
    return merge(answers, worker.settings.partitions, status)


def status_of(request: Any, error: type[Exception]) -> str:
    status = request.query.get("status", "all")
    if status not in STATUSES:
        raise error(400, "invalid_parameter", f"status must be one of {', '.join(STATUSES)}")
    return str(status)


def register_lists(worker: ReadSide, base: Any, require: Require,
                   error: type[Exception]) -> None:
    """Add the list views to the worker's app. `base` is the API's view class (its method,
    parameter and token checks), `require` its scope check, `error` its ApiError."""
    _department_lists(worker, base, require, error)
    _ticket_lists(worker, base, require, error)
    _internal_tickets(worker, base, require, error)


def _department_lists(worker: ReadSide, base: Any, require: Require,
                      error: type[Exception]) -> None:
    app = worker.app

    @app.page("/kpi/departments")
    class Departments(base):
        params = frozenset({"offset", "limit"})

        async def get(self, request: Any) -> Any:
            offset, limit = paging(request, error)
            principal: Principal | None = request["principal"]
            ids = sorted(d for d in worker.roster.departments()
                         if principal is None or principal.may_read_department(d))
            items = [{"department_id": d, "employees": len(worker.roster.employees_of(d)),
                      "href": f"/kpi/departments/{d}"} for d in ids]
            return self.json(page(items, offset, limit, "/kpi/departments"))

    @app.page("/kpi/departments/{department_id}/employees")
    class DepartmentEmployees(base):
        params = frozenset({"offset", "limit"})

        async def get(self, request: Any, department_id: str) -> Any:
            offset, limit = paging(request, error)
            require(request, lambda p: p.may_read_department(department_id))
            if department_id not in worker.roster.departments():
                raise error(404, "unknown_department",
                            f"no registration names department {department_id!r}")
            items = [{"employee_id": e, "href": f"/kpi/employees/{e}"}
                     for e in sorted(worker.roster.employees_of(department_id))]
            path = f"/kpi/departments/{department_id}/employees"
            return self.json(page(items, offset, limit, path))


def _ticket_lists(worker: ReadSide, base: Any, require: Require,
                  error: type[Exception]) -> None:
    app = worker.app

    async def tickets_page(request: Any, path: str, **who: str) -> Any:
        status = status_of(request, error)
        offset, limit = paging(request, error)
        try:
            rows = await gather_tickets(worker, request.headers.get("Authorization"),
                                        status=status, **who)
        except Incomplete as exc:
            raise error(503, "owner_unavailable", f"{exc}; retry") from None
        return page(rows, offset, limit, f"{path}?status={status}")

    @app.page("/kpi/departments/{department_id}/tickets")
    class DepartmentTickets(base):
        params = frozenset({"offset", "limit", "status"})

        async def get(self, request: Any, department_id: str) -> Any:
            require(request, lambda p: p.may_read_department(department_id))
            if department_id not in worker.roster.departments():
                raise error(404, "unknown_department",
                            f"no registration names department {department_id!r}")
            body = await tickets_page(request, f"/kpi/departments/{department_id}/tickets",
                                      department=department_id)
            return self.json({"department_id": department_id, **body})

    @app.page("/kpi/employees/{employee_id}/tickets")
    class EmployeeTickets(base):
        params = frozenset({"offset", "limit", "status"})

        async def get(self, request: Any, employee_id: str) -> Any:
            require(request, lambda p: p.may_read_employee(
                employee_id, worker.roster.department_of(employee_id)))
            body = await tickets_page(request, f"/kpi/employees/{employee_id}/tickets",
                                      employee=employee_id)
            if body["total"] == 0 and not worker.roster.registered(employee_id):
                raise error(404, "unknown_employee",
                            f"no registration and no ticket names employee {employee_id!r}")
            return self.json({"employee_id": employee_id, **body})


def _internal_tickets(worker: ReadSide, base: Any, require: Require,
                      error: type[Exception]) -> None:
    app = worker.app

    @app.page("/internal/tickets")
    class InternalTickets(base):
        """Worker-to-worker: the matching tickets of this worker's partitions. Called with
        the client's own token and checked like the list it feeds."""

        params = frozenset({"department", "employee", "status"})

        async def get(self, request: Any) -> Any:
            q = request.query
            if ("department" in q) == ("employee" in q):
                raise error(400, "invalid_parameter", "give one of department or employee")
            at_risk = status_of(request, error) == "at_risk"
            if "department" in q:
                dept = q["department"]
                require(request, lambda p: p.may_read_department(dept))
                found = await local_tickets(worker, department=dept, employee=None,
                                            at_risk=at_risk)
            else:
                emp = q["employee"]
                require(request, lambda p: p.may_read_employee(
                    emp, worker.roster.department_of(emp)))
                found = await local_tickets(worker, department=None, employee=emp,
                                            at_risk=at_risk)
            return self.json(found)
