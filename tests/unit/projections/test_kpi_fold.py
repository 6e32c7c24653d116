"""Pure fold tests of rules 2-9 with hand-computed numbers (no broker, no Faust)."""

from __future__ import annotations

from typing import Any

from projections.employees import parse_period
from projections.pipeline import Pipeline
from tests import factory as f


def fold(*events: dict[str, Any], live: bool = True) -> Pipeline:
    return Pipeline(live=live).apply_all(f.model(e) for e in events)


def emp(p: Pipeline, e: str, period: str) -> dict[str, Any]:
    obj = p.employee(e, period)
    assert obj is not None, f"{e} unknown"
    return obj


def test_ticket_weight_decisions_added_and_unpriced() -> None:
    p = fold(
        f.order(),
        f.opened("t-1", "2026-11-02T10:00:00+03:00", "e-1",
                 decisions=["tariff_change", "reactivation"]),
        f.added("t-1", "2026-11-02T12:00:00+03:00", "e-1", ["router_reboot", "unknown_code"]),
    )
    day = emp(p, "e-1", "2026-11-02")
    assert day["kpi_minutes"] == 21.5
    assert day["plan_minutes"] == 480
    assert day["attainment_pct"] == 4.48  # 100 * 21.5 / 480 = 4.479..., half-up
    assert day["tickets_handled"] == 1
    assert day["unpriced_decisions"] == 1


def test_auto_ticket_credits_nobody_but_decisions_added_is_handled() -> None:
    p = fold(
        f.order(),
        f.opened("t-2", "2026-11-02T10:00:00+03:00", "e-1", decisions=["tariff_change"],
                 origin="auto"),
        f.added("t-2", "2026-11-02T11:00:00+03:00", "e-2", ["tariff_change", "bogus"]),
    )
    e1 = emp(p, "e-1", "2026-11-02")
    assert (e1["kpi_minutes"], e1["tickets_handled"], e1["unpriced_decisions"]) == (0, 0, 0)
    e2 = emp(p, "e-2", "2026-11-02")
    assert (e2["kpi_minutes"], e2["tickets_handled"], e2["unpriced_decisions"]) == (0, 1, 1)


def test_month_plan_holiday_weekend_and_absence() -> None:
    p = fold(
        f.order(),
        f.registered("e-1", "d-1"),
        f.absent("e-1", "2026-11-03"),
        f.opened("t-1", "2026-11-02T10:00:00+03:00", "e-1", decisions=["reactivation"]),
    )
    # November 2026: 21 weekdays, minus the 4th (holiday) = 20 working days = 9600 minutes;
    # minus one absence = 9120.
    month = emp(p, "e-1", "2026-11")
    assert month["plan_minutes"] == 9120
    assert month["kpi_minutes"] == 12.5
    assert emp(p, "e-1", "2026-11-04")["plan_minutes"] == 0  # holiday
    assert emp(p, "e-1", "2026-11-07")["plan_minutes"] == 0  # Saturday
    assert emp(p, "e-1", "2026-11-03")["plan_minutes"] == 0  # absent
    assert emp(p, "e-1", "2026-11-03")["attainment_pct"] is None


def test_extra_workday_that_is_also_a_holiday_is_a_working_day() -> None:
    cal = dict(f.ORDER_CALENDAR, extra_workdays=["2026-11-04", "2026-11-07"])
    p = fold(f.order(calendar=cal), f.registered("e-1", "d-1"))
    assert emp(p, "e-1", "2026-11-07")["plan_minutes"] == 480
    assert emp(p, "e-1", "2026-11-04")["plan_minutes"] == 480
    assert emp(p, "e-1", "2026-11")["plan_minutes"] == 22 * 480


