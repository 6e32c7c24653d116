"""Upcasters: older schema_versions are read step by step; newer ones are dead letters."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.decode import Rejection, decode
from schemas.events import EVENT_MODELS, Event, TicketResolved
from schemas.topics import topic_for_type
from schemas.upcast import DEFAULT, Payload, Upcasters
from tests import factory as f

AT = "2026-11-02T10:00:00+03:00"
EID = "7f7c7a0e-5a3b-4f0e-9d55-0e0b8e8d1f21"


def v1_resolved(**over: Any) -> dict[str, Any]:
    """A made-up v1 of ticket.resolved: `ticket` and `agent` before they were renamed."""
    body = {"event_id": EID, "type": "ticket.resolved", "schema_version": 1,
            "occurred_at": AT, "ticket": "t-1", "agent": "e-7"}
    body.update(over)
    return body


def chain(calls: list[tuple[int, Payload]] | None = None) -> Upcasters:
    """v1 -> v2 renames agent -> employee_id; v2 -> v3 renames ticket -> ticket_id."""
    up = Upcasters()

    @up.register("ticket.resolved", 1)
    def agent_to_employee(p: Payload) -> Payload:
        if calls is not None:
            calls.append((1, dict(p)))
        p["employee_id"] = p.pop("agent")
        return p

    @up.register("ticket.resolved", 2)
    def ticket_to_ticket_id(p: Payload) -> Payload:
        if calls is not None:
            calls.append((2, dict(p)))
        p["ticket_id"] = p.pop("ticket")
        return p

    return up


def dec(body: dict[str, Any], up: Upcasters, key: bytes = b"t-1",
        topic: str = "tickets") -> Event | Rejection:
    return decode(topic, key, json.dumps(body).encode(), upcasters=up)


def test_a_chain_of_two_upcasters_makes_a_v1_payload_readable() -> None:
    calls: list[tuple[int, Payload]] = []
    up = chain(calls)
    assert up.version_of("ticket.resolved") == 3
    ev = dec(v1_resolved(), up)
    assert isinstance(ev, TicketResolved), ev
    assert (ev.ticket_id, ev.employee_id, ev.schema_version) == ("t-1", "e-7", 3)
    assert str(ev.event_id) == EID
    # the steps ran once each, in order, each seeing the previous step's version
    assert [(n, p["schema_version"]) for n, p in calls] == [(1, 1), (2, 2)]


def test_the_key_is_checked_against_the_upcast_payload() -> None:
    up = chain()
    ev = dec(v1_resolved(), up, key=b"t-1")
    assert isinstance(ev, TicketResolved)
    r = dec(v1_resolved(), up, key=b"t-2")
    assert isinstance(r, Rejection) and r.reason == "invalid_value"


def test_an_intermediate_version_runs_only_the_remaining_steps() -> None:
    calls: list[tuple[int, Payload]] = []
    up = chain(calls)
    v2 = {**v1_resolved(schema_version=2, employee_id="e-8")}
    del v2["agent"]
    ev = dec(v2, up)
    assert isinstance(ev, TicketResolved)
    assert (ev.ticket_id, ev.employee_id, ev.schema_version) == ("t-1", "e-8", 3)
    assert [n for n, _ in calls] == [2]


def test_the_current_version_is_not_upcast() -> None:
    calls: list[tuple[int, Payload]] = []
    up = chain(calls)
    body = f.resolved("t-1", AT, "e-9")
    body["schema_version"] = 3
    ev = dec(body, up)
    assert isinstance(ev, TicketResolved) and ev.employee_id == "e-9"
    assert calls == []


def test_upcast_does_not_mutate_the_callers_payload_and_sets_each_version() -> None:
    up = Upcasters()
    up.register("ticket.closed", 1)(lambda p: {**p, "note": "v2"})
    # a step that forgets schema_version still advances it
    up.register("ticket.closed", 2)(lambda p: {k: v for k, v in p.items() if k != "note"})
    original = {"type": "ticket.closed", "schema_version": 1, "ticket_id": "t-1"}
    snapshot = dict(original)
    out = up.upcast(original)
    assert original == snapshot
    assert out == {"type": "ticket.closed", "schema_version": 3, "ticket_id": "t-1"}


def test_other_types_are_unaffected_by_a_registration() -> None:
    up = chain()
    assert up.version_of("ticket.closed") == 1
    body = f.closed("t-1", AT)
    assert isinstance(dec(body, up), Event)
    r = dec({**body, "schema_version": 2}, up)
    assert isinstance(r, Rejection) and r.reason == "unsupported_version"


@pytest.mark.parametrize("version", [4, 5, 2**31, 2**64, 10**30])
def test_a_version_newer_than_supported_is_rejected_never_a_crash(version: int) -> None:
    up = chain()
    r = dec(v1_resolved(schema_version=version), up)
    assert isinstance(r, Rejection)
    assert r.reason == "unsupported_version"
    assert str(version) in r.detail and "3" in r.detail


@pytest.mark.parametrize("type_", sorted(EVENT_MODELS))
def test_the_default_registry_supports_v1_only(type_: str) -> None:
    assert DEFAULT.version_of(type_) == 1
    body = {"event_id": EID, "type": type_, "schema_version": 2, "occurred_at": AT}
    r = decode(topic_for_type(type_).name, b"k", json.dumps(body).encode())
    assert isinstance(r, Rejection) and r.reason == "unsupported_version"


@pytest.mark.parametrize("version", [0, -1])
def test_a_version_below_one_is_an_invalid_value(version: int) -> None:
    body = f.resolved("t-1", AT, "e-1")
    body["schema_version"] = version
    r = dec(body, chain())
    assert isinstance(r, Rejection) and r.reason == "invalid_value"


def test_an_upcaster_that_fails_gives_a_rejection_not_an_exception() -> None:
    up = Upcasters()

    @up.register("ticket.resolved", 1)
    def broken(p: Payload) -> Payload:
        raise KeyError("agent")

    r = dec(v1_resolved(), up)
    assert isinstance(r, Rejection)
    assert "KeyError" in r.detail


def test_an_upcast_payload_that_is_still_invalid_is_rejected_with_its_reason() -> None:
    up = Upcasters()
    up.register("ticket.resolved", 1)(lambda p: p)  # forgets to rename anything
    r = dec(v1_resolved(), up)
    assert isinstance(r, Rejection) and r.reason == "missing_field"
    assert "employee_id" in r.detail or "ticket_id" in r.detail


def test_a_gap_in_the_chain_is_a_lookup_error_and_a_rejection() -> None:
    up = Upcasters()
    up.register("ticket.resolved", 1)(lambda p: p)
    up.register("ticket.resolved", 3)(lambda p: p)  # no 2 -> 3
    assert up.version_of("ticket.resolved") == 4
    with pytest.raises(LookupError, match=r"ticket\.resolved v2"):
        up.upcast({"type": "ticket.resolved", "schema_version": 1})
    r = dec(v1_resolved(), up)
    assert isinstance(r, Rejection)


# -- registration errors ----------------------------------------------------------------------


def test_registering_the_same_step_twice_is_an_error() -> None:
    up = chain()
    with pytest.raises(ValueError, match=r"ticket.resolved.*1"):
        up.register("ticket.resolved", 1)(lambda p: p)
    # the first registration still stands
    ev = dec(v1_resolved(), up)
    assert isinstance(ev, TicketResolved) and ev.employee_id == "e-7"


@pytest.mark.parametrize("from_version", [0, -1])
def test_registering_from_a_version_below_one_is_an_error(from_version: int) -> None:
    up = Upcasters()
    with pytest.raises(ValueError, match="version"):
        up.register("ticket.resolved", from_version)(lambda p: p)
    assert up.version_of("ticket.resolved") == 1


def test_registration_order_does_not_matter() -> None:
    up = Upcasters()
    up.register("ticket.resolved", 2)(lambda p: {**p, "ticket_id": p["ticket"]})
    up.register("ticket.resolved", 1)(lambda p: {**p, "employee_id": p["agent"]})
    ev = dec(v1_resolved(), up)
    assert isinstance(ev, TicketResolved) and ev.schema_version == 3


def test_an_explicit_current_version_without_steps() -> None:
    up = Upcasters({"ticket.closed": 2})
    body = f.closed("t-1", AT)
    r = dec(body, up)  # v1 with no step to v2: rejected, not crashed
    assert isinstance(r, Rejection)
    ok = dec({**body, "schema_version": 2}, up)
    assert isinstance(ok, Event) and ok.schema_version == 2


@settings(max_examples=60, deadline=None)
@given(steps=st.integers(1, 6), start=st.integers(1, 6), extra=st.integers(0, 3))
def test_any_chain_reads_every_older_version_and_rejects_newer(
        steps: int, start: int, extra: int) -> None:
    """Steps 1..steps each append their number: a payload at v reads v..steps once each."""
    up = Upcasters()
    def step(n: int) -> Callable[[Payload], Payload]:
        return lambda p: {**p, "decisions": [*p["decisions"], f"s{n}"]}

    for n in range(1, steps + 1):
        up.register("ticket.decisions_added", n)(step(n))
    current = steps + 1
    body = f.added("t-1", AT, "e-1", [])
    body["schema_version"] = start
    got = dec(body, up)
    if start <= current:
        assert isinstance(got, Event), got
        assert got.decisions == [f"s{n}" for n in range(start, current)]  # type: ignore[attr-defined]
        assert got.schema_version == current
    else:
        assert isinstance(got, Rejection) and got.reason == "unsupported_version"
    newer = dec({**body, "schema_version": current + 1 + extra}, up)
    assert isinstance(newer, Rejection) and newer.reason == "unsupported_version"
