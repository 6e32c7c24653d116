"""Ticket projection: per-ticket state in a KV store, and the facts it owes employees.

State per ticket (one key, so one write per event is atomic): its accepted history, the
merge notices it received, the contributions it last published per (employee, date),
and a version. After every change the ticket is re-folded and each (employee, date)
whose contribution differs is re-published as a *replacement* carrying the version, so
the employee side can apply it idempotently and in any order.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson

from processors.calendar import NormOrder, OrderCatalogue
from processors.ticket import (
    THRESHOLD_FRACTION,
    TOPIC_OF_TYPE,
    Entry,
    Folder,
    TicketView,
    fold,
)
from projections.store import lru_put, scoped
from schemas.events import Event
from schemas.outputs import alert_event_id

MERGE_NOTICE = "kpi.merge_notice"
# What a contact record is made of: the opening, merges (absorbed: no contact), resolutions.
_CONTACT_TYPES = frozenset({"ticket.opened", "ticket.merged", "ticket.resolved"})
ALERT_SENT = "kpi.alert_sent"


@dataclass(slots=True)
class TicketOutput:
    """What applying one record produced, for the shell to send and count."""

    duplicate: bool = False
    # (employee_id, fact value) for the employee-facts topic, in the employee's partition
    # (the worker bundles them per partition: `fact_bundle`)
    facts: list[tuple[str, bytes]] = field(default_factory=list)
    # (ticket_id, notice value) for the ticket-notices topic, keyed by ticket_id
    notices: list[tuple[str, bytes]] = field(default_factory=list)
    # (customer_id, contact fact) for the customer-contacts topic, keyed by customer_id
    # (`contact_fact`; a repeat needs every ticket of a customer together)
    contacts: list[tuple[str, bytes]] = field(default_factory=list)
    # SLA outcomes decided by this record: (priority, outcome, fr seconds, res seconds)
    outcomes: list[tuple[str, str, Decimal, Decimal]] = field(default_factory=list)
    view: TicketView | None = None


@dataclass(slots=True)
class TicketState:
    version: int = 0
    entries: list[Entry] = field(default_factory=list)
    merge_ins: dict[str, datetime] = field(default_factory=dict)
    # "employee|date" -> [counters list, handled] as last published
    published: dict[str, list[Any]] = field(default_factory=dict)
    outcomes_counted: int = 0
    alerts_sent: list[str] = field(default_factory=list)
    # what our last merge notice told the survivor: [into_ticket_id, clock start iso|None]
    notice: list[Any] | None = None
    # `entries` as stored: a ticket is rewritten on every event, and re-encoding its whole
    # history each time cost more than the fold step (entries are immutable, appended
    # only through `add`)
    encoded: list[list[Any]] = field(default_factory=list)
    # what our last contact fact told a customer: [customer_id, contact record | None]
    contact: list[Any] | None = None

    def add(self, entry: Entry) -> None:
        self.entries.append(entry)
        self.encoded.append(entry.to_list())

    def to_bytes(self) -> bytes:
        if len(self.encoded) != len(self.entries):
            self.encoded = [e.to_list() for e in self.entries]
        d = {
            "v": self.version,
            "h": self.encoded,
            "m": {k: t.isoformat() for k, t in self.merge_ins.items()},
            "p": self.published,
            "o": self.outcomes_counted,
            "a": self.alerts_sent,
            "n": self.notice,
        }
        if self.contact is not None:  # (absent from tickets stored before contacts)
            d["k"] = self.contact
        return orjson.dumps(d)

    @classmethod
    def from_bytes(cls, raw: bytes) -> TicketState:
        d = orjson.loads(raw)
        return cls(
            version=d["v"],
            entries=[Entry.from_list(x) for x in d["h"]],
            encoded=d["h"],
            merge_ins={k: datetime.fromisoformat(t) for k, t in d["m"].items()},
            published=d["p"],
            outcomes_counted=d["o"],
            alerts_sent=d["a"],
            notice=d["n"],
            contact=d.get("k"),
        )


def _contrib_key(employee_id: str, d: date) -> str:
    return f"{employee_id}|{d.isoformat()}"


def merge_notice(absorbed: str, into: str, start: datetime | None) -> bytes:
    return orjson.dumps(
        {"type": MERGE_NOTICE, "ticket_id": into, "absorbed": absorbed,
         "start": start.isoformat() if start else None}
    )


def alert_sent_notice(ticket_id: str, alert_key: str) -> bytes:
    return orjson.dumps({"type": ALERT_SENT, "ticket_id": ticket_id, "alert": alert_key})


class TicketProjector:
    """Applies ticket events and internal notices to ticket state held in a KV store."""

    def __init__(self, kv: Any, cat: OrderCatalogue, *, live: bool, alerts: bool = False,
                 timers: Any = None, cursor_limit: int = 5_000) -> None:
        self.kv = kv
        self.cat = cat
        self.live = live
        self.alerts = alerts
        # ticket_id -> its alert thresholds while open (a small index the timer scans)
        self.timers = timers
        # Tickets read or changed in the current batch, decoded (None: absent or deleted);
        # the changed ones are encoded and written once at `end_batch()`.
        self._states: dict[str, TicketState | None] = {}
        self._changed: set[str] = set()
        # Fold cursors of recently changed tickets (see `_fold`), least recently used
        # first; a ticket without one is re-folded from its history, so the bound costs
        # only speed. A cursor is 3-4 KiB: 5,000 of them (~16 MiB) hold the recently
        # active tickets of a large centre; with none the pure fold is ~30 % slower. The
        # worker drops them all on a rebalance, as state may come back from a changelog
        # as another worker left it.
        self._cursors: OrderedDict[str, Folder] = OrderedDict()
        self.cursor_limit = cursor_limit
        # The decoded states of the same recently written tickets, so that the next event
        # of a ticket does not decode what this process encoded a batch ago. Each is
        # exactly what `end_batch` last wrote (or what a batch is changing now: a failed
        # batch stops the process), and it is dropped with the cursors on a rebalance.
        self._warm: OrderedDict[str, TicketState] = OrderedDict()

    def load(self, ticket_id: str) -> TicketState | None:
        if ticket_id in self._states:
            return self._states[ticket_id]
        st = self._states[ticket_id] = self._decode(ticket_id)
        return st

    def _peek(self, ticket_id: str) -> TicketState | None:
        """The batch's state of a ticket if it is in one, else the store's, not cached."""
        return self._states[ticket_id] if ticket_id in self._states else self._decode(ticket_id)

    def _decode(self, ticket_id: str) -> TicketState | None:
        st = self._warm.get(ticket_id)
        if st is not None:
            return st
        raw = scoped(self.kv, ticket_id).get(ticket_id)
        return TicketState.from_bytes(raw) if raw is not None else None

    def _store(self, ticket_id: str, st: TicketState | None) -> None:
        self._states[ticket_id] = st
        self._changed.add(ticket_id)

    def forget(self) -> None:
        """Drop every fold cursor and warm state (after a rebalance: state may have moved
        under them)."""
        self._cursors.clear()
        self._warm.clear()

    def _keep_warm(self, ticket_id: str, st: TicketState | None) -> None:
        if st is None:
            self._warm.pop(ticket_id, None)
        else:
            lru_put(self._warm, ticket_id, st, self.cursor_limit)

    def end_batch(self) -> None:
        """Write every ticket changed since the last call, once. The worker calls it before
        flushing its store and committing; no ticket state reaches `kv` before it."""
        for ticket_id in self._changed:
            st = self._states[ticket_id]
            if st is None:
                self.kv.delete(ticket_id)
            else:
                self.kv.put(ticket_id, st.to_bytes())
            self._keep_warm(ticket_id, st)
        self._changed.clear()
        self._states.clear()

    def view(self, ticket_id: str) -> tuple[TicketState, TicketView] | None:
        # Read-only (the alert timer, between batches): the batch's state if this ticket
        # is in one, else the store's, without caching it (the store may change under a
        # rebalance before the next batch).
        st = self._peek(ticket_id)
        if st is None:
            return None
        return st, fold(ticket_id, st.entries, st.merge_ins, self.cat,
                        live=self.live, alerts=self.alerts)

    def apply_event(self, ev: Event) -> TicketOutput:
        """Apply one validated ticket/escalation/reopen event."""
        ticket_id: str = ev.ticket_id  # type: ignore[attr-defined]
        st = self.load(ticket_id) or TicketState()
        self._states[ticket_id] = st
        entry = Entry.from_event(ev)
        topic = TOPIC_OF_TYPE[entry.type]
        # The first valid delivery of an event_id on a topic wins (docs/semantics.md).
        if any(e.event_id == entry.event_id and TOPIC_OF_TYPE[e.type] == topic
               for e in st.entries):
            out = self._republish(ticket_id, st)
            out.duplicate = True
            return out
        st.add(entry)
        return self._commit(ticket_id, st, entry)

    def reconcile(self, ticket_ids: Iterable[str],
                  orders: Sequence[NormOrder]) -> Iterator[TicketOutput]:
        """Re-fold the tickets that orders learnt after their events may change.

        Norm orders and tickets travel on different topics, so a ticket event can be
        processed before an order that was in force for it is read (a bulk import, a
        restart, an order published late). Live, an order counts from its `issued_at`, so
        only tickets with an event at or after the earliest new `issued_at` can move; a
        replay (every order known from the start) re-folds them all. The result equals
        the fold in which every order was known before the ticket's events.
        """
        if not orders:
            return
        since = min(o.issued_at for o in orders)
        for ticket_id in ticket_ids:
            # A partition's every ticket may pass here: each is written back at once
            # rather than held decoded until the end of the batch.
            cached = ticket_id in self._states
            st = self._peek(ticket_id)
            if st is None or not st.entries:
                continue
            if self.live and max(e.ts for e in st.entries) < since:
                continue
            self._states[ticket_id] = st
            out = self._commit(ticket_id, st)
            if not cached:
                self.kv.put(ticket_id, st.to_bytes())
                self._keep_warm(ticket_id, st)
                self._changed.discard(ticket_id)
                del self._states[ticket_id]
            yield out

    def apply_notice(self, notice: dict[str, Any]) -> TicketOutput:
        """Apply an internal notice (merge into this ticket, or an alert published)."""
        ticket_id = notice["ticket_id"]
        st = self.load(ticket_id) or TicketState()
        if notice["type"] == MERGE_NOTICE:
            start = datetime.fromisoformat(notice["start"]) if notice["start"] else None
            current = st.merge_ins.get(notice["absorbed"])
            if start is None:
                if current is None:
                    return TicketOutput(duplicate=True)
                del st.merge_ins[notice["absorbed"]]
                if not st.entries and not st.merge_ins:
                    # Named by nothing any more: as if never seen, whatever the arrival order
                    # (a survivor only ever named by a retracted merge has nothing to show).
                    self._store(ticket_id, None)
                    return TicketOutput()
            else:
                if current == start:
                    return TicketOutput(duplicate=True)
                st.merge_ins[notice["absorbed"]] = start
        elif notice["type"] == ALERT_SENT:
            if notice["alert"] in st.alerts_sent:
                return TicketOutput(duplicate=True)
            st.alerts_sent.append(notice["alert"])
            st.version += 1
            self._store(ticket_id, st)
            return TicketOutput()
        return self._commit(ticket_id, st)

    def _fold(self, ticket_id: str, st: TicketState, added: Entry | None) -> Folder:
        """The ticket's cursor after a change: one step of the kept one when `added` is the
        only change and comes after everything folded so far (events in time order, the
        common case), else a re-fold of the whole history, which leaves a new cursor."""
        cursor = self._cursors.pop(ticket_id, None)
        if (cursor is None or added is None or cursor.count != len(st.entries) - 1
                or not cursor.can_step(added, st.merge_ins)):
            cursor = Folder.over(ticket_id, st.entries, st.merge_ins, self.cat,
                                 live=self.live, alerts=self.alerts)
        else:
            cursor.step(added)
        lru_put(self._cursors, ticket_id, cursor, self.cursor_limit)
        return cursor

    def _commit(self, ticket_id: str, st: TicketState, added: Entry | None = None) -> TicketOutput:
        cursor = self._fold(ticket_id, st, added)
        v = cursor.finish()
        st.version += 1
        new: dict[str, list[Any]] = {}
        changed: defaultdict[str, list[list[Any]]] = defaultdict(list)
        for (emp, d), (c, h) in v.contributions.items():
            key = _contrib_key(emp, d)
            item = new[key] = [c.to_list(), h]
            if st.published.get(key) != item:
                changed[emp].append([d.isoformat(), item[0], item[1]])
        for key, item in st.published.items():
            if key not in new:
                # Retracted: said once (a tombstone is kept so that a redelivery, which
                # re-sends everything published, says it again).
                if item[0] is not None:
                    emp, day = key.rsplit("|", 1)  # employee ids may contain "|"
                    changed[emp].append([day, None, 0])
                new[key] = [None, 0]
        out = TicketOutput(view=v)
        out.facts = [(emp, _fact(ticket_id, st.version, items)) for emp, items in changed.items()]
        st.published = new
        if len(v.outcomes) > st.outcomes_counted:
            out.outcomes = v.outcomes[st.outcomes_counted:]
            st.outcomes_counted = len(v.outcomes)
        out.notices = self._merge_notices(ticket_id, st, v)
        if added is None or added.type in _CONTACT_TYPES or st.contact is None:
            # (no other kind of event changes what the repeat rule reads of a ticket)
            out.contacts = self._contact_facts(ticket_id, st, cursor, v)
        self._store(ticket_id, st)
        self._update_timer(ticket_id, v)
        return out

    def _update_timer(self, ticket_id: str, v: TicketView) -> None:
        """Index open tickets with SLA thresholds; the index is derived, so self-healing."""
        if self.timers is None:
            return
        if v.is_open and v.thresholds:
            value = orjson.dumps({
                "p": v.priority,
                "th": sorted([t.moment.isoformat(), t.target, t.kind] for t in v.thresholds),
            })
            # Most events move no threshold (a decision, a note): a read is much cheaper
            # than a table write, which is also a changelog record.
            if self.timers.get(ticket_id) != value:
                self.timers.put(ticket_id, value)
        elif self.timers.get(ticket_id) is not None:
            self.timers.delete(ticket_id)

    def due_alerts(self, ticket_id: str, now: datetime) -> list[dict[str, Any]]:
        """Alerts this ticket owes at `now`: reached while open, not yet recorded as sent."""
        found = self.view(ticket_id)
        if found is None:
            return []
        st, v = found
        if not v.is_open or v.priority is None:
            return []
        breach_at = {t.target: t.moment for t in v.thresholds if t.kind == "breached"}
        out = []
        for t in sorted(v.thresholds, key=lambda t: t.moment):
            key = f"{t.target}:{t.kind}"
            if t.moment > now or key in st.alerts_sent:
                continue
            clock = v.fr if t.target == "first_response" else v.res
            assert clock.target_seconds is not None
            frac = THRESHOLD_FRACTION[t.kind]
            out.append(alert_event(
                ticket_id=ticket_id, target=t.target, kind=t.kind, moment=t.moment,
                priority=v.priority, employee_id=v.owner, department_id=v.department_id,
                due_at=breach_at.get(t.target), target_seconds=clock.target_seconds,
                elapsed_seconds=clock.target_seconds * frac,
            ))
        return out

    def _contact_facts(self, ticket_id: str, st: TicketState, cursor: Folder,
                       v: TicketView) -> list[tuple[str, bytes]]:
        """Tell the ticket's customer (and a former one) what the repeat rule reads of it."""
        opened = cursor.opened
        if opened is None:
            return []  # no customer yet: a ticket never opened is no contact
        customer: str = opened.data["customer_id"]
        record = None
        if opened.data["origin"] == "manual" and v.absorbed_into is None:
            day = cursor.local(opened.ts)
            resolutions = sorted((e for e in st.entries if e.type == "ticket.resolved"),
                                 key=lambda e: (e.ts, e.event_id))
            # `processors.repeats.Contact.to_dict`, built directly (once per opening,
            # resolution or merge of every ticket)
            record = {"at": opened.ts.isoformat(), "d": day.isoformat(),
                      "w": self.cat.repeat_window_days(day, cursor.issued(opened.ts)),
                      "r": [[e.ts.isoformat(), e.event_id, e.data["employee_id"]]
                            for e in resolutions]}
        want = [customer, record]
        if want == st.contact:
            return []
        out: list[tuple[str, bytes]] = []
        if st.contact is not None and st.contact[0] != customer and st.contact[1] is not None:
            out.append((st.contact[0], contact_fact(ticket_id, st.version, None)))
        if record is not None or st.contact is not None:
            out.append((customer, contact_fact(ticket_id, st.version, record)))
        st.contact = want
        return out

    def _merge_notices(self, ticket_id: str, st: TicketState,
                       v: TicketView) -> list[tuple[str, bytes]]:
        """Tell the survivor (and a former survivor) where our clock starts."""
        want = [v.absorbed_into, v.clock_start.isoformat() if v.clock_start else None] \
            if v.absorbed_into else None
        if want == st.notice:
            return []
        out: list[tuple[str, bytes]] = []
        if st.notice is not None and (want is None or want[0] != st.notice[0]):
            out.append((st.notice[0], merge_notice(ticket_id, st.notice[0], None)))
        if v.absorbed_into is not None:
            into = v.absorbed_into
            out.append((into, merge_notice(ticket_id, into, v.clock_start)))
        st.notice = want
        return out

    def _republish(self, ticket_id: str, st: TicketState) -> TicketOutput:
        """Re-send everything last published: a crash may have lost the first send."""
        by_emp: defaultdict[str, list[list[Any]]] = defaultdict(list)
        for key, (c, h) in st.published.items():
            emp, day = key.rsplit("|", 1)  # employee ids may contain "|"
            by_emp[emp].append([day, c, h])
        out = TicketOutput()
        out.facts = [(emp, _fact(ticket_id, st.version, items)) for emp, items in by_emp.items()]
        if st.notice is not None:
            into: str = st.notice[0]
            start = datetime.fromisoformat(st.notice[1]) if st.notice[1] else None
            out.notices.append((into, merge_notice(ticket_id, into, start)))
        if st.contact is not None:
            out.contacts.append((st.contact[0],
                                 contact_fact(ticket_id, st.version, st.contact[1])))
        return out