def test_order_effective_mid_month_and_tie_on_number() -> None:
    weights2 = {"tariff_change": 10.0}
    weights3 = {"tariff_change": 11.0}
    p = fold(
        f.order(),
        f.order("2026-11-10T09:00:00+03:00", order_id="ord-2", number=2,
                effective_from="2026-11-16", decision_weights=weights2),
        f.order("2026-11-10T09:05:00+03:00", order_id="ord-3", number=3,
                effective_from="2026-11-16", decision_weights=weights3),
        f.opened("t-1", "2026-11-13T10:00:00+03:00", "e-1", decisions=["tariff_change"]),
        f.opened("t-2", "2026-11-16T10:00:00+03:00", "e-1", decisions=["tariff_change"]),
        # Weighed by the order in force on the ticket's opened date (the 13th): 6.0.
        f.added("t-1", "2026-11-17T10:00:00+03:00", "e-1", ["tariff_change"]),
    )
    assert emp(p, "e-1", "2026-11-13")["kpi_minutes"] == 6.0
    assert emp(p, "e-1", "2026-11-16")["kpi_minutes"] == 11.0  # tie: greater number wins
    assert emp(p, "e-1", "2026-11-17")["kpi_minutes"] == 6.0
    assert emp(p, "e-1", "2026-11")["tickets_handled"] == 2


def test_retroactive_order_changes_nothing_live_but_counts_in_replay() -> None:
    events = (
        f.order(),
        f.opened("t-1", "2026-11-02T10:00:00+03:00", "e-1", decisions=["tariff_change"]),
        f.order("2026-11-20T09:00:00+03:00", order_id="ord-9", number=9,
                effective_from="2026-11-01", decision_weights={"tariff_change": 100.0}),
    )
    assert emp(fold(*events), "e-1", "2026-11-02")["kpi_minutes"] == 6.0
    assert emp(fold(*events, live=False), "e-1", "2026-11-02")["kpi_minutes"] == 100.0


def test_no_order_in_force_weighs_zero_and_counts_unpriced() -> None:
    p = fold(f.opened("t-1", "2026-11-02T10:00:00+03:00", "e-1", decisions=["a", "b"]))
    day = emp(p, "e-1", "2026-11-02")
    assert (day["kpi_minutes"], day["unpriced_decisions"], day["plan_minutes"]) == (0, 2, 0)


def test_auto_call_ticket_merged_into_manual_moves_clock_start() -> None:
    p = fold(
        f.order(),
        f.opened("t-3", "2026-11-02T10:00:00+03:00", "e-1", origin="auto", priority="P1"),
        f.opened("t-4", "2026-11-02T10:10:00+03:00", "e-1", priority="P1",
                 decisions=["reactivation"]),
        f.merged("t-3", "2026-11-02T10:11:00+03:00", "t-4"),
        # 20 minutes after the absorbed ticket opened: P1 first response (15 min) breached.
        f.first_response("t-4", "2026-11-02T10:20:00+03:00", "e-1"),
        f.resolved("t-4", "2026-11-02T11:00:00+03:00", "e-1"),
        f.resolved("t-3", "2026-11-02T11:00:00+03:00", "e-1"),
    )
    day = emp(p, "e-1", "2026-11-02")
    assert day["resolved"] == 1  # the absorbed ticket leaves resolved/SLA counts
    assert day["sla"]["met"] == 0 and day["sla"]["breached"] == 1
    assert day["kpi_minutes"] == 12.5


def test_merge_before_absorbed_ticket_is_seen_is_reconciled() -> None:
    a = f.opened("t-3", "2026-11-02T10:00:00+03:00", "e-1", origin="auto", priority="P1")
    rest = [
        f.opened("t-4", "2026-11-02T10:10:00+03:00", "e-1", priority="P1"),
        f.first_response("t-4", "2026-11-02T10:20:00+03:00", "e-1"),
        f.resolved("t-4", "2026-11-02T11:00:00+03:00", "e-1"),
    ]
    m = f.merged("t-3", "2026-11-02T10:11:00+03:00", "t-4")
    in_order = emp(fold(f.order(), a, rest[0], m, *rest[1:]), "e-1", "2026-11-02")
    late = emp(fold(f.order(), *rest, m, a), "e-1", "2026-11-02")
    assert in_order == late
    assert late["sla"]["breached"] == 1


