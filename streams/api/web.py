"""HTTP views: the figures' API, guarded by bearer tokens, strict about its inputs.

Every response that is not a success is JSON `{"error": code, "detail": text}`, including
the router's own 404 and 405 (a middleware rewrites them); no stack trace ever reaches a
response. Reads are routed to the worker that owns the key's partition.

Order of checks: dot segments in the path (400), method (405), request shape (400: body,
parameter names, ids), token (401), parameter values (400), scope (403), existence (404).
Scope comes before existence, so a token learns nothing about ids outside its scope.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import date
from typing import Any, ClassVar, cast
from urllib.parse import unquote

import aiohttp
from aiohttp import web as aioweb
from faust.web import Request, Response, View
from faust.web.exceptions import WebError
from prometheus_client.exposition import (
    CONTENT_TYPE_PLAIN_0_0_4,
    choose_encoder,
    generate_latest,
)

from processors.ticket import describe
from projections.employees import BadPeriod, Period, parse_period
from streams.api.auth import Principal, TokenStore, bearer
from streams.api.export_format import filename, generation_of, to_csv
from streams.api.lists_web import register_lists
from streams.api.openapi import (
    ID_PATTERN,
    METRIC_NAME_PATTERN,
    openapi_document,
)
from streams.api.readside import ReadSide
from streams.api.ui.views import register_ui

log = logging.getLogger("kpi.web")

ID_RE = re.compile(ID_PATTERN)
METRIC_NAME = re.compile(METRIC_NAME_PATTERN)
# The request's shape (ASCII digits in place) is checked first and the calendar after, so
# "2026-13-01" is told that its date does not exist, not that its format is wrong.
# DATE_PATTERN and MONTH_PATTERN, which also exclude impossible months and days, document
# the accepted values in the OpenAPI document.
DATE_SHAPE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
MONTH_SHAPE = re.compile(r"^[0-9]{4}-[0-9]{2}$")
ALLOW = "GET, HEAD"
# Every response: figures decide pay, so no shared cache may keep them, and browsers
# must not second-guess the declared content type.
SECURITY_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
# The router's own errors: (code, detail) by status.
_HTTP_ERRORS = {404: ("not_found", "no such endpoint"),
                405: ("method_not_allowed", "read-only API: use GET or HEAD")}


class ApiError(Exception):
    """Raised inside a view: becomes a JSON error response."""

    def __init__(self, status: int, code: str, detail: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.headers = dict(headers or {})


def error_response(status: int, code: str, detail: str,
                   headers: Mapping[str, str] | None = None) -> aioweb.Response:
    return aioweb.json_response({"error": code, "detail": detail}, status=status,
                                headers=dict(headers or {}))


def _has_dot_segment(raw_path: str) -> bool:
    """`.` or `..` as a path segment, plain or percent-encoded. The router would resolve
    them away and answer for another path; refuse them instead."""
    path = raw_path.split("?", 1)[0]
    return any(unquote(seg) in (".", "..") for seg in path.split("/"))


@aioweb.middleware
async def json_errors(request: aioweb.Request,
                      handler: Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]
                      ) -> aioweb.StreamResponse:
    """The router's own errors (unknown path, method) as JSON, a last-resort 500, and the
    security headers on everything."""
    resp: aioweb.StreamResponse
    if _has_dot_segment(request.raw_path):
        resp = error_response(400, "invalid_path", "dot segments are not allowed in paths")
    else:
        try:
            resp = await handler(request)
        except aioweb.HTTPException as exc:
            if exc.status < 400:
                raise
            code, detail = _HTTP_ERRORS.get(exc.status, ("http_error", exc.reason))
            headers = {"Allow": ALLOW} if exc.status == 405 else {}
            resp = error_response(exc.status, code, detail, headers)
        except Exception:  # the views catch their own; this is for anything in between
            log.exception("error serving %r", request.path)
            resp = error_response(500, "internal", "internal error")
    for name, value in SECURITY_HEADERS.items():
        resp.headers.setdefault(name, value)
    return resp


def _install_middleware(worker: ReadSide) -> None:
    web_app = getattr(worker.app.web, "web_app", None)
    if web_app is None:  # another web driver: the views still answer JSON themselves
        log.warning("web driver without an aiohttp app: router errors stay plain text")
        return
    web_app.middlewares.append(json_errors)


class ApiView(View):
    """Method, body, parameter and token checks shared by every endpoint; `worker` and
    `tokens` are bound by `register_web` on a subclass per worker."""

    worker: ClassVar[ReadSide]
    tokens: ClassVar[TokenStore | None] = None
    params: ClassVar[frozenset[str]] = frozenset()
    repeatable: ClassVar[frozenset[str]] = frozenset()  # params that may come many times
    public: ClassVar[bool] = False
    scrape: ClassVar[bool] = False

    async def dispatch(self, request: Any) -> Any:
        try:
            if request.method not in ("GET", "HEAD"):
                # The router only routes GET and HEAD here; this guards any other way in.
                raise ApiError(405, "method_not_allowed", "read-only endpoint: use GET",
                               {"Allow": ALLOW})
            if request.can_read_body or (request.content_length or 0) > 0:
                raise ApiError(400, "body_not_allowed", "requests here take no body")
            unknown = sorted(set(request.query) - self.params)
            if unknown:
                raise ApiError(400, "unknown_parameter",
                               f"unknown query parameter(s): {', '.join(unknown)}")
            for name in set(request.query) - self.repeatable:
                if len(request.query.getall(name)) > 1:
                    raise ApiError(400, "repeated_parameter", f"{name} given twice")
            for key, value in (request.match_info or {}).items():
                if not ID_RE.fullmatch(value):
                    raise ApiError(400, "invalid_id",
                                   f"{key} must be 1-128 characters of A-Z a-z 0-9 . _ : "
                                   "@ -, not starting with a dot")
            request["principal"] = self._authenticate(request)
            return await super().dispatch(request)
        except ApiError as exc:
            return self._error(exc.status, exc.code, exc.detail, exc.headers)
        except (TimeoutError, aiohttp.ClientError) as exc:
            # Reaching the worker that owns the key failed (it stopped, or moved): an
            # expected moment of a rebalance, one line without a traceback.
            log.warning("owner of %r unreachable: %s", request.path,
                        exc.__class__.__name__)
            return self._error(503, "owner_unavailable",
                               "the worker owning this key cannot be reached; retry")
        except Exception:  # never leak internals: log them, answer a plain 500
            log.exception("error serving %r", request.path)
            return self._error(500, "internal", "internal error")

    async def on_request_error(self, request: Request, exc: WebError) -> Response:
        """Faust's own errors (ServiceUnavailable while the table's owner is unknown,
        during a rebalance) in our error format rather than Faust's."""
        code = re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()
        return self._error(int(exc.code), code, str(exc.detail))

    def _error(self, status: int, code: str, detail: str,
               headers: Mapping[str, str] | None = None) -> Response:
        return self.json({"error": code, "detail": detail}, status=status,
                         headers=dict(headers or {}))

    def _authenticate(self, request: Any) -> Principal | None:
        if self.tokens is None or self.public:
            return None
        given = bearer(request.headers.get("Authorization"))
        principal = self.tokens.authenticate(given)
        if principal is None:
            challenge = 'Bearer realm="kpi"'
            if given:
                challenge += ', error="invalid_token"'
            raise ApiError(401, "unauthorized", "a valid bearer token is required",
                           {"WWW-Authenticate": challenge})
        if self.scrape and not principal.may_scrape():
            raise ApiError(403, "forbidden", "this token may not read metrics")
        return principal

    def period(self, request: Request) -> Period:
        """date=YYYY-MM-DD or month=YYYY-MM (ASCII digits, a real day), or this month;
        with today's local date, so that month objects carry their figures to date."""
        found = self._period(request)
        return dataclasses.replace(found, today=date.fromisoformat(self.worker.today()))

    def _period(self, request: Request) -> Period:
        q = request.query
        try:
            if "date" in q and "month" in q:
                raise BadPeriod("give either date or month, not both")
            if "date" in q:
                if not DATE_SHAPE.fullmatch(q["date"]):
                    raise BadPeriod(f"date must be YYYY-MM-DD, got {q['date']!r}")
                return parse_period(q["date"])
            if "month" in q:
                if not MONTH_SHAPE.fullmatch(q["month"]):
                    raise BadPeriod(f"month must be YYYY-MM, got {q['month']!r}")
                return parse_period(q["month"])
            return parse_period(self.worker.today()[:7])
        except BadPeriod as exc:
            raise ApiError(400, "bad_period", str(exc)) from None


