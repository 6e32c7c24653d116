"""The synthetic feeds are reproducible, valid on the wire, time-ordered and realistic."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from schemas.decode import Rejection, decode
from schemas.events import EVENT_MODELS
from schemas.topics import topic_for_type
from streams.ops.simulate import (
    CALLS_PER_HOUR_TARGET,
    DECISION_CATALOGUE,
    FIXED_HOLIDAYS,
    SendFailed,
    demo,
    demo_plan,
    dumps,
    historical,
    live,
    seat_rate,
    send,
    to_record,
    write_jsonl,
)

START = date(2026, 11, 2)  # a Monday; 2026-11-04 is a holiday
DAYS = 15  # 2026-11-02 .. 2026-11-16: ten working days
EMPLOYEES = 20
TICKET_TOPICS = {"tickets", "escalations", "reopens"}


@pytest.fixture(scope="module")
def feed() -> list[dict[str, Any]]:
    return list(historical(employees=EMPLOYEES, start=START, days=DAYS, seed=42))


def _at(ev: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(ev["occurred_at"])


def _working_days(feed: list[dict[str, Any]]) -> list[date]:
    cal = feed[0]["calendar"]
    holidays = {date.fromisoformat(h) for h in cal["holidays"]}
    days = [START + timedelta(days=i) for i in range(DAYS)]
    return [d for d in days if d.isoweekday() in cal["workdays"] and d not in holidays]


def test_same_seed_gives_byte_identical_output(feed: list[dict[str, Any]]) -> None:
    again = historical(employees=EMPLOYEES, start=START, days=DAYS, seed=42)
    assert b"\n".join(map(dumps, again)) == b"\n".join(map(dumps, feed))


def test_another_seed_gives_another_feed(feed: list[dict[str, Any]]) -> None:
    other = list(islice(historical(employees=EMPLOYEES, start=START, days=DAYS, seed=43), 500))
    assert [e["event_id"] for e in other] != [e["event_id"] for e in feed[:500]]
    assert list(map(dumps, other)) != list(map(dumps, feed[:500]))


def test_every_event_is_valid_on_its_own_topic_with_its_own_key(
        feed: list[dict[str, Any]]) -> None:
    for ev in feed:
        spec = topic_for_type(ev["type"])
        topic, key, value = to_record(ev)
        assert topic == spec.name
        assert spec.key_field is not None and key == ev[spec.key_field].encode()
        result = decode(topic, key, value)
        assert not isinstance(result, Rejection), (ev, result)
        assert str(result.event_id) == ev["event_id"]
    assert len({e["event_id"] for e in feed}) == len(feed)


def test_to_record_prefixes_the_topic(feed: list[dict[str, Any]]) -> None:
    topic, key, value = to_record(feed[0], "acme.")
    assert topic == "acme.norm-orders"
    assert key == feed[0]["order_id"].encode()
    assert json.loads(value) == feed[0]


def test_events_come_in_occurred_at_order_within_office_hours(
        feed: list[dict[str, Any]]) -> None:
    times = [_at(e) for e in feed]
    assert times == sorted(times)
    assert all(t.utcoffset() == timedelta(hours=3) for t in times)
    assert all(9 <= t.hour < 18 for t in times)
    working = set(_working_days(feed))
    activity = [t.date() for e, t in zip(feed, times, strict=True)
                if e["type"] not in ("norm_order.issued", "employee.registered")]
    assert {d for d in activity if d <= START + timedelta(days=DAYS - 1)} <= working
    assert date(2026, 11, 4) not in activity


def test_the_norm_order_comes_first_and_governs_the_whole_feed(
        feed: list[dict[str, Any]]) -> None:
    order = feed[0]
    assert order["type"] == "norm_order.issued"
    model = EVENT_MODELS["norm_order.issued"].model_validate_json(dumps(order))
    assert model.effective_from <= START  # type: ignore[attr-defined]
    assert _at(order) < _at(feed[1])
    assert "2026-11-04" in order["calendar"]["holidays"]
    assert order["calendar"]["timezone"] == "Europe/Moscow"
    assert len(order["decision_weights"]) >= 12
    assert order["decision_weights"]["tariff_change"] == 6.0
    assert order["sla_targets"]["P1"] == {"first_response_minutes": 15,
                                          "resolution_minutes": 240, "business_hours": False}
    assert set(order["sla_targets"]) == {"P1", "P2", "P3", "P4"}
    assert order["daily_plan_minutes"] == 480
    assert order["calls_per_hour_target"] == CALLS_PER_HOUR_TARGET
    registered = feed[1:1 + EMPLOYEES]
    assert {e["type"] for e in registered} == {"employee.registered"}
    assert len({e["employee_id"] for e in registered}) == EMPLOYEES
    assert all(_at(e) < datetime.combine(START, datetime.min.time(), _at(e).tzinfo)
               for e in registered)


def test_roster_spreads_people_over_departments_and_lines(feed: list[dict[str, Any]]) -> None:
    registered = [e for e in feed if e["type"] == "employee.registered"]
    per_dept = Counter(e["department_id"] for e in registered)
    assert len(per_dept) >= 2
    assert all(5 <= n <= 15 for n in per_dept.values())
    assert {e["line"] for e in registered} == {1, 2}


def test_every_contract_event_type_appears(feed: list[dict[str, Any]]) -> None:
    assert {e["type"] for e in feed} == set(EVENT_MODELS)


def test_the_mix_covers_the_interesting_cases(feed: list[dict[str, Any]]) -> None:
    opened = [e for e in feed if e["type"] == "ticket.opened"]
    assert {e["origin"] for e in opened} == {"auto", "manual"}
    prios = Counter(e["priority"] for e in opened)
    assert prios["P3"] + prios["P4"] > 0.7 * len(opened)
    assert prios["P1"] > 0 and prios["P2"] > 0
    known = {c for c, _, _ in DECISION_CATALOGUE}
    decided = [c for e in feed if e["type"] in ("ticket.opened", "ticket.decisions_added")
               for c in e["decisions"]]
    assert 0 < sum(c not in known for c in decided) < 0.05 * len(decided)
    statuses = Counter(e["status"] for e in feed if e["type"] == "ticket.status_changed")
    assert statuses["waiting_customer"] > 0 and statuses["in_progress"] > 0
    calls = [e for e in feed if e["type"] == "call.completed"]
    assert 0.05 < sum(e["answered_at"] is None for e in calls) / len(calls) < 0.2
    answered = [e for e in calls if e["answered_at"]]
    aht = sum(e["talk_seconds"] + e["hold_seconds"] + e["wrap_up_seconds"]
              for e in answered) / len(answered)
    assert 120 < aht < 400
    for e in calls:
        started, ended = datetime.fromisoformat(e["started_at"]), datetime.fromisoformat(
            e["ended_at"])
        assert started <= ended <= _at(e)
        if e["answered_at"]:
            answered_at = datetime.fromisoformat(e["answered_at"])
            assert started <= answered_at <= ended
            assert (ended - answered_at).total_seconds() == e["talk_seconds"] + e["hold_seconds"]
    scores = [s for e in feed if e["type"] == "quality.evaluated" for s in e["scores"]]
    assert Counter(scores).most_common(1)[0][0] == 4
    by_ticket = {e["ticket_id"]: e for e in opened}
    for m in (e for e in feed if e["type"] == "ticket.merged"):
        assert by_ticket[m["ticket_id"]]["origin"] == "auto"
        assert by_ticket[m["into_ticket_id"]]["origin"] == "manual"
        assert by_ticket[m["into_ticket_id"]]["customer_id"] == \
            by_ticket[m["ticket_id"]]["customer_id"]


def test_ticket_lifecycles_are_coherent(feed: list[dict[str, Any]]) -> None:
    """Opened first; a reopen follows a resolution; nothing happens to an absorbed ticket."""
    opened_at: dict[str, datetime] = {}
    resolved: set[str] = set()
    absorbed: set[str] = set()
    reresolved = 0
    for e in feed:
        if "ticket_id" not in e or e["type"] in ("call.completed", "csat.rated"):
            continue
        tid = e["ticket_id"]
        if e["type"] == "ticket.opened":
            assert tid not in opened_at
            opened_at[tid] = _at(e)
            continue
        assert tid in opened_at and tid not in absorbed, e
        if e["type"] == "ticket.merged":
            absorbed.add(tid)
        elif e["type"] == "ticket.resolved":
            reresolved += tid in resolved
            resolved.add(tid)
        elif e["type"] == "ticket.reopened":
            assert tid in resolved
    assert reresolved > 0


def test_volume_per_employee_day_is_in_the_documented_range(
        feed: list[dict[str, Any]]) -> None:
    days = _working_days(feed)
    assert len(days) == 10
    absent = {(e["employee_id"], e["date"]) for e in feed if e["type"] == "employee.absent"}
    assert 0 < len(absent) < 0.05 * EMPLOYEES * len(days)
    present = EMPLOYEES * len(days) - len(absent)
    calls = Counter((e["employee_id"], _at(e).date().isoformat())
                    for e in feed if e["type"] == "call.completed")
    assert set(calls) == {(f"e-{i:03d}", d.isoformat()) for i in range(1, EMPLOYEES + 1)
                          for d in days} - absent
    assert all(30 <= n <= 60 for n in calls.values())
    in_window = {d.isoformat() for d in days}
    ticket_events = sum(1 for e in feed if topic_for_type(e["type"]).name in TICKET_TOPICS
                        and e["occurred_at"][:10] in in_window)
    assert 20 <= ticket_events / present <= 40


def test_attainment_and_productivity_land_near_the_plan(feed: list[dict[str, Any]]) -> None:
    """The order is tuned so dashboards show a spread around 100 %, not zeros."""
    weights = {c: Decimal(str(w)) for c, w, _ in DECISION_CATALOGUE}
    auto = {e["ticket_id"] for e in feed if e["type"] == "ticket.opened" and e["origin"] == "auto"}
    minutes = Decimal(0)
    for e in feed:
        if (e["type"] == "ticket.opened" and e["origin"] == "manual") or (
                e["type"] == "ticket.decisions_added" and e["ticket_id"] not in auto):
            minutes += sum((weights.get(c, Decimal(0)) for c in e["decisions"]), Decimal(0))
    plan = 480 * len(_working_days(feed))
    mean_attainment = 100 * minutes / (plan * EMPLOYEES)
    assert 60 < mean_attainment < 120
    answered = sum(1 for e in feed if e["type"] == "call.completed" and e["answered_at"])
    per_hour = answered / (EMPLOYEES * plan / 60)
    assert 0.75 * CALLS_PER_HOUR_TARGET < per_hour < 1.25 * CALLS_PER_HOUR_TARGET


def test_history_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        historical(employees=0, start=START, days=1, seed=1)
    with pytest.raises(ValueError):
        historical(employees=1, start=START, days=0, seed=1)


# -- live --------------------------------------------------------------------------------------


class Clock:
    """A hand-driven clock, so the live feed's 'now' is known exactly."""

    def __init__(self, start: datetime) -> None:
        self.t = start

    def __call__(self) -> datetime:
        return self.t