def test_sla_pause_in_waiting_customer_and_business_hours() -> None:
    # P2: business hours, first response 60 min, resolution 480 business minutes.
    p = fold(
        f.order(),
        f.opened("t-1", "2026-11-02T17:00:00+03:00", "e-1", priority="P2"),  # Monday 17:00
        f.first_response("t-1", "2026-11-03T09:30:00+03:00", "e-1"),  # 60 + 30 = 90 > 60
        f.status("t-1", "2026-11-03T10:00:00+03:00", "waiting_customer"),
        f.status("t-1", "2026-11-05T10:00:00+03:00", "in_progress"),  # paused 2 days
        f.resolved("t-1", "2026-11-05T11:00:00+03:00", "e-2"),
    )
    e2 = emp(p, "e-2", "2026-11-05")
    assert e2["resolved"] == 1 and e2["sla"]["breached"] == 1  # first response late
    assert e2["sla"]["compliance_pct"] == 0.0
    assert e2["fcr_pct"] == 100.0
    assert emp(p, "e-1", "2026-11-02")["resolved"] == 0


def test_sla_met_when_within_targets_exactly() -> None:
    p = fold(
        f.order(),
        f.opened("t-1", "2026-11-02T10:00:00+03:00", "e-1", priority="P1"),
        f.first_response("t-1", "2026-11-02T10:15:00+03:00", "e-1"),  # exactly 15 minutes
        f.resolved("t-1", "2026-11-02T14:00:00+03:00", "e-1"),  # exactly 240 minutes
    )
    day = emp(p, "e-1", "2026-11-02")
    assert day["sla"] == {"met": 1, "breached": 0, "compliance_pct": 100.0, "goal_met": True}


def test_reopen_moves_outcome_and_changes_past_fcr() -> None:
    p = fold(
        f.order(),
        f.opened("t-1", "2026-11-02T10:00:00+03:00", "e-1", priority="P1"),
        f.first_response("t-1", "2026-11-02T10:05:00+03:00", "e-1"),
        f.resolved("t-1", "2026-11-02T10:30:00+03:00", "e-1"),
        # Reopened the next day: counts for e-1 (last resolver) on the reopen's date, and
        # e-1's FCR on the 2nd drops; resolution time does not count the resolved gap.
        f.reopened("t-1", "2026-11-03T09:00:00+03:00"),
        f.resolved("t-1", "2026-11-03T10:00:00+03:00", "e-2"),
    )
    d2 = emp(p, "e-1", "2026-11-02")
    assert d2["resolved"] == 0  # the last resolution is e-2's on the 3rd
    d3 = emp(p, "e-1", "2026-11-03")
    assert d3["reopened"] == 1
    e2 = emp(p, "e-2", "2026-11-03")
    assert e2["resolved"] == 1 and e2["fcr_pct"] == 0.0
    assert e2["sla"]["met"] == 1  # 30 + 60 = 90 minutes of resolution time <= 240


def test_reopened_never_resolved_again_stays_counted() -> None:
    p = fold(
        f.order(),
        f.opened("t-1", "2026-11-02T10:00:00+03:00", "e-1", priority="P1"),
        f.first_response("t-1", "2026-11-02T10:05:00+03:00", "e-1"),
        f.resolved("t-1", "2026-11-02T10:30:00+03:00", "e-1"),
        f.reopened("t-1", "2026-11-02T12:00:00+03:00"),
    )
    day = emp(p, "e-1", "2026-11-02")
    assert (day["resolved"], day["reopened"], day["fcr_pct"]) == (1, 1, 0.0)
    assert day["reopen_rate_pct"] == 100.0


