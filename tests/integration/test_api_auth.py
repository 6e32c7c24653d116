"""Access control and hardening of the API on a real worker with authentication on.

One worker serves the whole module: two departments (d-1: e-1, e-2; d-2: e-3), tickets
of e-1 and e-2 (d-1) and e-3 (d-2), and a token per role written with TokenStore into the
file the worker reads.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from streams.api.auth import TokenStore
from streams.devtools.broker import EmbeddedBroker
from tests import factory as f
from tests.integration.workers import (
    WorkerProc,
    fresh_prefix,
    metric,
    produce,
    role_tokens,
    wait_for,
)

pytestmark = pytest.mark.integration

DAY = "2026-11-02"


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    text: str

    @property
    def body(self) -> Any:
        return json.loads(self.text)


@dataclass
class Api:
    worker: WorkerProc
    store: TokenStore
    tokens: dict[str, str | None] = field(default_factory=dict)

    def call(self, method: str, path: str, token: str | None = None, *,
             body: bytes | None = None, headers: dict[str, str] | None = None) -> Reply:
        """A raw request: http.client sends the path as given (no normalisation of `..`)
        and lets a GET carry a body."""
        conn = http.client.HTTPConnection("127.0.0.1", self.worker.web_port, timeout=15)
        try:
            h = dict(headers or {})
            if token is not None:
                h["Authorization"] = f"Bearer {token}"
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            return Reply(r.status, r.headers, r.read().decode(errors="replace"))
        finally:
            conn.close()

    def get(self, path: str, role: str = "operations") -> Reply:
        return self.call("GET", path, self.tokens[role])

    def worker_today(self) -> str:
        """Today in the order's zone (Europe/Moscow), as the worker computes it."""
        return datetime.now(ZoneInfo("Europe/Moscow")).date().isoformat()


