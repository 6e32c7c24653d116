"""Additive per-(employee, period) figures: projections are sums of contributions."""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Counters:
    """Everything summed per employee and day; a correction is `- old + new`."""

    kpi_minutes: Decimal = _ZERO
    unpriced_decisions: int = 0
    resolved: int = 0
    fcr: int = 0
    met: int = 0
    breached: int = 0
    reopened: int = 0
    escalated: int = 0
    escalations_returned: int = 0
    calls_answered: int = 0
    handle_seconds: Decimal = _ZERO
    csat_sum: int = 0
    csat_count: int = 0
    q1: int = 0
    q2: int = 0
    q3: int = 0
    q4: int = 0

    def __add__(self, o: Counters) -> Counters:
        return Counters(*(a + b for a, b in zip(self._values(), o._values(), strict=True)))

    def __sub__(self, o: Counters) -> Counters:
        return Counters(*(a - b for a, b in zip(self._values(), o._values(), strict=True)))

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, n) for n in _NAMES)

    def is_zero(self) -> bool:
        return not any(self._values())

    def to_list(self) -> list[Any]:
        """Compact and exact: Decimals as strings, trailing zeros dropped."""
        out: list[Any] = [str(v) if isinstance(v, Decimal) else v for v in self._values()]
        while out and out[-1] in (0, "0"):
            out.pop()
        return out

    @classmethod
    def from_list(cls, raw: list[Any]) -> Counters:
        vals: list[Any] = []
        for i, v in enumerate(raw):
            vals.append(Decimal(v) if i in _DECIMAL_IDX else v)
        return cls(*vals)


_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Counters))
_DECIMAL_IDX = frozenset(i for i, f in enumerate(fields(Counters)) if f.type in ("Decimal",))