def test_escalation_and_bounce_back() -> None:
    p = fold(
        f.order(),
        f.opened("t-1", "2026-11-02T10:00:00+03:00", "e-1", decisions=["tariff_change"]),
        f.escalated("t-1", "2026-11-02T10:30:00+03:00", "e-1"),
        f.returned("t-1", "2026-11-03T10:00:00+03:00", "e-9"),
        f.opened("t-2", "2026-11-02T11:00:00+03:00", "e-1", decisions=["tariff_change"]),
    )
    d2 = emp(p, "e-1", "2026-11-02")
    assert d2["escalated"] == 1 and d2["tickets_handled"] == 2
    assert d2["escalation_rate_pct"] == 50.0
    d3 = emp(p, "e-1", "2026-11-03")
    assert d3["escalations_returned"] == 1
    month = emp(p, "e-1", "2026-11")
    assert month["bounce_back_pct"] == 100.0


def test_late_escalation_changes_resolvers_past_fcr() -> None:
    base = [
        f.order(),
        f.opened("t-1", "2026-11-02T10:00:00+03:00", "e-1"),
        f.resolved("t-1", "2026-11-02T11:00:00+03:00", "e-1"),
    ]
    assert emp(fold(*base), "e-1", "2026-11-02")["fcr_pct"] == 100.0
    later = fold(*base, f.escalated("t-1", "2026-11-02T10:30:00+03:00", "e-1"))
    assert emp(later, "e-1", "2026-11-02")["fcr_pct"] == 0.0


def test_calls_csat_quality_in_month_object() -> None:
    p = fold(
        f.order(),
        f.registered("e-1", "d-1"),
        f.call("e-1", "2026-11-02T10:00:00+03:00", talk=100, hold=20, wrap=30),
        f.call("e-1", "2026-11-02T11:00:00+03:00", talk=200, hold=0, wrap=10),
        f.call("e-1", "2026-11-02T12:00:00+03:00", answered=False),
        f.csat("e-1", "2026-11-02T12:00:00+03:00", 5),
        f.csat("e-1", "2026-11-02T13:00:00+03:00", 4),
        f.quality("e-1", "2026-11-02T13:00:00+03:00", [4, 4, 4]),
    )
    day = emp(p, "e-1", "2026-11-02")
    assert day["calls"]["answered"] == 2
    assert day["calls"]["aht_seconds"] == 180.0  # (150 + 210) / 2
    assert day["calls"]["calls_per_hour"] == 0.25  # 2 / 8 hours
    assert day["csat_avg"] == 4.5
    assert "bonus" not in day and "quality_score" not in day
    month = emp(p, "e-1", "2026-11")
    assert month["quality_score"] == 100.0
    assert month["department_id"] == "d-1"


def test_duplicate_event_ids_change_nothing() -> None:
    o = f.opened("t-1", "2026-11-02T10:00:00+03:00", "e-1", decisions=["tariff_change"])
    c = f.call("e-1", "2026-11-02T10:00:00+03:00")
    p = fold(f.order(), o, o, c, c)
    day = emp(p, "e-1", "2026-11-02")
    assert day["kpi_minutes"] == 6.0 and day["calls"]["answered"] == 1
    assert p.duplicates == 2


def test_unknown_employee_is_none() -> None:
    assert fold(f.order()).employee("e-404", "2026-11") is None