def require(request: Request, allowed: Callable[[Principal], bool]) -> None:
    principal: Principal | None = request["principal"]  # type: ignore[index]
    if principal is not None and not allowed(principal):
        raise ApiError(403, "forbidden", "outside the scope of this token")


Page = Callable[[str], Callable[[type[ApiView]], type[ApiView]]]


def register_web(worker: ReadSide) -> None:
    """Add every view to the worker's Faust app."""
    s = worker.settings
    tokens = TokenStore(s.tokens_file) if s.auth_enabled else None

    def page(path: str) -> Callable[[type[ApiView]], type[ApiView]]:
        """`app.page`, binding the view to this worker and its tokens."""
        def register(view: type[ApiView]) -> type[ApiView]:
            view.worker, view.tokens = worker, tokens
            return cast(type[ApiView], worker.app.page(path)(view))
        return register

    _install_middleware(worker)
    _service_pages(worker, page)
    _figure_pages(worker, page)
    _detail_pages(worker, page)
    # The list and page views subclass a view already bound to this worker and its tokens.
    bound = cast(type[ApiView], type("BoundApiView", (ApiView,),
                                     {"worker": worker, "tokens": tokens}))
    register_lists(worker, bound, require, ApiError)
    register_ui(worker, bound, require, ApiError, tokens is not None)


