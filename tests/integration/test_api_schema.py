"""schemathesis against a running worker with authentication on: every operation of
/openapi.json, generated requests (valid and invalid), no 5xx, every response as documented
(status code, content type, headers, body schema).

The schema is built from `openapi_document()` at import, because pytest parametrizes at
collection, before any worker runs (schemathesis' lazy `from_fixture` loader fails on
pytest 9); the first test checks that the running worker serves exactly this document.

Random ids are almost always unknown (404), so the documented 200 bodies are also checked
on ids that exist, with explicit cases.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import negative_data_rejection

from streams.api.auth import TokenStore
from streams.api.openapi import openapi_document
from streams.devtools.broker import EmbeddedBroker
from tests import factory as f
from tests.integration.workers import WorkerProc, fresh_prefix, http_get, produce, wait_for

pytestmark = pytest.mark.integration


@dataclass
class Target:
    worker: WorkerProc
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="module")
def target(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    tmp = tmp_path_factory.mktemp("api-schema")
    prefix = fresh_prefix(broker)
    produce(broker, prefix, [
        f.order(),
        f.registered("e-1", "d-1"), f.registered("e-2", "d-1"),
        f.opened("t-1", "2026-11-02T10:00:00+03:00", "e-1", decisions=["reactivation"],
                 priority="P2"),
        f.first_response("t-1", "2026-11-02T10:20:00+03:00", "e-1"),
        f.resolved("t-1", "2026-11-02T12:00:00+03:00", "e-1"),
        f.opened("t-2", "2026-11-02T11:00:00+03:00", "e-2", priority="P1"),
        f.call("e-1", "2026-11-02T10:00:00+03:00"),
        f.csat("e-1", "2026-11-02T13:00:00+03:00", 5, "t-1"),
        f.quality("e-1", "2026-11-03T10:00:00+03:00", [4, 4, 3]),
    ])
    store = TokenStore(tmp / "tokens.json")
    token, _ = store.add("operations", label="schemathesis")
    env = {"KPI_AUTH_ENABLED": "true", "KPI_TOKENS_FILE": str(store.path)}
    w = WorkerProc(broker, prefix, tmp / "state", log_path=tmp / "worker.log", extra_env=env)
    w.start()
    t = Target(w, token)
    try:
        def ready() -> bool:
            import urllib.request

            req = urllib.request.Request(f"{w.base}/tickets/t-2", headers=t.auth)
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status == 200

        wait_for(ready, what="t-2 in the API")
        yield t
    finally:
        w.stop()


schema = schemathesis.openapi.from_dict(openapi_document())


def test_the_worker_serves_this_document(target: Target) -> None:
    served = http_get(f"{target.worker.base}/openapi.json")  # public: no token
    assert served.status == 200
    assert served.body == json.loads(json.dumps(openapi_document()))


@schema.parametrize()
@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_generated_requests_conform(case: schemathesis.Case, target: Target) -> None:
    # Every request carries a valid token, which undoes a negative case's missing or broken
    # Authorization header, and a mutated query value can serialize to nothing: the request
    # sent is then valid, and schemathesis' negative-data check reports its 200 as invalid
    # data accepted. Rejection of invalid requests (unknown or repeated parameters,
    # malformed ids and periods, missing and bad tokens) is asserted request by request in
    # test_api_auth.py and test_user_errors.py; here every response must still conform.
    case.call_and_validate(base_url=target.worker.base, headers=target.auth,
                           excluded_checks=[negative_data_rejection])


@pytest.mark.parametrize("path, params, query", [
    ("/kpi/employees/{employee_id}", {"employee_id": "e-1"}, {"month": "2026-11"}),
    ("/kpi/employees/{employee_id}", {"employee_id": "e-1"}, {"date": "2026-11-02"}),
    ("/kpi/employees/{employee_id}", {"employee_id": "e-2"}, {}),
    ("/kpi/departments/{department_id}", {"department_id": "d-1"}, {"month": "2026-11"}),
    ("/kpi/departments/{department_id}", {"department_id": "d-1"}, {"date": "2026-11-02"}),
    ("/tickets/{ticket_id}", {"ticket_id": "t-1"}, {}),
    ("/tickets/{ticket_id}", {"ticket_id": "t-2"}, {}),
    ("/metrics", {}, {}),
    ("/health", {}, {}),
    ("/openapi.json", {}, {}),
])
def test_existing_resources_conform(target: Target, path: str, params: dict[str, str],
                                    query: dict[str, str]) -> None:
    case = schema[path]["GET"].Case(path_parameters=params, query=query)
    response = case.call_and_validate(base_url=target.worker.base, headers=target.auth)
    assert response.status_code == 200, response.text
    if query:  # the period asked for is the one answered: the parameters reached the view
        assert response.json()["period"] == next(iter(query.values()))
