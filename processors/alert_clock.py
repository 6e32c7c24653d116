"""The moment at which an SLA alert is judged, per ticket partition.

A threshold is owed only if the ticket was still open at that moment. A partition whose
records are not all processed (a backlog: a restart after downtime, a large import) may
hold a resolution of that ticket further on: alerting at the wall clock would page
operations about tickets closed weeks ago. Such a partition's clock is the latest
`occurred_at` it has processed, so its alerts come as its events reach their moments,
and once every record fetched is processed it is the wall clock again: nothing owed is
missed, only deferred until the worker knows.
"""

from __future__ import annotations


def caught_up(highwater: int | None, position: int | None) -> bool:
    """Is every record fetched so far from a partition processed (an empty one is)?"""
    if highwater is not None and position is not None and position >= highwater:
        return True
    return highwater == 0


class AlertClocks:
    """The alert clock (µs since the epoch) of each ticket partition still catching up;
    every other partition's clock is `now_us`.

    The ticket inputs (tickets, escalations, reopens) share partition numbers; a
    partition number behind on any of them is as far behind as the furthest.
    """

    def __init__(self, now_us: int) -> None:
        self.now_us = now_us
        self.behind: dict[int, int] = {}

    def catching_up(self, partition: int, frontier_us: int) -> None:
        """A partition with records still to process; `frontier_us` is the latest
        `occurred_at` processed there (-1: none yet, so nothing is owed yet)."""
        self.behind[partition] = min(self.now_us, frontier_us,
                                     self.behind.get(partition, self.now_us))

    def at(self, partition: int) -> int:
        return self.behind.get(partition, self.now_us)
