"""SLA alerts: on its timer, publishes every threshold reached by an open ticket this
worker owns, at the moment its partition has reached (processors/alert_clock.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import orjson

from processors.alert_clock import AlertClocks, caught_up
from processors.calendar import epoch_us, from_epoch_us
from projections.tickets import alert_sent_notice
from streams.worker.runtime import Runtime
from streams.worker.tables import as_bytes, partition_of
from streams.worker.tickets import TicketSide


class Alerts:
    """Owns what this process has sent or found sent: ticket_id -> {"target:kind"}."""

    def __init__(self, rt: Runtime, tickets: TicketSide, alerts_out: Any) -> None:
        self.settings, self.app, self.metrics = rt.settings, rt.app, rt.metrics
        self.clock = rt.clock
        self.tickets = tickets
        self.alerts_out = alerts_out
        self._alerted: dict[str, set[str]] = {}

    def attach(self) -> None:
        if self.settings.alerts:
            self.app.timer(0.5)(self.fire)

    def clocks(self, now_us: int) -> AlertClocks:
        """The alert clock of each ticket partition this worker owns."""
        clocks = AlertClocks(now_us)
        consumer = self.app.consumer
        try:
            assignment = consumer.assignment()
        except Exception:  # during a rebalance the assignment may move under us
            return clocks
        inputs = self.tickets.input_names
        progress = self.tickets.progress
        committed = cast(Any, consumer)._committed_offset  # Faust's own record
        for tp in assignment:
            if tp.topic not in inputs:
                continue
            pos = progress.read.get(tp)
            if pos is None:
                pos = committed.get(tp)
            if caught_up(consumer.highwater(tp), pos):
                continue
            clocks.catching_up(tp.partition, progress.frontier.get(tp.partition, -1))
        return clocks

    def _due(self, now: datetime) -> list[tuple[str, list[str], datetime]]:
        """The open tickets owing an alert not yet handled, with the moment owed at;
        sets the open-breached gauges on the way."""
        index = self.tickets.timer_index
        now_us = epoch_us(now)
        clocks = self.clocks(now_us)
        parts = self.settings.partitions
        breached: dict[str, int] = dict.fromkeys(("P1", "P2", "P3", "P4"), 0)
        due: list[tuple[str, list[str], datetime]] = []
        for ticket_id, timer in index.items():
            reached = timer.reached(now_us)
            if not reached:
                continue
            at = now
            if clocks.behind:
                behind = clocks.behind.get(partition_of(ticket_id, parts))
                if behind is not None:
                    reached = timer.reached(behind)
                    if not reached:
                        continue
                    at = from_epoch_us(behind)
            if any(r.endswith(":breached") for r in reached):
                breached[timer.priority] = breached.get(timer.priority, 0) + 1
            handled = self._alerted.get(ticket_id, ())
            if any(r not in handled for r in reached):
                due.append((ticket_id, reached, at))
        for priority, n in breached.items():
            self.metrics.sla_open_breached.labels(priority).set(n)
        return due

    async def fire(self) -> None:
        """Publish every SLA threshold reached by an open ticket this worker owns."""
        if not self.tickets.loaded.is_set() or self.app.rebalancing:
            return
        index = self.tickets.timer_index
        if index.stale:
            # Faust iterates a table over the partitions this worker actively owns only.
            index.rebuild((k if isinstance(k, str) else bytes(k).decode(), as_bytes(v))
                          for k, v in list(self.tickets.tables.timers.items()))
        due = self._due(self.clock())
        # What this process has handled is only kept for tickets still timed: bounded by
        # the open tickets, not by history.
        for ticket_id in [t for t in self._alerted if t not in index]:
            del self._alerted[ticket_id]
        for ticket_id, reached, at in due:
            handled = self._alerted.setdefault(ticket_id, set())
            for alert in self.tickets.reader.due_alerts(ticket_id, at):
                ident = f"{alert['target']}:{alert['type'][4:]}"
                if ident in handled:
                    continue
                await self.alerts_out.send(key=ticket_id.encode(), value=orjson.dumps(alert))
                # Record it through the ticket's own partition, so the state that says
                # "sent" is written in stream order and survives a restart.
                await self.tickets.notices.send(key=ticket_id.encode(),
                                                value=alert_sent_notice(ticket_id, ident))
                handled.add(ident)
                self.metrics.sla_alerts.labels(alert["target"], alert["type"][4:]).inc()
            # Thresholds reached but owing nothing were sent before (a restart, or the
            # notice still on its way): do not re-fold the ticket for them every tick.
            handled.update(reached)
