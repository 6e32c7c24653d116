"""What a person sees when something is off: every problem of a bad line, a date that does
not exist, a ticket's deadline in its order's zone, the tokens table, the ticket scope of
an employee token."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from processors.ticket import describe
from projections.employees import BadPeriod, parse_period
from projections.pipeline import Pipeline
from schemas.decode import Rejection, decode
from streams.api.auth import Principal, TokenStore
from streams.cli import cli
from tests import factory as f


def test_a_rejection_lists_every_problem_of_a_line_in_the_contracts_order() -> None:
    bad = f.opened("t-1", "2026-11-02T10:00:00", "e-1")  # naive timestamp
    del bad["priority"]  # missing field
    bad["line"] = "one"  # wrong type
    result = decode("tickets", b"t-1", json.dumps(bad).encode())
    assert isinstance(result, Rejection)
    reasons = [reason for reason, _ in result.problems]
    assert sorted(reasons) == ["missing_field", "naive_timestamp", "wrong_type"]
    # the first is the dead letter's reason (the contract's order), the rest follow it
    assert (result.reason, result.detail) == result.problems[0]
    assert reasons[0] == "missing_field"
    assert any("priority" in d for _, d in result.problems)
    assert any("line" in d for _, d in result.problems)
    assert any("occurred_at" in d for _, d in result.problems)


@pytest.mark.parametrize(("text", "says"), [
    ("2026-13-01", "no such date exists"),
    ("2026-02-29", "no such date exists"),  # 2026 is not a leap year
    ("2026-00", "no such month exists"),
])
def test_a_well_formed_period_that_does_not_exist_is_told_so(text: str, says: str) -> None:
    with pytest.raises(BadPeriod, match=f"'{text}' has the right format but {says}"):
        parse_period(text)


def test_a_tickets_due_at_is_in_its_orders_zone() -> None:
    p = Pipeline(live=True).apply_all(f.model(e) for e in [
        f.order(),
        # opened in UTC: the deadline still reads in the order's zone (Moscow, +03:00)
        f.opened("t-1", "2026-11-02T07:00:00+00:00", "e-1", priority="P2",
                 decisions=["reactivation"]),
    ])
    # as a live worker has it: with the alert thresholds the deadlines come from
    p.tickets.alerts = True
    found = p.tickets.view("t-1")
    assert found is not None
    body = describe(found[1], p.cat, True, datetime(2026, 11, 2, 8, 0, tzinfo=UTC))
    # P2: first response within 60 business minutes from 10:00 Moscow -> 11:00 Moscow
    assert body["sla"]["first_response"]["due_at"] == "2026-11-02T11:00:00+03:00"
    assert body["sla"]["resolution"]["due_at"].endswith("+03:00")
    assert body["opened_at"] == "2026-11-02T07:00:00+00:00"  # an event's time, as sent


def test_an_employee_token_reads_the_tickets_it_takes_part_in() -> None:
    p = Pipeline(live=True).apply_all(f.model(e) for e in [
        f.order(),
        f.opened("t-1", "2026-11-02T10:00:00+03:00", "e-1", decisions=["reactivation"]),
        f.added("t-1", "2026-11-02T11:00:00+03:00", "e-2", ["tariff_change"]),
        f.opened("t-2", "2026-11-02T10:00:00+03:00", "e-3", decisions=["reactivation"]),
    ])
    views = {t: p.tickets.view(t) for t in ("t-1", "t-2")}
    people = {t: v[1].participants() for t, v in views.items() if v is not None}
    assert people == {"t-1": {"e-1", "e-2"}, "t-2": {"e-3"}}

    def may(emp: str, ticket: str) -> bool:
        return Principal("x", "employee", emp).may_read_ticket("d-1", people[ticket])

    assert may("e-1", "t-1")  # its owner
    assert may("e-2", "t-1")  # credited with a decision on it
    assert not may("e-1", "t-2")  # a colleague's ticket in the same department
    assert not Principal("x", "employee", "e-1").may_read_ticket("d-1")
    assert not Principal("x", "metrics").may_read_ticket("d-1", {"e-1"})
    assert Principal("x", "manager", departments=frozenset({"d-1"})).may_read_ticket("d-1")


def test_tokens_list_has_a_header_over_aligned_columns(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    store.add("employee", employee_id="e-1", label="Anna")
    store.add("manager", departments=["d-1", "d-2"])
    env = {"KPI_TOKENS_FILE": str(store.path)}
    result = CliRunner().invoke(cli, ["tokens", "list"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["ID", "ROLE", "SCOPE", "CREATED", "STATE", "LABEL"]
    assert len(lines) == 3
    # every column starts where its heading does
    for heading in ("ROLE", "SCOPE", "STATE"):
        col = lines[0].index(heading)
        assert all(line[col - 2:col] == "  " and line[col] != " " for line in lines[1:])
    assert lines[1].split()[1:3] == ["employee", "e-1"] and lines[1].endswith("Anna")
    assert lines[2].split()[1:3] == ["manager", "d-1,d-2"]