LIVE_START = datetime.fromisoformat("2026-11-03T07:00:00+00:00")  # 10:00 in Moscow


def _run_live(n: int, step: float = 0.5, seed: int = 5) -> list[dict[str, Any]]:
    clock = Clock(LIVE_START)
    feed = live(employees=EMPLOYEES, seed=seed, rate=10.0, now=clock)
    out = []
    for _ in range(n):
        out.append(next(feed))
        clock.t += timedelta(seconds=step)
    return out


@pytest.fixture(scope="module")
def live_feed() -> list[dict[str, Any]]:
    return _run_live(6000)  # 50 minutes at two events a second


def test_live_starts_with_an_order_for_this_month_issued_in_the_past(
        live_feed: list[dict[str, Any]]) -> None:
    order = live_feed[0]
    assert order["type"] == "norm_order.issued"
    assert order["effective_from"] == "2026-11-01"
    assert _at(order) < LIVE_START
    regs = live_feed[1:1 + EMPLOYEES]
    assert [e["type"] for e in regs] == ["employee.registered"] * EMPLOYEES


def test_live_events_happen_now_and_are_valid(live_feed: list[dict[str, Any]]) -> None:
    for i, ev in enumerate(live_feed[1:], start=1):
        assert _at(ev) == LIVE_START + timedelta(seconds=0.5 * i), ev
        topic, key, value = to_record(ev)
        assert not isinstance(decode(topic, key, value), Rejection), ev
    types = {e["type"] for e in live_feed}
    assert {"call.completed", "ticket.opened", "ticket.first_response", "ticket.resolved",
            "ticket.closed", "ticket.merged", "csat.rated"} <= types


