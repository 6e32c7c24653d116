"""HTTP views: the contract's API, guarded by bearer tokens, strict about its inputs.

Every view answers JSON errors `{"error": code, "detail": text}`; no stack trace ever
reaches a response. Reads are routed to the worker that owns the key's partition.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from processors.ticket import describe
from projections.employees import BadPeriod, parse_period
from streams.auth import Principal, TokenStore, bearer
from streams.openapi import openapi_document

if TYPE_CHECKING:
    from streams.app import KpiWorker

log = logging.getLogger("kpi.web")

ID_RE = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")


class ApiError(Exception):
    """Raised inside a view: becomes a JSON error response."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def register_web(worker: KpiWorker) -> None:
    """Add every view to the worker's Faust app."""
    app = worker.app
    s = worker.settings
    tokens = TokenStore(s.tokens_file) if s.auth_enabled else None

    class ApiView(View):
        """Method, body, parameter and token checks shared by every endpoint."""

        params: ClassVar[frozenset[str]] = frozenset()
        public: ClassVar[bool] = False
        scrape: ClassVar[bool] = False

        async def dispatch(self, request: Any) -> Any:
            try:
                if request.method not in ("GET", "HEAD"):
                    raise ApiError(405, "method_not_allowed", "read-only endpoint: use GET")
                if request.can_read_body or (request.content_length or 0) > 0:
                    raise ApiError(400, "body_not_allowed", "requests here take no body")
                unknown = sorted(set(request.query) - self.params)
                if unknown:
                    raise ApiError(400, "unknown_parameter",
                                   f"unknown query parameter(s): {', '.join(unknown)}")
                for name in set(request.query):
                    if len(request.query.getall(name)) > 1:
                        raise ApiError(400, "repeated_parameter", f"{name} given twice")
                for key, value in (request.match_info or {}).items():
                    if not ID_RE.match(value):
                        raise ApiError(400, "invalid_id",
                                       f"{key} must be 1-128 characters of A-Z a-z 0-9 . _ : @ -")
                request["principal"] = self._authenticate(request)
                return await super().dispatch(request)
            except ApiError as exc:
                return self.json({"error": exc.code, "detail": exc.detail}, status=exc.status)
            except Exception:  # never leak internals: log them, answer a plain 500
                log.exception("error serving %s", request.path)
                return self.json({"error": "internal", "detail": "internal error"}, status=500)

        def _authenticate(self, request: Any) -> Principal | None:
            if tokens is None or self.public:
                return None
            principal = tokens.authenticate(bearer(request.headers.get("Authorization")))
            if principal is None:
                raise ApiError(401, "unauthorized", "a valid bearer token is required")
            if self.scrape and not principal.may_scrape():
                raise ApiError(403, "forbidden", "this token may not read metrics")
            return principal

        def period(self, request: Request) -> Any:
            q = request.query
            try:
                if "date" in q and "month" in q:
                    raise BadPeriod("give either date or month, not both")
                if "date" in q:
                    if len(q["date"]) != 10:
                        raise BadPeriod(f"date must be YYYY-MM-DD, got {q['date']!r}")
                    return parse_period(q["date"])
                if "month" in q:
                    if len(q["month"]) != 7:
                        raise BadPeriod(f"month must be YYYY-MM, got {q['month']!r}")
                    return parse_period(q["month"])
                return parse_period(worker.today()[:7])
            except BadPeriod as exc:
                raise ApiError(400, "bad_period", str(exc)) from None

    def require(request: Request, allowed: Callable[[Principal], bool]) -> None:
        principal: Principal | None = request["principal"]  # type: ignore[index]
        if principal is not None and not allowed(principal):
            raise ApiError(403, "forbidden", "outside the scope of this token")

    @app.page("/health")
    class Health(ApiView):
        public = True

        async def get(self, request: Request) -> Response:
            ok, reason = worker.health()
            body = {"status": "ok" if ok else "unavailable", "reason": reason,
                    "generation": s.generation, "orders": len(worker.cat)}
            return self.json(body, status=200 if ok else 503)

    @app.page("/openapi.json")
    class OpenApi(ApiView):
        public = True

        async def get(self, request: Request) -> Response:
            return self.json(openapi_document())

    @app.page("/metrics")
    class Metrics(ApiView):
        scrape = True

        async def get(self, request: Request) -> Response:
            return self.bytes(generate_latest(worker.metrics.registry),
                              content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/kpi/employees/{employee_id}")
    class Employee(ApiView):
        params = frozenset({"date", "month"})

        @app.table_route(table=worker.employees_table, match_info="employee_id")  # type: ignore[arg-type]
        async def get(self, request: Request, employee_id: str) -> Response:
            period = self.period(request)
            reader = worker.employee_reader
            require(request, lambda p: p.may_read_employee(
                employee_id, worker.roster.department_of(employee_id)))
            if not reader.known(employee_id):
                raise ApiError(404, "unknown_employee",
                               f"no accepted event names employee {employee_id!r}")
            return self.json(reader.employee(employee_id, period, s.generation))

    @app.page("/kpi/departments/{department_id}")
    class Department(ApiView):
        params = frozenset({"date", "month"})

        async def get(self, request: Request, department_id: str) -> Response:
            period = self.period(request)
            require(request, lambda p: p.may_read_department(department_id))
            if department_id not in worker.roster.departments():
                raise ApiError(404, "unknown_department",
                               f"no registration names department {department_id!r}")
            return self.json(await worker.department(
                department_id, period, request.headers.get("Authorization")))

    @app.page("/internal/employees/{employee_id}")
    class EmployeeDetail(ApiView):
        """Worker-to-worker: an employee's object and numerators for a department view."""

        params = frozenset({"date", "month"})

        @app.table_route(table=worker.employees_table, match_info="employee_id")  # type: ignore[arg-type]
        async def get(self, request: Request, employee_id: str) -> Response:
            period = self.period(request)
            require(request, lambda p: p.may_read_employee(
                employee_id, worker.roster.department_of(employee_id)))
            return self.json(worker.employee_reader.detail(employee_id, period, s.generation))

    @app.page("/tickets/{ticket_id}")
    class Ticket(ApiView):
        @app.table_route(table=worker.tickets_table, match_info="ticket_id")  # type: ignore[arg-type]
        async def get(self, request: Request, ticket_id: str) -> Response:
            require(request, lambda p: p.may_read_tickets())
            found = worker.ticket_reader.view(ticket_id)
            if found is None:
                raise ApiError(404, "unknown_ticket", f"no event names ticket {ticket_id!r}")
            return self.json(describe(found[1], worker.cat, worker.live, worker.clock()))
