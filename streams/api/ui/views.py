"""The pages under /ui/: an employee's month, a department for its manager, and the
departments for operations.

Each page is a shell plus a fragment. The fragment (`/ui/f/...`, HTML) is checked like
the API (same tokens, same scopes) and routed to the worker owning the key. A browser
cannot send a token with a plain navigation, so with authentication on the shell holds
no figures: its script takes the token once (kept in sessionStorage for the tab), fetches
the fragment with an Authorization header and refreshes it every few seconds. With
authentication off (the demo) the shell is served with the fragment inside, readable
without JavaScript; the script then only refreshes it.
"""

from __future__ import annotations

from datetime import date
from importlib import resources
from typing import Any

from projections.employees import Period, parse_period
from streams.api.auth import Principal
from streams.api.listing import Incomplete
from streams.api.lists_web import Require, gather_tickets
from streams.api.readside import ReadSide
from streams.api.ui import render

POLL_SECONDS = 5.0
STATIC = {"ui.js": "text/javascript", "ui.css": "text/css"}
# The pages load only their own script and style: no inline script, nothing from elsewhere.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "connect-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
}


def _static(name: str) -> bytes:
    return resources.files("streams.api.ui").joinpath("static", name).read_bytes()


def month_days(worker: ReadSide, period: Period) -> list[date]:
    """The month's days up to today (all of them for a past month)."""
    today = date.fromisoformat(worker.today())
    return [d for d in period.days() if d <= today]


def employee_html(worker: ReadSide, employee_id: str, period: Period) -> str:
    gen = worker.settings.generation
    reader = worker.employee_reader
    m = reader.employee(employee_id, period, gen)
    days = [reader.employee(employee_id, parse_period(d.isoformat()), gen)
            for d in month_days(worker, period)]
    order = worker.cat.month_order(period.first.year, period.first.month, worker.live)
    goal = None if order is None else order.sla_goal_pct
    target = None if order is None else order.calls_per_hour_target
    return render.employee_fragment(m, days, len(period.days()), goal, target)


async def department_html(worker: ReadSide, department_id: str, period: Period,
                          authorization: str | None) -> str:
    d = await worker.department(department_id, period, authorization)
    risk = await gather_tickets(worker, authorization, department=department_id,
                                status="at_risk")
    return render.department_fragment(d, risk, period.is_month)


def home_html(worker: ReadSide, principal: Principal | None) -> str:
    depts = [(d, len(worker.roster.employees_of(d))) for d in sorted(worker.roster.departments())
             if principal is None or principal.may_read_department(d)]
    own = principal.employee_id if principal is not None else None
    return render.home_fragment(depts, own)


def register_ui(worker: ReadSide, base: Any, require: Require, error: type[Exception],
                auth: bool) -> None:
    """Add the pages to the worker's app (`base`, `require`, `error`: as for the API)."""
    routes = UiRoutes(worker, base, require, error, auth)
    routes.common()
    routes.employee()
    routes.department()


