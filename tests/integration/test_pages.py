"""The list endpoints, the payroll CSV and the /ui/ pages on a real worker with tokens.

One worker serves the module: d-1 (e-1, e-2) and d-2 (e-3); open tickets long past their
SLA targets (at risk), and one resolved. The browser tests drive headless Chromium with
Selenium; they skip, saying why, where Chromium, its driver or Selenium is missing.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.admin import create_topics
from streams.api.auth import TokenStore
from streams.devtools.broker import EmbeddedBroker
from tests import factory as f
from tests.integration.test_api_auth import Api
from tests.integration.workers import (
    WorkerProc,
    produce,
    role_tokens,
    settings_for,
    unique_prefix,
    wait_for,
)

pytestmark = pytest.mark.integration

DAY = "2026-11-02"
MONTH = "2026-11"


@pytest.fixture(scope="module")
def api(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("pages")
    prefix = unique_prefix()
    create_topics(settings_for(broker, prefix))
    produce(broker, prefix, [
        f.order(),
        f.registered("e-1", "d-1"), f.registered("e-2", "d-1"), f.registered("e-3", "d-2"),
        f.opened("t-1", f"{DAY}T10:00:00+03:00", "e-1", decisions=["reactivation"],
                 dept="d-1", priority="P1"),
        f.opened("t-2", f"{DAY}T11:00:00+03:00", "e-3", decisions=["tariff_change"],
                 dept="d-2"),
        f.opened("t-3", f"{DAY}T12:00:00+03:00", "e-2", decisions=["tariff_change"],
                 dept="d-1"),
        f.resolved("t-3", f"{DAY}T12:30:00+03:00", "e-2"),
        f.call("e-1", f"{DAY}T13:00:00+03:00"),
    ])
    store = TokenStore(tmp / "tokens.json")
    tokens = role_tokens(store)
    env = {"KPI_AUTH_ENABLED": "true", "KPI_TOKENS_FILE": str(store.path)}
    w = WorkerProc(broker, prefix, tmp / "state", log_path=tmp / "worker.log", extra_env=env)
    w.start()
    a = Api(w, store, tokens)
    a.prefix = prefix  # type: ignore[attr-defined]
    try:
        def ready() -> bool:
            r = a.get("/kpi/departments/d-1/tickets")
            return r.status == 200 and r.body["total"] == 2 and a.get(
                "/kpi/departments/d-2/tickets").body.get("total") == 1
        wait_for(ready, what="the tickets in the lists")
        yield a
    finally:
        w.stop()


LISTS = {
    # path: status per role (employee e-1, manager d-1, manager d-2, operations, metrics, none)
    "/kpi/departments/d-1/tickets": (403, 200, 403, 200, 403, 401),
    "/kpi/departments/d-1/employees": (403, 200, 403, 200, 403, 401),
    "/kpi/employees/e-1/tickets": (200, 200, 403, 200, 403, 401),
    "/kpi/employees/e-3/tickets": (403, 403, 200, 200, 403, 401),
    "/kpi/departments": (200, 200, 200, 200, 200, 401),
    "/internal/tickets?department=d-2": (403, 403, 200, 200, 403, 401),
    "/ui/f/departments/d-1": (403, 200, 403, 200, 403, 401),
    "/ui/f/employees/e-1?month=2026-11": (200, 200, 403, 200, 403, 401),
}


@pytest.mark.parametrize("path", sorted(LISTS))
def test_list_scopes(api: Api, path: str) -> None:
    roles = ("employee", "manager_d1", "manager_d2", "operations", "metrics", "none")
    got = tuple(api.call("GET", path, api.tokens[r]).status for r in roles)
    assert got == LISTS[path]


def test_department_tickets_open_first_with_sla_state(api: Api) -> None:
    body = api.get("/kpi/departments/d-1/tickets").body
    assert [t["ticket_id"] for t in body["items"]] == ["t-1", "t-3"]
    first, last = body["items"]
    assert first["open"] and first["sla_state"] == "breached" and first["at_risk"]
    assert first["minutes_left"] < 0 and first["owner"] == "e-1"
    assert not last["open"] and last["status"] == "resolved" and not last["at_risk"]
    at_risk = api.get("/kpi/departments/d-1/tickets?status=at_risk").body
    assert [t["ticket_id"] for t in at_risk["items"]] == ["t-1"]
    mine = api.get("/kpi/employees/e-1/tickets", "employee").body
    assert [t["ticket_id"] for t in mine["items"]] == ["t-1"]


def test_lists_match_their_documented_schemas(api: Api) -> None:
    from tests.unit.streams.test_openapi import assert_conforms

    assert_conforms("TicketList", api.get("/kpi/departments/d-1/tickets").body)
    assert_conforms("TicketList", api.get("/kpi/employees/e-1/tickets").body)
    assert_conforms("EmployeeList", api.get("/kpi/departments/d-1/employees").body)
    assert_conforms("DepartmentList", api.get("/kpi/departments").body)
    assert api.get("/kpi/employees/nobody/tickets").status == 404


def test_paging(api: Api) -> None:
    p1 = api.get("/kpi/departments/d-1/employees?limit=1").body
    assert p1["total"] == 2 and [e["employee_id"] for e in p1["items"]] == ["e-1"]
    p2 = api.get(p1["next"]).body
    assert [e["employee_id"] for e in p2["items"]] == ["e-2"] and p2["next"] is None
    assert api.get("/kpi/departments/d-1/tickets?limit=0").status == 400
    assert api.get("/kpi/departments/d-1/tickets?status=late").status == 400
    mgr = api.get("/kpi/departments", "manager_d2").body
    assert [d["department_id"] for d in mgr["items"]] == ["d-2"]


def test_payroll_csv_matches_the_api(api: Api) -> None:
    path = f"/kpi/departments/d-1?month={MONTH}"
    token = api.tokens["manager_d1"]
    r = api.call("GET", path, token, headers={"Accept": "text/csv"})
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
    assert "generation-1" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    dept = api.call("GET", path, token).body
    assert [row["employee_id"] for row in rows] == [e["employee_id"] for e in dept["employees"]]
    e1 = next(e for e in dept["employees"] if e["employee_id"] == "e-1")
    row = rows[0]
    assert row["kpi_minutes"] == str(e1["kpi_minutes"])
    assert row["bonus.reason"] == e1["bonus"]["reason"]
    assert {f"bonus.{k}" for k in e1["bonus"]} <= set(row)
    assert row["generation"] == str(e1["generation"])
    day = api.call("GET", f"/kpi/departments/d-1?date={DAY}", token,
                   headers={"Accept": "text/csv"})
    assert day.status == 400
    assert api.call("GET", path, api.tokens["manager_d2"],
                    headers={"Accept": "text/csv"}).status == 403


def test_pages_are_served_without_figures_when_auth_is_on(api: Api) -> None:
    r = api.call("GET", "/ui/employees/e-1")
    assert r.status == 200 and "Sign in" in r.text and "data-field" not in r.text
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert api.call("GET", "/ui").headers["Location"] == "/ui/"
    home = api.call("GET", "/ui/f/home", api.tokens["manager_d2"])
    assert 'href="/ui/departments/d-2"' in home.text and "d-1" not in home.text
    js = api.call("GET", "/ui/static/ui.js")
    assert js.status == 200 and "sessionStorage" in js.text


def test_kpi_export_writes_the_api_numbers(api: Api, tmp_path: Path) -> None:
    out = tmp_path / "payroll.csv"
    env = {**os.environ, "KPI_TOKEN": api.tokens["operations"] or ""}
    r = subprocess.run([sys.executable, "-m", "streams.cli", "export", "--month", MONTH,
                        "--url", api.worker.base, "--out", str(out)],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "export: 2/2 departments" in r.stderr
    rows = list(csv.DictReader(out.open()))
    api_rows = [e for d in ("d-1", "d-2")
                for e in api.get(f"/kpi/departments/{d}?month={MONTH}").body["employees"]]
    assert [(x["employee_id"], x["kpi_minutes"], x["bonus.reason"]) for x in rows] == [
        (e["employee_id"], str(e["kpi_minutes"]), e["bonus"]["reason"]) for e in api_rows]
    env["KPI_TOKEN"] = api.tokens["manager_d2"] or ""
    js = subprocess.run([sys.executable, "-m", "streams.cli", "export", "--month", MONTH,
                         "--url", api.worker.base, "--format", "json"],
                        env=env, capture_output=True, text=True, timeout=60)
    doc = json.loads(js.stdout)
    assert doc["departments"] == ["d-2"] and doc["generation"] == 1
    assert [e["employee_id"] for e in doc["employees"]] == ["e-3"]
    env["KPI_TOKEN"] = "kpi_00000000_wrong"
    bad = subprocess.run([sys.executable, "-m", "streams.cli", "export", "--month", MONTH,
                          "--url", api.worker.base], env=env, capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 1 and "401" in bad.stderr and "Traceback" not in bad.stderr


# -- the browser ----------------------------------------------------------------------

CHROMIUM = os.environ.get("KPI_CHROMIUM", "/usr/bin/chromium")
DRIVER = os.environ.get("KPI_CHROMEDRIVER", "/usr/bin/chromedriver")


def _browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    for path, pkg in ((CHROMIUM, "chromium"), (DRIVER, "chromium-driver")):
        if not (Path(path).exists() or shutil.which(path)):
            return f"{path} not found: install Debian's {pkg} package (.ci/run does)"
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    why = _browser_missing()
    if why:
        pytest.skip(f"browser tests skipped: {why}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        yield drv
    finally:
        drv.quit()


def _sign_in(drv: Any, api: Api, path: str, role: str) -> None:
    from selenium.webdriver.common.by import By

    drv.get(api.worker.base + path)
    drv.execute_script("sessionStorage.clear()")
    drv.refresh()
    wait_for(lambda: drv.find_element(By.ID, "token").is_displayed(), 30, what="sign-in form")
    drv.find_element(By.ID, "token").send_keys(api.tokens[role])
    drv.find_element(By.CSS_SELECTOR, "#signin-form button").click()


def _fields(drv: Any) -> dict[str, str]:
    """Every figure on the page at one instant (one script call: a refresh may replace
    the content between two element reads)."""
    got: dict[str, str] = drv.execute_script(
        "var o = {}; document.querySelectorAll('#content [data-field]').forEach("
        "function (e) { o[e.dataset.field] = e.textContent; }); return o;")
    return got


def _text(value: Any) -> str:
    return "–" if value is None else str(value)


def test_employee_page_shows_the_api_numbers_and_updates_live(api: Api, browser: Any) -> None:
    _sign_in(browser, api, f"/ui/employees/e-1?month={MONTH}", "employee")
    before = wait_for(lambda: _fields(browser).get("kpi_minutes") and _fields(browser),
                      30, what="the employee page's figures")
    obj = api.get(f"/kpi/employees/e-1?month={MONTH}", "employee").body
    for path in ("kpi_minutes", "plan_minutes", "attainment_pct", "sla.compliance_pct",
                 "calls.answered", "calls.aht_seconds", "bonus.reason", "bonus.bonus_pct",
                 "quality_score", "fcr_pct"):
        value: Any = obj
        for part in path.split("."):
            value = value[part]
        assert before[path] == _text(value), path
    assert "sessionStorage" not in browser.current_url and "kpi_" not in browser.current_url
    prefix: str = api.prefix  # type: ignore[attr-defined]
    produce(api.worker.broker, prefix, [
        f.added("t-1", f"{DAY}T15:00:00+03:00", "e-1", ["reactivation"])])
    url = browser.current_url
    wait_for(lambda: _fields(browser).get("kpi_minutes") != before["kpi_minutes"], 60,
             what="the page to show the new event")
    assert browser.current_url == url  # no reload, no navigation
    after = api.get(f"/kpi/employees/e-1?month={MONTH}", "employee").body
    assert _fields(browser)["kpi_minutes"] == str(after["kpi_minutes"])


def test_manager_sees_their_department_and_is_refused_another(api: Api, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    _sign_in(browser, api, f"/ui/departments/d-1?month={MONTH}", "manager_d1")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "tr[data-employee]"), 30,
             what="the department's employees")
    rows = [r.get_attribute("data-employee")
            for r in browser.find_elements(By.CSS_SELECTOR, "tr[data-employee]")]
    assert rows == ["e-1", "e-2"]
    risk = browser.find_elements(By.CSS_SELECTOR, "#at-risk tr[data-ticket]")
    assert [r.get_attribute("data-ticket") for r in risk] == ["t-1"]
    browser.get(api.worker.base + f"/ui/departments/d-2?month={MONTH}")
    wait_for(lambda: browser.find_element(By.ID, "refused").is_displayed(), 30,
             what="the refusal")
    assert "outside" in browser.find_element(By.ID, "refused-detail").text
    # a revoked token gets the clear refusal and the sign-in again
    rec = next(r for r in api.store.list() if r.role == "manager" and r.departments == ["d-1"])
    api.store.revoke(rec.id)
    browser.get(api.worker.base + f"/ui/departments/d-1?month={MONTH}")
    wait_for(lambda: browser.find_element(By.ID, "refused").is_displayed(), 30,
             what="the refusal of a revoked token")
    assert "refused" in browser.find_element(By.ID, "refused-detail").text