def alert_event(*, ticket_id: str, target: str, kind: str, moment: datetime, priority: str,
                employee_id: str | None, department_id: str | None, due_at: datetime | None,
                target_seconds: Decimal, elapsed_seconds: Decimal) -> dict[str, Any]:
    """An sla.warning / sla.breached record; its id is derived, so a re-send is recognisable."""
    return {
        "event_id": str(alert_event_id(ticket_id, target, kind)),
        "type": f"sla.{kind}",
        "schema_version": 1,
        "occurred_at": moment.isoformat(),
        "ticket_id": ticket_id,
        "target": target,
        "priority": priority,
        "employee_id": employee_id,
        "department_id": department_id,
        "due_at": due_at.isoformat() if due_at else None,
        "target_minutes": float(round(target_seconds / 60, 2)),
        "elapsed_minutes": float(round(elapsed_seconds / 60, 2)),
    }


def fact_bundle(facts: Iterable[tuple[str, bytes]], kind: str | None = None) -> bytes:
    """Facts for several employees as one record of the employee-facts topic, all of
    whose employees hash to the record's partition: `[[employee_id, fact], ...]`, or
    `[[employee_id, fact, kind], ...]` for a customer's repeat contacts (kind "c") or a
    department's cover (kind "d"), facts of the same shape as a ticket's.

    A worker sends one bundle per facts partition per batch instead of a record per
    fact (each record costs a trip through Faust's producer and, on the employee side,
    through the consumer). Facts are versioned replacements, so how they are grouped
    into records changes nothing; their order within a bundle is the order produced.
    """
    tail = b"]" if kind is None else b"," + orjson.dumps(kind) + b"]"
    return b"[" + b",".join(b"[" + orjson.dumps(emp) + b"," + fact + tail
                            for emp, fact in facts) + b"]"


def read_facts(value: bytes) -> list[tuple[str, dict[str, Any], str]]:
    """The (employee_id, fact, kind) of an employee-facts record (a bundle); kind "t" for
    a ticket's contributions."""
    return [(item[0], item[1], item[2] if len(item) > 2 else "t")
            for item in orjson.loads(value)]


def contact_fact(ticket_id: str, version: int, record: dict[str, Any] | None) -> bytes:
    """A ticket's contact record for its customer (`processors.repeats.Contact.to_dict`),
    or None when the ticket is no contact (auto, absorbed, or its customer changed): a
    versioned replacement, `{"t": ticket, "v": version, "c": record | None}`."""
    return orjson.dumps({"t": ticket_id, "v": version, "c": record})


def _fact(ticket_id: str, version: int, items: list[list[Any]]) -> bytes:
    # {"t": ticket, "v": version, "i": [[date, counters list | None, handled], ...]}
    return orjson.dumps({"t": ticket_id, "v": version, "i": items})
