"""The Faust worker: wiring only. Each service owns its state and its timers.

Topology (keys, or the partition's key, in brackets):

    tickets, escalations, reopens, <gen>-ticket-notices   [ticket_id]
        -> ticket agent (tickets.py): tickets table (history, clocks, published
           contributions) -> <gen>-employee-facts [employee_id's partition: one bundle per
           partition and batch], <gen>-ticket-notices (merges, alerts sent)
    calls, evaluations, roster, <gen>-employee-facts      [employee_id]
        -> employee agent (employees.py): employees table (per-day additive figures)
        -> kpi-employee snapshots, gauges (outputs.py)
        -> <gen>-department-days [department_id]: each changed employee-day's summary
    <gen>-customer-contacts [customer_id], <gen>-department-days [department_id]
        -> customers and departments agents (rules.py): repeat contacts and cover, sent
           back on <gen>-employee-facts
    norm-orders, roster, the generation registry -> read in full by every worker
       (globalstate.py, follower.py)

The alert timer (alerts.py) reads the alert-timers table the ticket agent writes; the
broker probe (probes.py) watches the broker, the lag and the fetch wait; the HTTP API
(streams/api) reads this worker through the `ReadSide` protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import faust

from projections.employees import Period
from streams.api.web import register_web
from streams.settings import Settings
from streams.worker.alerts import Alerts
from streams.worker.edge import Edge
from streams.worker.employees import EmployeeSide
from streams.worker.faustapp import build_app
from streams.worker.globalstate import GlobalState
from streams.worker.memory import trim
from streams.worker.metrics import Metrics
from streams.worker.outputs import Gauges, Snapshots
from streams.worker.probes import BrokerProbe, BrokerState
from streams.worker.rules import CustomerSide, DepartmentSide
from streams.worker.runtime import Runtime
from streams.worker.tables import WorkerTables
from streams.worker.tickets import TicketSide

TICKET_INPUTS = ("tickets", "escalations", "reopens")
EMPLOYEE_INPUTS = ("calls", "evaluations", "roster")


class KpiWorker:
    """One worker process: the Faust app, its topics and tables, and the services."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.settings = s = settings
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.live = True
        self.app = app = build_app(s)
        self._topics(app, s)
        self.tables = WorkerTables(app, s)
        self.tickets_table = self.tables.tickets
        self.employees_table = self.tables.employees
        self.timers_table = self.tables.timers  # the at-risk ticket list reads it
        rt = Runtime(s, app, self.metrics, clock, Edge(s, self.metrics, self.dead_letters),
                     self.tables)
        self.broker = BrokerState(s)
        self.state = GlobalState(rt, self.broker, self.orders_topic)
        self.cat, self.roster = self.state.cat, self.state.roster
        self.tickets = TicketSide(rt, self.state, inputs=self.ticket_topics,
                                  input_names=self.ticket_topic_names, notices=self.notices)
        self.employees = EmployeeSide(rt, self.state, self.employee_topics)
        self.customers = CustomerSide(rt, self.state, self.contacts)
        self.departments = DepartmentSide(rt, self.state, self.department_days)
        self.ticket_reader = self.tickets.reader
        self.employee_reader = self.employees.reader
        self.snapshots = Snapshots(rt, self.employee_reader)
        self.gauges = Gauges(rt, self.state, self.employee_reader)
        self.alerts = Alerts(rt, self.tickets, self.alerts_out)
        self.probe = BrokerProbe(rt, self.broker, lambda: self.state.consumer)
        self._attach(app, s)
        register_web(self)

    def _topics(self, app: faust.App, s: Settings) -> None:
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        self.ticket_topic_names = [s.topic(t) for t in TICKET_INPUTS]
        self.notices_name = s.internal_topic("ticket-notices")
        self.facts_name = s.internal_topic("employee-facts")
        self.employee_topic_names = [s.topic(t) for t in EMPLOYEE_INPUTS]
        # The agents' inputs: on the fast path each queued message is a fetched chunk, so
        # settings.buffer_batches bounds the queue in chunks; the consumer stops fetching a
        # partition while its agent's queue is near full, which bounds what a backlog
        # holds in memory at (agents x chunks x fetch size).
        self.ticket_topics = app.topic(*self.ticket_topic_names, self.notices_name, **raw)
        self.employee_topics = app.topic(*self.employee_topic_names, self.facts_name, **raw)
        self.orders_topic = app.topic(s.topic("norm-orders"), **raw)
        self.contacts = app.topic(s.internal_topic("customer-contacts"),
                                  partitions=s.partitions, **raw)
        self.department_days = app.topic(s.internal_topic("department-days"),
                                         partitions=s.partitions, **raw)
        if s.fast_path:
            # `app.topic(maxsize=...)` accepts the argument but does not pass it on to the
            # Topic (faust-streaming 0.15.3), so it is set on the description itself; every
            # clone (the agent's channel and its queue) copies it.
            for topic in (self.ticket_topics, self.employee_topics, self.orders_topic,
                          self.contacts, self.department_days):
                topic.maxsize = s.buffer_batches
        self.notices = app.topic(self.notices_name, partitions=s.partitions, **raw)
        self.facts = app.topic(self.facts_name, partitions=s.partitions, **raw)
        self.snapshots_topic = app.topic(s.topic("kpi-employee"), **raw)
        self.alerts_out = app.topic(s.topic("sla-alerts"), **raw)
        self.dead_letters = app.topic(s.topic("dead-letters"), **raw)

    def _attach(self, app: faust.App, s: Settings) -> None:
        # Fold cursors and warm states describe tickets and days as this process last
        # wrote them: after any rebalance a table partition may come back from its
        # changelog as another worker left it, so they are dropped (the next event of
        # each ticket re-folds once, each day is read from the store again).
        app.on_partitions_revoked.connect(self._forget_warm)
        app.on_partitions_assigned.connect(self._forget_warm)
        self.tickets.attach()
        self.employees.attach(self.snapshots, self.gauges)
        self.customers.attach()
        self.departments.attach()
        self.state.attach()
        self.snapshots.attach()
        self.gauges.attach()
        self.probe.attach()
        if s.malloc_trim_interval > 0:
            app.timer(s.malloc_trim_interval)(self._trim_heap)
        self.alerts.attach()

    async def _forget_warm(self, sender: Any, /, *args: Any, signal: Any = None,
                           **kwargs: Any) -> None:
        self.tickets.forget()
        self.employees.forget()
        self.customers.forget()
        self.departments.forget()

    async def _trim_heap(self) -> None:
        trim()

    def settled(self) -> bool:
        """After a stop: the local tables hold nothing their changelogs lack."""
        return self.tables.settled()

    @property
    def restart_generation(self) -> int | None:
        """The generation made active while this worker ran (it then restarts on it)."""
        return self.state.generations.restart_generation

    # -- the read side the HTTP API uses (streams/api/readside.py) -----------------------

    def today(self) -> str:
        return self.state.today()

    def owner_url(self, employee_id: str) -> str | None:
        """Base URL of the worker owning this employee's partition; None when it is us."""
        try:
            url = self.app.router.key_store(self.employees_table.name, employee_id)
        except KeyError:
            return None
        mine = self.app.conf.canonical_url
        if (url.host, url.port) == (mine.host, mine.port):
            return None
        return str(url).rstrip("/")

    async def department(self, department_id: str, period: Period,
                         authorization: str | None = None) -> dict[str, Any]:
        """The manager's view, gathering employees owned by other workers over HTTP."""
        details = []
        for emp in self.roster.employees_of(department_id):
            url = self.owner_url(emp)
            if url is None:
                details.append(self.employee_reader.detail(emp, period,
                                                           self.settings.generation))
                continue
            query = "month" if period.is_month else "date"
            headers = {"Authorization": authorization} if authorization else {}
            async with self.app.http_client.get(
                f"{url}/internal/employees/{emp}?{query}={period.text}", headers=headers
            ) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"owner of {emp} answered {resp.status}")
                details.append(await resp.json())
        return self.employee_reader.department_from(department_id, period,
                                                    self.settings.generation, details)

    def health(self) -> tuple[bool, str]:
        if self.broker.error:
            return False, self.broker.error
        if not self.state.loaded.is_set():
            return False, "loading norm orders and roster"
        if self.app.rebalancing:
            return False, "rebalancing"
        if not self.app.tables.recovery.completed.is_set():  # type: ignore[attr-defined]
            return False, "recovering tables"
        if not self.app.consumer.assignment():
            return False, "no partitions assigned yet"
        return True, "serving"