def test_live_tickets_progress_through_a_small_pool(live_feed: list[dict[str, Any]]) -> None:
    open_now: set[str] = set()
    peak = 0
    done = 0
    for e in live_feed:
        if e["type"] == "ticket.opened":
            open_now.add(e["ticket_id"])
        elif e["type"] in ("ticket.resolved", "ticket.merged") and e["ticket_id"] in open_now:
            open_now.discard(e["ticket_id"])
            done += 1
        peak = max(peak, len(open_now))
    assert done > 100
    assert peak <= 4 * EMPLOYEES


def test_live_p1_tickets_breach_their_first_response_while_open(
        live_feed: list[dict[str, Any]]) -> None:
    opened = {e["ticket_id"]: _at(e) for e in live_feed
              if e["type"] == "ticket.opened" and e["priority"] == "P1"}
    answered: dict[str, datetime] = {}
    for e in live_feed:
        if e["type"] in ("ticket.first_response", "ticket.resolved") and e["ticket_id"] in opened:
            answered.setdefault(e["ticket_id"], _at(e))
    late = [t for t, at in answered.items() if at - opened[t] > timedelta(minutes=15)]
    assert late


def test_live_is_reproducible_with_the_same_clock() -> None:
    assert _run_live(300) == _run_live(300)
    assert _run_live(300) != _run_live(300, seed=6)


