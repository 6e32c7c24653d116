"""What the HTTP API reads from the worker that serves it.

The views depend on this small interface, not on the worker class, so that the API
can be read, tested and changed without the runtime behind it (the worker satisfies
it structurally).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import faust

from processors.calendar import OrderCatalogue
from projections.employees import EmployeeProjector, Period
from projections.roster import Roster
from projections.tickets import TicketProjector
from streams.settings import Settings


class ReadSide(Protocol):
    """The worker as the API sees it: its app, settings, readers and a few answers."""

    app: faust.App
    settings: Settings
    cat: OrderCatalogue
    roster: Roster
    live: bool
    metrics: Any
    clock: Callable[[], datetime]
    employees_table: Any
    tickets_table: Any
    timers_table: Any  # open tickets with SLA targets (alert timers), by ticket id
    employee_reader: EmployeeProjector
    ticket_reader: TicketProjector

    def today(self) -> str:
        """Today's local date (YYYY-MM-DD) in the order catalogue's zone."""

    def health(self) -> tuple[bool, str]:
        """Whether the worker serves, and why not."""

    async def department(self, department_id: str, period: Period,
                         authorization: str | None = None) -> dict[str, Any]:
        """The manager's view of one department."""