@pytest.fixture(scope="module")
def api(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("api-auth")
    prefix = fresh_prefix(broker)
    produce(broker, prefix, [
        f.order(),
        f.registered("e-1", "d-1"), f.registered("e-2", "d-1"), f.registered("e-3", "d-2"),
        f.opened("t-1", f"{DAY}T10:00:00+03:00", "e-1", decisions=["reactivation"],
                 dept="d-1"),
        f.opened("t-2", f"{DAY}T11:00:00+03:00", "e-3", decisions=["tariff_change"],
                 dept="d-2"),
        f.opened("t-3", f"{DAY}T12:00:00+03:00", "e-2", decisions=["router_reboot"],
                 dept="d-1"),
    ])
    store = TokenStore(tmp / "tokens.json")
    tokens = role_tokens(store)
    tokens["garbage"] = "kpi_00000000_not-a-real-token"
    revoked, rec = store.add("operations", label="revoked before start")
    store.revoke(rec.id)
    tokens["revoked"] = revoked
    env = {"KPI_AUTH_ENABLED": "true", "KPI_TOKENS_FILE": str(store.path)}
    w = WorkerProc(broker, prefix, tmp / "state", log_path=tmp / "worker.log", extra_env=env)
    w.start()
    a = Api(w, store, tokens)
    try:
        def ready() -> bool:
            e1, e3 = a.get("/kpi/employees/e-1?month=2026-11"), a.get("/kpi/employees/e-3")
            return (e1.status == 200 and e1.body["kpi_minutes"] > 0 and e3.status == 200
                    and a.get("/tickets/t-2").status == 200
                    and a.get("/tickets/t-3").status == 200
                    and a.get("/kpi/departments/d-2").status == 200)

        wait_for(ready, what="the events in the API")
        yield a
    finally:
        w.stop()


ROLES = ("employee", "manager_d1", "manager_d2", "operations", "metrics", "none", "garbage",
         "revoked")
# endpoint -> (path, status per role in ROLES order). The employee token is e-1's (d-1).
# A scoped token gets 403 for unknown ids too: only operations can tell unknown (404).
UNAUTH = (401, 401, 401)  # none, garbage, revoked
MATRIX: dict[str, tuple[str, tuple[int, ...]]] = {
    "employee self": (
        "/kpi/employees/e-1?month=2026-11", (200, 200, 403, 200, 403, *UNAUTH)),
    "employee, same department": (
        "/kpi/employees/e-2?date=2026-11-02", (403, 200, 403, 200, 403, *UNAUTH)),
    "employee, other department": (
        "/kpi/employees/e-3", (403, 403, 200, 200, 403, *UNAUTH)),
    "employee unknown": (
        "/kpi/employees/e-404", (403, 403, 403, 404, 403, *UNAUTH)),
    "department own": (
        "/kpi/departments/d-1?month=2026-11", (403, 200, 403, 200, 403, *UNAUTH)),
    "department other": (
        "/kpi/departments/d-2", (403, 403, 200, 200, 403, *UNAUTH)),
    "department unknown": (
        "/kpi/departments/d-404", (403, 403, 403, 404, 403, *UNAUTH)),
    "ticket the employee owns": (
        "/tickets/t-1", (200, 200, 403, 200, 403, *UNAUTH)),
    "ticket of a colleague": (
        "/tickets/t-3", (403, 200, 403, 200, 403, *UNAUTH)),
    "ticket of d-2": (
        "/tickets/t-2", (403, 403, 200, 200, 403, *UNAUTH)),
    "ticket unknown": (
        "/tickets/t-404", (403, 403, 403, 404, 403, *UNAUTH)),
    "internal detail": (
        "/internal/employees/e-1?month=2026-11", (200, 200, 403, 200, 403, *UNAUTH)),
    "metrics": (
        "/metrics", (403, 403, 403, 200, 200, *UNAUTH)),
    "health": ("/health", (200,) * 8),  # public: a bad token is ignored, not refused
    "openapi": ("/openapi.json", (200,) * 8),
}
CASES = [pytest.param(endpoint, role, status, id=f"{endpoint} / {role}")
         for endpoint, (_, statuses) in MATRIX.items()
         for role, status in zip(ROLES, statuses, strict=True)]


def assert_error(r: Reply, status: int, code: str | None = None) -> None:
    assert r.status == status, r.text
    assert r.headers.get_content_type() == "application/json"
    assert set(r.body) == {"error", "detail"}, r.text
    assert all(isinstance(v, str) for v in r.body.values())
    assert code is None or r.body["error"] == code, r.text
    for leak in ("Traceback", 'File "', "Exception", "/work/", "site-packages"):
        assert leak not in r.text


def assert_served(endpoint: str, r: Reply) -> None:
    """A 200 carries what was asked for, not just any body."""
    path = MATRIX[endpoint][0]
    if path.startswith("/kpi/employees/"):
        assert r.body["employee_id"] == path.split("/")[3].split("?")[0]
    elif path.startswith("/kpi/departments/"):
        members = {e["employee_id"] for e in r.body["employees"]}
        assert members == ({"e-1", "e-2"} if "d-1" in path else {"e-3"})
    elif path.startswith("/tickets/"):
        assert r.body["ticket_id"] == path.split("/")[2]
    elif path.startswith("/internal/"):
        assert r.body["employee"]["employee_id"] == "e-1"
    elif path == "/metrics":
        assert metric(r.text, "kpi_events_total", topic="tickets", type="ticket.opened") == 3
    elif path == "/health":
        assert r.body["status"] == "ok"
    else:
        assert r.body["openapi"].startswith("3.1")


@pytest.mark.parametrize("endpoint, role, status", CASES)
def test_role_against_endpoint(api: Api, endpoint: str, role: str, status: int) -> None:
    r = api.get(MATRIX[endpoint][0], role)
    if status == 200:
        assert r.status == 200, r.text
        assert_served(endpoint, r)
        return
    assert_error(r, status, {401: "unauthorized", 403: "forbidden"}.get(status))
    if status == 401:
        # RFC 6750: the challenge, and whether the token given was the problem.
        challenge = r.headers["WWW-Authenticate"]
        assert challenge.startswith("Bearer ")
        assert ('error="invalid_token"' in challenge) == (role != "none")


def test_every_response_forbids_caching(api: Api) -> None:
    for r in (api.get("/kpi/employees/e-1"), api.get("/tickets/t-404"), api.get("/nope", "none")):
        assert r.headers["Cache-Control"] == "no-store"
        assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_rotation_and_revocation_take_effect_at_once(api: Api) -> None:
    pid = api.worker.proc.pid if api.worker.proc else None
    old, old_rec = api.store.add("manager", departments=["d-2"], label="old")
    assert api.call("GET", "/kpi/departments/d-2", old).status == 200
    # Rotation: the new token works on the very next request, no polling.
    new, _ = api.store.add("manager", departments=["d-2"], label="new")
    assert api.call("GET", "/kpi/departments/d-2", new).status == 200
    api.store.revoke(old_rec.id)
    assert_error(api.call("GET", "/kpi/departments/d-2", old), 401, "unauthorized")
    assert api.call("GET", "/kpi/departments/d-2", new).status == 200
    # A second quick revocation in a row is seen too (same mtime tick, maybe reused inode).
    newer, newer_rec = api.store.add("operations", label="newer")
    assert api.call("GET", "/metrics", newer).status == 200
    api.store.revoke(newer_rec.id)
    assert_error(api.call("GET", "/metrics", newer), 401)
    assert api.worker.proc is not None and api.worker.proc.pid == pid  # no restart


def test_unreadable_tokens_file_fails_closed_without_internals(api: Api) -> None:
    path = api.store.path
    saved = path.read_bytes()
    try:
        path.write_text("{ not json")
        assert_error(api.get("/kpi/employees/e-1"), 500, "internal")
        assert api.get("/health").status == 200  # public: no token to check
    finally:
        path.write_bytes(saved)
    assert api.get("/kpi/employees/e-1").status == 200


@pytest.mark.parametrize("path, code", [
    ("/kpi/employees/e-1?dat=2026-11-02", "unknown_parameter"),
    ("/kpi/departments/d-1?month=2026-11&limit=5", "unknown_parameter"),
    ("/tickets/t-1?date=2026-11-02", "unknown_parameter"),
    ("/metrics?names=kpi_events_total", "unknown_parameter"),  # name[] is the filter
    ("/health?verbose=1", "unknown_parameter"),
    ("/kpi/employees/e-1?date=2026-11-02&date=2026-11-03", "repeated_parameter"),
    ("/kpi/departments/d-1?month=2026-11&month=2026-10", "repeated_parameter"),
])
def test_unknown_and_repeated_parameters(api: Api, path: str, code: str) -> None:
    assert_error(api.get(path), 400, code)


@pytest.mark.parametrize("path, code", [
    ("/kpi/employees/" + "e" * 129, "invalid_id"),
    ("/kpi/employees/e%00", "invalid_id"),
    ("/kpi/employees/e-1%0A", "invalid_id"),
    ("/kpi/employees/e%20", "invalid_id"),
    ("/kpi/employees/%C3%A9", "invalid_id"),
    ("/kpi/employees/.hidden", "invalid_id"),
    ("/kpi/employees/..%2F..%2Fetc%2Fpasswd", "invalid_id"),
    ("/tickets/t-1%3Cscript%3E", "invalid_id"),
    ("/kpi/departments/d-1;drop", "invalid_id"),
    ("/kpi/employees/../../etc/passwd", "invalid_path"),
    ("/kpi/employees/..", "invalid_path"),
    ("/kpi/employees/%2e%2e", "invalid_path"),
    ("/tickets/./t-1", "invalid_path"),
])
def test_bad_ids(api: Api, path: str, code: str) -> None:
    assert_error(api.get(path), 400, code)


def test_the_longest_id_is_still_an_id(api: Api) -> None:
    assert_error(api.get("/kpi/employees/" + "e" * 128), 404, "unknown_employee")


@pytest.mark.parametrize("query", [
    "date=2026-13-01", "date=2026-02-30", "date=yesterday", "date=2026-11-2", "date=",
    "date=2026-11", "month=2026-11-02", "month=2026-1", "month=0000-01",
    "date=%EF%BC%92%EF%BC%90%EF%BC%92%EF%BC%96-11-02",  # fullwidth digits
    "date=2026-11-02%0A", "date=2026-11-02&month=2026-11",
])
@pytest.mark.parametrize("base", ["/kpi/employees/e-1", "/kpi/departments/d-1"])
def test_malformed_periods(api: Api, base: str, query: str) -> None:
    assert_error(api.get(f"{base}?{query}"), 400, "bad_period")


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
@pytest.mark.parametrize("path", ["/kpi/employees/e-1", "/tickets/t-1", "/metrics", "/health"])
def test_write_methods_are_refused(api: Api, method: str, path: str) -> None:
    r = api.call(method, path, api.tokens["operations"], body=b"{}")
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("path", ["/kpi/employees/e-1", "/health", "/openapi.json"])
def test_a_get_with_a_body_is_refused(api: Api, path: str) -> None:
    r = api.call("GET", path, api.tokens["operations"], body=b'{"employee_id": "e-2"}',
                 headers={"Content-Type": "application/json"})
    assert_error(r, 400, "body_not_allowed")


def test_head_is_served_without_a_body(api: Api) -> None:
    r = api.call("HEAD", "/kpi/employees/e-1", api.tokens["operations"])
    assert r.status == 200 and r.text == ""
    assert r.headers.get_content_type() == "application/json"
    assert api.call("HEAD", "/kpi/employees/e-1").status == 401


def test_unknown_paths_answer_json(api: Api) -> None:
    assert_error(api.get("/kpi/employees/e-1/"), 404, "not_found")
    assert_error(api.get("/admin"), 404, "not_found")


def test_oversized_and_odd_tokens_are_plain_401s(api: Api) -> None:
    for header in ("Bearer " + "k" * 5000, "Basic dXNlcjpwYXNz", "Bearer", "bearer  ",
                   "Bearer kpi_\u00ff_x"):
        r = api.call("GET", "/kpi/employees/e-1", headers={"Authorization": header})
        assert_error(r, 401, "unauthorized")


@pytest.mark.parametrize("accept, content_type", [
    (None, "text/plain"),
    ("application/openmetrics-text; version=1.0.0", "application/openmetrics-text"),
    # A malformed version made prometheus_client's negotiation raise: the default format.
    ("application/openmetrics-text; version=abc", "text/plain"),
    ("text/plain; version=x.y", "text/plain"),
])
def test_metrics_negotiation(api: Api, accept: str | None, content_type: str) -> None:
    r = api.call("GET", "/metrics", api.tokens["metrics"],
                 headers={"Accept": accept} if accept else None)
    assert r.status == 200, r.text
    assert r.headers.get_content_type() == content_type
    assert "kpi_events_total" in r.text


def test_metrics_can_be_asked_for_named_series_only(api: Api) -> None:
    """prometheus_client's `name[]` filter: a poller reads two series without making the
    worker encode every employee's gauges."""
    token = api.tokens["metrics"]
    r = api.call("GET", "/metrics?name[]=kpi_events_total&name[]=kpi_dead_letters_total",
                 token)
    assert r.status == 200, r.text
    names = {line.split("{")[0].split(" ")[0] for line in r.text.splitlines()
             if line and not line.startswith("#")}
    assert names and names <= {"kpi_events_total", "kpi_dead_letters_total"}
    assert "kpi_employee_minutes" in api.call("GET", "/metrics", token).text
    r = api.call("GET", "/metrics?date=2026-11-02", token)
    assert r.status == 400 and "unknown_parameter" in r.text
    r = api.call("GET", "/metrics?name[]=false", token)  # no sample name is one word
    assert r.status == 400 and "invalid_parameter" in r.text


@pytest.mark.parametrize(("query", "says"), [
    ("date=2026-13-01", "'2026-13-01' has the right format but no such date exists"),
    ("date=2026-02-30", "'2026-02-30' has the right format but no such date exists"),
    ("month=2026-13", "'2026-13' has the right format but no such month exists"),
    ("date=2026-11-2", "date must be YYYY-MM-DD, got '2026-11-2'"),
])
def test_a_period_error_says_whether_the_format_or_the_date_is_wrong(
        api: Api, query: str, says: str) -> None:
    r = api.get(f"/kpi/employees/e-1?{query}")
    assert_error(r, 400, "bad_period")
    assert r.body["detail"].startswith(says), r.body


def test_a_tickets_due_at_carries_the_orders_offset(api: Api) -> None:
    body = api.get("/tickets/t-1").body
    dues = [t["due_at"] for t in body["sla"].values() if t["due_at"] is not None]
    assert dues, body  # the order gives t-1 targets, so some deadline is computed
    assert all(d.endswith("+03:00") for d in dues), body  # the order's zone: Europe/Moscow
    assert body["opened_at"].endswith("+03:00")


def test_month_objects_carry_their_figures_to_date(api: Api) -> None:
    past = api.get("/kpi/employees/e-1?month=2026-11").body
    # November is over for any run of this suite: all of it is to date.
    assert past["to_date_through"] == "2026-11-30"
    assert past["kpi_minutes_to_date"] == past["kpi_minutes"] == 12.5
    assert past["plan_minutes_to_date"] == past["plan_minutes"]
    assert past["attainment_to_date_pct"] == past["attainment_pct"]
    today = api.worker_today()
    current = api.get(f"/kpi/employees/e-1?month={today[:7]}").body
    assert current["to_date_through"] == today
    day = api.get(f"/kpi/employees/e-1?date={DAY}").body
    assert not {k for k in day if k.endswith("_to_date") or k.startswith("to_date")}