# -- sinks ---------------------------------------------------------------------------------------


class FakeFuture:
    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail

    def add_errback(self, f: Any, *args: Any, **kwargs: Any) -> FakeFuture:
        if self.fail is not None:
            f(self.fail)
        return self


class FakeProducer:
    def __init__(self, fail_after: int | None = None) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []
        self.fail_after = fail_after

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> Any:
        self.sent.append((topic, key, value))
        failing = self.fail_after is not None and len(self.sent) > self.fail_after
        return FakeFuture(RuntimeError("broker said no") if failing else None)


class FakeTime:
    def __init__(self) -> None:
        self.t = 0.0

    def clock(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_send_paces_events_and_stops_at_the_limit(feed: list[dict[str, Any]]) -> None:
    pulled = 0

    def counting() -> Any:
        nonlocal pulled
        for e in feed:
            pulled += 1
            yield e

    producer, t = FakeProducer(), FakeTime()
    n = send(counting(), producer, "p.", rate=50.0, limit=100, progress=False,
             clock=t.clock, sleep=t.sleep)
    assert n == 100 == len(producer.sent) == pulled
    assert t.t == pytest.approx(99 / 50.0)
    assert producer.sent[0] == to_record(feed[0], "p.")


def test_send_without_rate_or_limit_sends_everything(feed: list[dict[str, Any]]) -> None:
    producer = FakeProducer()
    assert send(feed[:300], producer, "", rate=None, limit=None, progress=False) == 300


def test_send_stops_on_a_failed_delivery(feed: list[dict[str, Any]]) -> None:
    with pytest.raises(SendFailed, match="broker said no"):
        send(feed[:50], FakeProducer(fail_after=10), "", rate=None, limit=None, progress=False)


def test_write_jsonl_writes_the_wire_bytes(tmp_path: Any, feed: list[dict[str, Any]]) -> None:
    path = tmp_path / "feed.jsonl"
    assert write_jsonl(path, feed[:200], progress=False) == 200
    lines = path.read_bytes().splitlines()
    assert lines == [to_record(e)[2] for e in feed[:200]]


# -- the demo: a centre whose working day contains now ------------------------------------


@pytest.mark.parametrize("now", [
    datetime(2026, 12, 5, 8, 30, tzinfo=UTC),    # a Saturday
    datetime(2026, 12, 7, 2, 0, tzinfo=UTC),     # Monday, night in Europe
    datetime(2026, 12, 7, 12, 0, tzinfo=UTC),    # Monday, working time in Moscow
    datetime(2026, 12, 9, 22, 45, tzinfo=UTC),   # Wednesday evening in Europe
    datetime(2027, 1, 3, 10, 0, tzinfo=UTC),     # a fixed holiday everywhere near
])
def test_demo_plan_puts_now_in_working_hours(now: datetime) -> None:
    plan = demo_plan(now, history_days=21)
    local = now.astimezone(ZoneInfo(plan.tz))
    assert local.isoweekday() in plan.workdays
    assert dtime(10, 0) <= local.time() < dtime(17, 0)
    assert plan.history_start == local.date() - timedelta(days=21)
    assert not plan.holidays or (local.month, local.day) not in FIXED_HOLIDAYS


def test_demo_prefers_a_monday_to_friday_centre_on_weekdays() -> None:
    plan = demo_plan(datetime(2026, 12, 7, 12, 0, tzinfo=UTC), history_days=14)
    assert (plan.tz, plan.workdays) == ("Europe/Moscow", (1, 2, 3, 4, 5))
    weekend = demo_plan(datetime(2026, 12, 5, 8, 30, tzinfo=UTC), history_days=14)
    assert weekend.workdays == (1, 2, 3, 4, 5, 6, 7)


def test_demo_history_ends_at_now_and_live_follows_at_a_seats_pace() -> None:
    now = datetime(2026, 12, 9, 13, 0, tzinfo=UTC)
    plan, history, feed = demo(employees=10, seed=3, now=lambda: now, history_days=16)
    past = list(history)
    order = past[0]
    assert order["type"] == "norm_order.issued"
    assert order["calendar"]["timezone"] == plan.tz
    assert order["calendar"]["workdays"] == list(plan.workdays)
    times = [datetime.fromisoformat(ev["occurred_at"]) for ev in past]
    assert max(times) <= now
    local_today = now.astimezone(ZoneInfo(plan.tz)).date()
    today = [ev for ev, t in zip(past, times, strict=True)
             if t.astimezone(ZoneInfo(plan.tz)).date() == local_today]
    assert today, "the morning of today is part of the history"
    per_seat_day = (len(past) - 11) / 10 / sum(
        1 for d in range(17) if (plan.history_start + timedelta(days=d)).isoweekday()
        in plan.workdays)
    assert 30 < per_seat_day < 120  # a plausible working day's events per seat
    live_events = list(islice(feed, 50))
    assert {ev["type"] for ev in live_events} - {"norm_order.issued"} == {
        ev["type"] for ev in live_events}
    assert seat_rate(10) == pytest.approx(10 * 70 / 9 / 3600)
