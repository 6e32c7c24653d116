"""The alert-timer index in memory: what the alert timer scans twice a second.

The ticket projector keeps, per open ticket with SLA targets, the moments its thresholds
are reached (the `alert-timers` table, changelogged, so it survives restarts and moves with
its partition). Scanning that table every half second decoded every open ticket's JSON
and parsed its timestamps each time: at a few thousand open tickets that was a tenth of a
live worker's CPU. `TimerIndex` holds the same entries parsed (moments in integer
microseconds), kept current by the writes that go through `IndexedKV`, and rebuilt from
the table when the partitions this worker owns may have changed (`invalidate`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

import orjson

from processors.calendar import epoch_us
from projections.store import KV


@dataclass(frozen=True, slots=True)
class Timer:
    priority: str
    # (moment in µs since the epoch, "target:kind"), earliest first
    thresholds: tuple[tuple[int, str], ...]

    @classmethod
    def from_bytes(cls, raw: bytes) -> Timer:
        d = orjson.loads(raw)
        return cls(d["p"], tuple(sorted((epoch_us(datetime.fromisoformat(m)), f"{t}:{k}")
                                        for m, t, k in d["th"])))

    def reached(self, now_us: int) -> list[str]:
        """The thresholds reached at `now_us` ("target:kind")."""
        out = []
        for moment, ident in self.thresholds:
            if moment > now_us:
                break
            out.append(ident)
        return out


class TimerIndex:
    """ticket_id -> Timer for the tickets this worker owns; `stale` until (re)built."""

    def __init__(self) -> None:
        self._timers: dict[str, Timer] = {}
        self.stale = True

    def invalidate(self) -> None:
        """The owned partitions may change (a rebalance): rebuild before the next use."""
        self.stale = True
        self._timers.clear()

    def rebuild(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Fill from the table's (ticket_id, value) pairs of the owned partitions."""
        self._timers = {ticket_id: Timer.from_bytes(raw) for ticket_id, raw in items}
        self.stale = False

    def set(self, ticket_id: str, raw: bytes) -> None:
        if not self.stale:
            self._timers[ticket_id] = Timer.from_bytes(raw)

    def drop(self, ticket_id: str) -> None:
        self._timers.pop(ticket_id, None)

    def items(self) -> Iterator[tuple[str, Timer]]:
        return iter(self._timers.items())

    def __len__(self) -> int:
        return len(self._timers)

    def __contains__(self, ticket_id: object) -> bool:
        return ticket_id in self._timers


class IndexedKV:
    """A KV whose writes also update a `TimerIndex` (under the batch cache, so the index
    changes when the table does: at the end of a batch)."""

    def __init__(self, inner: KV, index: TimerIndex) -> None:
        self.inner = inner
        self.index = index

    def get(self, key: str) -> bytes | None:
        return self.inner.get(key)

    def put(self, key: str, value: bytes) -> None:
        self.inner.put(key, value)
        self.index.set(key, value)

    def delete(self, key: str) -> None:
        self.inner.delete(key)
        self.index.drop(key)