def test_a_days_values_stop_growing_with_its_calls() -> None:
    """A day's first INLINE_SOURCES sources share one value; each later call claims its id
    in an entry of its own: neither the day's value nor its inline sources grow beyond
    that, so an event costs the same all day. Duplicates are still recognised on both
    sides of the limit, batch by batch or all in one."""
    from projections.employees import INLINE_SOURCES, is_entry_key, sources_key

    n = INLINE_SOURCES + 136
    calls = [f.call("e-1", f"2026-11-02T{9 + i // 60:02d}:{i % 60:02d}:00+03:00")
             for i in range(n)]
    whole = fold(f.order(), *calls, *calls[::7])
    assert emp(whole, "e-1", "2026-11-02")["calls"]["answered"] == n
    assert whole.duplicates == len(calls[::7])
    q = Pipeline(live=True).apply_all([f.model(f.order())])
    day_sizes, source_sizes = [], []
    for c in calls:
        q.apply(f.model(c))
        day_sizes.append(len(q.employees_kv.get("e-1|2026-11-02") or b""))
        source_sizes.append(len(q.employees_kv.get(sources_key("e-1", "2026-11-02")) or b""))
    for c in calls[::5]:
        q.apply(f.model(c))
    assert q.duplicates == len(calls[::5])
    assert max(day_sizes) - min(day_sizes) <= 8, day_sizes  # digits of the totals only
    assert len(set(source_sizes[INLINE_SOURCES - 1:])) == 1
    assert source_sizes[INLINE_SOURCES - 2] < source_sizes[INLINE_SOURCES - 1]
    entries = [k for k in q.employees_kv.keys() if is_entry_key(k) and not k.endswith("|s#")]
    assert len(entries) == n - INLINE_SOURCES
    for key in ("e-1|2026-11-02", sources_key("e-1", "2026-11-02")):
        assert q.employees_kv.get(key) == whole.employees_kv.get(key)


def test_tickets_beyond_the_inline_sources_are_corrected_in_their_entries() -> None:
    """Tickets contributing to a day whose inline sources are full live in entries; a
    later change of such a ticket (its resolution moving FCR) replaces its contribution
    exactly, as for an inline one."""
    from projections.employees import INLINE_SOURCES, entry_key

    calls = [f.call("e-1", f"2026-11-02T09:{i % 60:02d}:00+03:00")
             for i in range(INLINE_SOURCES)]
    tickets = []
    for i in range(3):
        tickets.append(f.opened(f"t-{i}", "2026-11-02T10:00:00+03:00", "e-1",
                                decisions=["tariff_change"]))
        tickets.append(f.resolved(f"t-{i}", "2026-11-02T10:05:00+03:00", "e-1"))
    p = fold(f.order(), *calls, *tickets)
    assert {k for k in p.employees_kv.keys() if "|#2026-11-02|t|" in k} == {
        entry_key("e-1", "2026-11-02", "t", f"t-{i}") for i in range(3)}
    day = emp(p, "e-1", "2026-11-02")
    assert day["tickets_handled"] == 3 and day["resolved"] == 3 and day["fcr_pct"] == 100.0
    p.apply(f.model(f.reopened("t-1", "2026-11-02T11:00:00+03:00")))
    day = emp(p, "e-1", "2026-11-02")
    assert day["reopened"] == 1 and day["fcr_pct"] == 66.67
    everything_inline = fold(f.order(), *tickets, f.reopened("t-1", "2026-11-02T11:00:00+03:00"))
    assert day["kpi_minutes"] == emp(everything_inline, "e-1", "2026-11-02")["kpi_minutes"]


def test_figures_need_no_entries() -> None:
    """A replay's report reads generations' changelogs without the entries (one per
    source): the days alone answer every figure."""
    from datetime import date

    from projections.employees import EmployeeProjector, is_entry_key
    from projections.store import MemoryKV
    from streams.ops import simulate

    events = [f.model(e) for e in
              simulate.historical(employees=3, start=date(2026, 10, 1), days=8, seed=11)]
    p = Pipeline(live=True).apply_all(events)
    days_only = MemoryKV()
    entries = 0
    for k in list(p.employees_kv.keys()):
        if is_entry_key(k):
            entries += 1
        else:
            days_only.put(k, p.employees_kv.get(k) or b"")
    assert entries > 0
    q = EmployeeProjector(days_only, p.cat, p.roster, live=True)
    for e in p.roster.employees():
        for period in ("2026-10", "2026-10-01", "2026-10-06", "2026-10-08"):
            pp = parse_period(period)
            assert q.employee(e, pp, 1) == p.employees.employee(e, pp, 1)