def _service_pages(worker: ReadSide, page: Page) -> None:
    """Health, this API's OpenAPI document and the Prometheus metrics."""
    s = worker.settings

    @page("/health")
    class Health(ApiView):
        public = True

        async def get(self, request: Request) -> Response:
            ok, reason = worker.health()
            body = {"status": "ok" if ok else "unavailable", "reason": reason,
                    "generation": s.generation, "orders": len(worker.cat)}
            return self.json(body, status=200 if ok else 503)

    @page("/openapi.json")
    class OpenApi(ApiView):
        public = True

        async def get(self, request: Request) -> Response:
            return self.json(openapi_document())

    @page("/metrics")
    class Metrics(ApiView):
        scrape = True
        # prometheus_client's own filter: ?name[]=kpi_events_total&name[]=... exposes only
        # those series (a progress poll need not encode every employee's gauges)
        params = frozenset({"name[]"})
        repeatable = frozenset({"name[]"})

        async def get(self, request: Request) -> Response:
            # Prometheus' own negotiation: OpenMetrics when asked for, else the text format.
            try:
                encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
            except (TypeError, ValueError):  # it chokes on a malformed version=...
                encoder, content_type = generate_latest, CONTENT_TYPE_PLAIN_0_0_4
            # In a thread: with thousands of employees' gauges the exposition takes a good
            # fraction of a second (0.2 s for 10,000 employees here), which on the event
            # loop would stall every agent once per scrape; in a thread the loop keeps its
            # turns at the GIL (prometheus_client is thread-safe).
            registry: Any = worker.metrics.registry
            names = cast(Any, request.query).getall("name[]", [])
            bad = [n for n in names if not METRIC_NAME.fullmatch(n)]
            if bad:
                raise ApiError(400, "invalid_parameter",
                               f"name[]: not a metric's sample name: {bad[0][:80]!r}")
            if names:
                registry = registry.restricted_registry(names)
            body = await asyncio.to_thread(encoder, registry)
            return self.bytes(body, headers={"Content-Type": content_type})


def _figure_pages(worker: ReadSide, page: Page) -> None:
    """The figures of an employee and of a department (each read on the worker owning it)."""
    app, s = worker.app, worker.settings

    @page("/kpi/employees/{employee_id}")
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

    @page("/kpi/departments/{department_id}")
    class Department(ApiView):
        params = frozenset({"date", "month"})

        async def get(self, request: Request, department_id: str) -> Response:
            period = self.period(request)
            require(request, lambda p: p.may_read_department(department_id))
            if department_id not in worker.roster.departments():
                raise ApiError(404, "unknown_department",
                               f"no registration names department {department_id!r}")
            body = await worker.department(department_id, period,
                                           request.headers.get("Authorization"))
            if "text/csv" in request.headers.get("Accept", ""):
                return self.payroll(body, period, department_id)
            return self.json(body)

        def payroll(self, body: dict[str, Any], period: Period, department_id: str
                    ) -> Response:
            """The payroll file of a department's month (see export_format)."""
            if not period.is_month:
                raise ApiError(400, "bad_period", "the payroll file is by month: give month=")
            rows = body["employees"]
            try:
                name = filename(period.text, generation_of(rows), department_id, "csv")
            except ValueError as exc:
                raise ApiError(503, "generation_switch", str(exc)) from None
            return self.text(to_csv(rows), content_type="text/csv", headers={
                "Content-Disposition": f'attachment; filename="{name}"'})


def _detail_pages(worker: ReadSide, page: Page) -> None:
    """A ticket, and an employee's detail for another worker's department view."""
    app, s = worker.app, worker.settings

    @page("/internal/employees/{employee_id}")
    class EmployeeDetail(ApiView):
        """Worker-to-worker: an employee's object and numerators for a department view.

        Called with the client's own token, so it grants nothing the employee view does not.
        """

        params = frozenset({"date", "month"})

        @app.table_route(table=worker.employees_table, match_info="employee_id")  # type: ignore[arg-type]
        async def get(self, request: Request, employee_id: str) -> Response:
            period = self.period(request)
            require(request, lambda p: p.may_read_employee(
                employee_id, worker.roster.department_of(employee_id)))
            return self.json(worker.employee_reader.detail(employee_id, period, s.generation))

    @page("/tickets/{ticket_id}")
    class Ticket(ApiView):
        @app.table_route(table=worker.tickets_table, match_info="ticket_id")  # type: ignore[arg-type]
        async def get(self, request: Request, ticket_id: str) -> Response:
            found = worker.ticket_reader.view(ticket_id)
            # The scope depends on the ticket's department, so look first; an unknown ticket
            # has no department and is refused like one outside the scope (no 404 oracle).
            require(request, lambda p: p.may_read_ticket(
                found[1].department_id if found is not None else None,
                found[1].participants() if found is not None else frozenset()))
            if found is None:
                raise ApiError(404, "unknown_ticket", f"no event names ticket {ticket_id!r}")
            return self.json(describe(found[1], worker.cat, worker.live, worker.clock()))