class UiRoutes:
    """The page views, in groups; the checks they share."""

    def __init__(self, worker: ReadSide, base: Any, require: Require,
                 error: type[Exception], auth: bool) -> None:
        self.worker, self.require, self.error = worker, require, error

        class Page(base):
            def page(self, title: str, content: str, status: int = 200) -> Any:
                html = render.shell(title=title, auth=auth, content=content,
                                    poll=POLL_SECONDS)
                return self.html(html, status=status, headers=PAGE_HEADERS)

            def fragment(self, content: str) -> Any:
                return self.html(content, headers=PAGE_HEADERS)

            async def inline(self, title: str, make: Any) -> Any:
                """A shell; with authentication off, with the figures inside (an error
                of the figures becomes a readable page with its status)."""
                if auth:
                    return self.page(title, render.no_script_note())
                try:
                    return self.page(title, await make())
                except error as exc:
                    status, detail = exc.status, exc.detail  # type: ignore[attr-defined]
                    return self.page(title, render.error_note(status, detail), status)

        class Shell(Page):
            public = True

        self.Page, self.Shell = Page, Shell

    def check_employee(self, request: Any, employee_id: str) -> None:
        w = self.worker
        self.require(request, lambda p: p.may_read_employee(
            employee_id, w.roster.department_of(employee_id)))
        if not w.employee_reader.known(employee_id):
            raise self.error(404, "unknown_employee",
                             f"no accepted event names employee {employee_id!r}")

    def month_of(self, view: Any, request: Any) -> Period:
        period: Period = view.period(request)
        if not period.is_month:
            raise self.error(400, "bad_period", "the employee page shows a month: give month=")
        return period

    async def department_content(self, view: Any, request: Any, department_id: str) -> str:
        w = self.worker
        period = view.period(request)
        self.require(request, lambda p: p.may_read_department(department_id))
        if department_id not in w.roster.departments():
            raise self.error(404, "unknown_department",
                             f"no registration names department {department_id!r}")
        try:
            return await department_html(w, department_id, period,
                                          request.headers.get("Authorization"))
        except Incomplete as exc:
            raise self.error(503, "owner_unavailable", f"{exc}; retry") from None

    def common(self) -> None:
        app, worker, error = self.worker.app, self.worker, self.error

        @app.page("/ui/static/{name}")
        class Static(self.Shell):  # type: ignore[name-defined]
            async def get(self, request: Any, name: str) -> Any:
                if name not in STATIC:
                    raise error(404, "not_found", "no such file")
                return self.text(_static(name).decode(), content_type=STATIC[name])

        @app.page("/ui/")
        class Home(self.Shell):  # type: ignore[name-defined]
            async def get(self, request: Any) -> Any:
                async def make() -> str:
                    return home_html(worker, None)
                return await self.inline("Departments", make)

        @app.page("/ui")
        class Root(self.Shell):  # type: ignore[name-defined]
            async def get(self, request: Any) -> Any:
                return self.html("", status=308, headers={"Location": "/ui/"})

        @app.page("/ui/f/home")
        class HomeFragment(self.Page):  # type: ignore[name-defined]
            async def get(self, request: Any) -> Any:
                return self.fragment(home_html(worker, request["principal"]))

    def employee(self) -> None:
        app, worker, routes = self.worker.app, self.worker, self
        table = worker.employees_table

        @app.page("/ui/employees/{employee_id}")
        class EmployeePage(self.Shell):  # type: ignore[name-defined]
            params = frozenset({"month"})

            @app.table_route(table=table, match_info="employee_id")  # type: ignore[arg-type]
            async def get(self, request: Any, employee_id: str) -> Any:
                async def make() -> str:
                    period = routes.month_of(self, request)
                    routes.check_employee(request, employee_id)
                    return employee_html(worker, employee_id, period)
                return await self.inline(f"Employee {employee_id}", make)

        @app.page("/ui/f/employees/{employee_id}")
        class EmployeeFragment(self.Page):  # type: ignore[name-defined]
            params = frozenset({"month"})

            @app.table_route(table=table, match_info="employee_id")  # type: ignore[arg-type]
            async def get(self, request: Any, employee_id: str) -> Any:
                period = routes.month_of(self, request)
                routes.check_employee(request, employee_id)
                return self.fragment(employee_html(worker, employee_id, period))

    def department(self) -> None:
        app, routes = self.worker.app, self

        @app.page("/ui/departments/{department_id}")
        class DepartmentPage(self.Shell):  # type: ignore[name-defined]
            params = frozenset({"month", "date"})

            async def get(self, request: Any, department_id: str) -> Any:
                async def make() -> str:
                    return await routes.department_content(self, request, department_id)
                return await self.inline(f"Department {department_id}", make)

        @app.page("/ui/f/departments/{department_id}")
        class DepartmentFragment(self.Page):  # type: ignore[name-defined]
            params = frozenset({"month", "date"})

            async def get(self, request: Any, department_id: str) -> Any:
                return self.fragment(
                    await routes.department_content(self, request, department_id))
