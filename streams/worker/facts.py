"""Records between agents, bundled per partition of their key: replacement facts on their
way to the employee side, contact records to the customers agent, day summaries to the
departments agent."""

from __future__ import annotations

from typing import Any

from projections.tickets import fact_bundle, read_facts
from streams.worker.tables import partition_of


def keyed_items(key: bytes | None, value: bytes) -> list[tuple[str, Any]]:
    """The (key, value) pairs one record of an internal topic carries: a bundle
    (`[[key, value], ...]`, no record key) or a single value under its record key (as
    every such record was before bundles)."""
    if key is None:
        return [(k, v) for k, v, _ in read_facts(value)]
    return [(key.decode(), value)]


class FactBundles:
    """One batch's records for an internal topic, grouped by the partition of their key
    (an employee's facts; a customer's contact records, a department's day summaries).

    Each bundle becomes one record (`projections.tickets.fact_bundle`) with no key, sent
    to that partition: a record costs a trip through the producer and, on the receiving
    side, through the consumer, and a backlog's batch owes hundreds of them. A bundle is
    handed out for sending as soon as it reaches `limit` bytes (a norm-order reconcile
    may re-publish a whole partition), the rest by `drain()` at the end of the batch.
    """

    def __init__(self, partitions: int, limit: int = 128 * 1024,
                 kind: str | None = None) -> None:
        self.partitions = partitions
        self.limit = limit
        self.kind = kind  # None: a ticket's contributions; "c" repeats, "d" cover
        self._facts: dict[int, list[tuple[str, bytes]]] = {}
        self._size: dict[int, int] = {}

    def add(self, employee_id: str, fact: bytes) -> list[tuple[int, bytes]] | None:
        p = partition_of(employee_id, self.partitions)
        self._facts.setdefault(p, []).append((employee_id, fact))
        size = self._size[p] = self._size.get(p, 0) + len(fact) + len(employee_id) + 8
        if size < self.limit:
            return None
        self._size[p] = 0
        return [(p, fact_bundle(self._facts.pop(p), self.kind))]

    def drain(self) -> list[tuple[int, bytes]]:
        out = [(p, fact_bundle(facts, self.kind)) for p, facts in sorted(self._facts.items())]
        self._facts.clear()
        self._size.clear()
        return out
