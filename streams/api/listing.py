"""Lists: a department's or an employee's tickets, and a department's employees.

Tickets are stored by ticket id, spread over the partitions of the tickets table, so
no worker holds a department's tickets. The worker answering a list asks every worker
for the matching tickets of the partitions it owns (`local_tickets`, served at
`/internal/tickets`) and merges them; it answers only when the answers cover every
partition, so a list is exact or refused (503), never silently short. A scan reads each
ticket of the worker's partitions once: cheap for the open and recent tickets of a
centre, and the price of exactness without a second index to keep in step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from processors.ticket import describe
from projections.store import rocks_prefix_items
from streams.api.readside import ReadSide

# A ticket's clock at or past this share of its target is "warning" (as the alerts).
WARNING_SHARE = Decimal("0.75")
STATUSES = ("all", "open", "at_risk")
MAX_LIMIT = 500
DEFAULT_LIMIT = 50
YIELD_EVERY = 200  # tickets folded between two turns of the event loop
_RISK_ORDER = {"breached": 0, "warning": 1, "ok": 2, "none": 3}


class Incomplete(Exception):
    """The workers' answers did not cover every partition (a rebalance): retry."""


def active_partitions(worker: ReadSide) -> list[int]:
    """The tickets table partitions this worker owns (not its standby copies)."""
    topic = worker.tickets_table.changelog_topic.get_topic_name()
    actives = worker.app.assignor.assigned_actives()
    return sorted(tp.partition for tp in actives if tp.topic == topic)


def summary(d: dict[str, Any], finished: dict[str, bool]) -> dict[str, Any]:
    """A list row from a ticket's description: status, owner, and its SLA state.

    `sla_state`: breached (a target passed), warning (a clock still counting is at 75 %
    of its target or more), ok, or none (no SLA target). `minutes_left`: of the clocks
    still counting against a target, the one nearest it, negative when overdue; None when
    no clock counts."""
    state, left, nearest = "none", None, None
    is_open = d["status"] not in ("resolved", "closed", "merged")
    for name, clock in d["sla"].items():
        if clock["target_minutes"] is None:
            continue
        target = Decimal(str(clock["target_minutes"]))
        elapsed = Decimal(str(clock["elapsed_minutes"]))
        counting = is_open and not finished[name]
        if clock["state"] == "breached":
            this = "breached"
        elif counting and elapsed >= target * WARNING_SHARE:
            this = "warning"
        else:
            this = "ok"
        if _RISK_ORDER[this] < _RISK_ORDER[state]:
            state = this
        if counting and (left is None or target - elapsed < left):
            left, nearest = target - elapsed, name
    return {
        "ticket_id": d["ticket_id"], "status": d["status"], "open": is_open,
        "owner": d["owner"], "department_id": d["department_id"],
        "priority": d["priority"], "opened_at": d["opened_at"],
        "sla_state": state, "at_risk": is_open and state in ("warning", "breached"),
        "minutes_left": None if left is None else float(left),
        "nearest_target": nearest,
        "due_at": d["sla"][nearest]["due_at"] if nearest else None,
    }


def _keys(db: Any) -> Iterable[tuple[str, bytes]]:
    for key, raw in rocks_prefix_items(db, ""):
        # not tickets: our markers ("\x00...") and Faust's offset key ("__faust\x00...")
        if not key.startswith(("\x00", "__faust\x00")):
            yield key, raw


async def local_tickets(worker: ReadSide, *, department: str | None,
                        employee: str | None, at_risk: bool = False) -> dict[str, Any]:
    """The matching tickets of the partitions this worker owns, as list rows.

    `at_risk`: only tickets that may be at risk are needed. With alerts on, the alert
    timers table holds exactly the open tickets with SLA targets (the only ones that can
    be at risk), a small share of all tickets: it is scanned instead, which keeps the
    manager's page, refreshed every few seconds, cheap in a large centre."""
    table = worker.timers_table if at_risk and worker.settings.alerts else worker.tickets_table
    dbs = getattr(table.data, "_dbs", {})
    partitions = active_partitions(worker)
    now: datetime = worker.clock()
    rows: list[dict[str, Any]] = []
    n = 0
    for p in partitions:
        db = dbs.get(p)
        if db is None:
            continue
        for ticket_id, _raw in list(_keys(db)):
            n += 1
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a big scan must not stall the agents
            view = worker.ticket_reader.view(ticket_id)
            if view is None:  # deleted since the scan began
                continue
            v = view[1]
            if department is not None and v.department_id != department:
                continue
            if employee is not None and v.owner != employee:
                continue
            rows.append(summary(describe(v, worker.cat, worker.live, now),
                                {"first_response": v.fr.done, "resolution": v.resolved}))
    return {"partitions": partitions, "items": rows}


def sort_key(row: dict[str, Any]) -> tuple[Any, ...]:
    """Open tickets first, the most urgent first (most overdue, then least time left);
    then the others, newest first."""
    if row["open"]:
        left = row["minutes_left"]
        return (0, _RISK_ORDER[row["sla_state"]], left if left is not None else float("inf"),
                row["ticket_id"])
    return (1, 0, -_stamp(row["opened_at"]), row["ticket_id"])


def _stamp(text: str | None) -> float:
    return datetime.fromisoformat(text).timestamp() if text else 0.0


def merge(answers: Iterable[dict[str, Any]], partitions: int, status: str
          ) -> list[dict[str, Any]]:
    """Every worker's rows, filtered and sorted; Incomplete unless all partitions answered."""
    covered: set[int] = set()
    rows: list[dict[str, Any]] = []
    for a in answers:
        covered.update(a["partitions"])
        rows.extend(a["items"])
    if covered != set(range(partitions)):
        missing = sorted(set(range(partitions)) - covered)
        raise Incomplete(f"partitions {missing} have no owner right now")
    if status == "open":
        rows = [r for r in rows if r["open"]]
    elif status == "at_risk":
        rows = [r for r in rows if r["at_risk"]]
    # a ticket moving between workers mid-gather could come twice: keep one
    unique = {r["ticket_id"]: r for r in rows}
    return sorted(unique.values(), key=sort_key)


def page(items: list[Any], offset: int, limit: int, base: str) -> dict[str, Any]:
    """One page of a list and the link to the next."""
    chunk = items[offset:offset + limit]
    nxt = offset + limit if offset + limit < len(items) else None
    sep = "&" if "?" in base else "?"
    return {"total": len(items), "offset": offset, "limit": limit, "items": chunk,
            "next": None if nxt is None else f"{base}{sep}offset={nxt}&limit={limit}"}


def worker_urls(worker: ReadSide) -> list[str | None]:
    """Every worker holding tickets partitions: None for this one, else its base URL."""
    topic = worker.tickets_table.changelog_topic.get_topic_name()
    meta = worker.app.router.table_metadata(worker.tickets_table.name)
    mine = worker.app.conf.canonical_url
    out: list[str | None] = [None]
    for url, topics in meta.items():
        if not topics.get(topic):
            continue
        u = str(url).rstrip("/")
        if u != str(mine).rstrip("/"):
            out.append(u)
    return out
