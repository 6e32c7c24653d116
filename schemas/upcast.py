"""Upcasters: older schema_versions are upgraded step by step, never rejected."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Payload = dict[str, Any]
UpcastFn = Callable[[Payload], Payload]


class Upcasters:
    """A registry of per-type version steps (n -> n+1) and each type's current version."""

    def __init__(self, current: dict[str, int] | None = None) -> None:
        self.current: dict[str, int] = dict(current or {})
        self._steps: dict[tuple[str, int], UpcastFn] = {}

    def register(self, event_type: str, from_version: int) -> Callable[[UpcastFn], UpcastFn]:
        """Decorator: `fn` turns a `from_version` payload into `from_version + 1`."""
        if from_version < 1:
            raise ValueError(f"{event_type}: schema versions start at 1, not {from_version}")
        if (event_type, from_version) in self._steps:
            raise ValueError(f"{event_type} v{from_version} already has an upcaster")

        def deco(fn: UpcastFn) -> UpcastFn:
            self._steps[(event_type, from_version)] = fn
            self.current[event_type] = max(self.current.get(event_type, 1), from_version + 1)
            return fn

        return deco

    def version_of(self, event_type: str) -> int:
        return self.current.get(event_type, 1)

    def upcast(self, payload: Payload) -> Payload:
        """Apply each step from the payload's version up to the current one."""
        t = payload["type"]
        v = payload["schema_version"]
        target = self.version_of(t)
        while v < target:
            step = self._steps.get((t, v))
            if step is None:
                raise LookupError(f"no upcaster for {t} v{v}")
            payload = step(dict(payload))
            v += 1
            payload["schema_version"] = v
        return payload


#: The registry the decoder uses. Contract v1: every type is at version 1 today.
DEFAULT = Upcasters()
