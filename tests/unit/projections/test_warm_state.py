"""Warm states: the ticket projector keeps the tickets it last wrote decoded, and the
employee projector the days it last wrote, so the next event does not decode them again.
They must change nothing but speed, and must be dropped when the store may have changed
under them (a rebalance)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from projections.pipeline import Pipeline
from schemas.decode import Rejection, decode
from streams.devtools.bench import make_feed


class _Forgetful(set[str]):
    """A set of known employees that never remembers: every event reads the marker."""

    def add(self, item: str) -> None:
        pass


def _events(n: int, seed: int) -> list[Any]:
    records, _ = make_feed(n, seed)
    events = [decode(topic, key, value) for topic, key, value in records]
    return [ev for ev in events if not isinstance(ev, Rejection)]


def _fold(events: list[Any], batch_size: int, *, warm: bool, limit: int = 5_000) -> Pipeline:
    p = Pipeline(live=True, batch_size=batch_size)
    p.tickets.cursor_limit = limit if warm else 0
    p.employees.warm_limit = limit if warm else 0
    if not warm:
        p.employees._known = _Forgetful()
    p.apply_all(events)
    return p


@pytest.mark.parametrize(("seed", "batch_size", "limit"),
                         [(1, 1, 5_000), (2, 37, 5_000), (3, 500, 5_000), (4, 37, 3)])
def test_warm_states_change_no_byte_of_the_stores(seed: int, batch_size: int,
                                                  limit: int) -> None:
    """The simulator's mix (tickets stepping, late events re-folding, merges, calls, a
    norm order), folded with warm states (a large bound, and one of 3 entries that evicts
    all the time) and without: the two stores end byte for byte equal."""
    events = _events(3_000, seed)
    warm = _fold(events, batch_size, warm=True, limit=limit)
    cold = _fold(events, batch_size, warm=False)
    assert warm.tickets._warm or limit < 5_000
    assert warm.employees._warm and not cold.employees._warm
    assert len(warm.employees._warm) <= limit
    assert len(warm.tickets_kv) > 100
    assert warm.tickets_kv._d == cold.tickets_kv._d
    assert warm.employees_kv._d == cold.employees_kv._d


def test_a_rebalance_drops_warm_states_and_reads_the_store_again() -> None:
    """A partition that comes back from its changelog may hold what another worker wrote:
    after `forget` the projectors read the store, not what this process wrote last."""
    events = _events(600, 5)
    p = _fold(events, 50, warm=True)
    ticket_id = next(iter(p.tickets._warm))
    stored = orjson.loads(p.tickets_kv.get(ticket_id) or b"")
    stored["v"] += 100  # as if another worker had applied more of this ticket
    p.tickets_kv.put(ticket_id, orjson.dumps(stored))
    assert p.employees._known

    st = p.tickets.load(ticket_id)
    assert st is not None and st.version == stored["v"] - 100  # still this process's own
    p.tickets.end_batch()
    p.tickets.forget()
    p.employees.forget()
    st = p.tickets.load(ticket_id)
    assert st is not None and st.version == stored["v"]
    assert not p.employees._known


def test_a_rebalance_drops_warm_days_and_reads_the_store_again() -> None:
    """The same for an employee's day: after `forget` its figures come from the store."""
    from projections.employees import DayState, split_day_key

    events = _events(600, 6)
    p = _fold(events, 50, warm=True)
    key = next(iter(p.employees._warm))
    found = split_day_key(key)
    assert found is not None
    employee_id, day = found
    stored = DayState.from_bytes(p.employees_kv.get(key) or b"")
    stored.handled.add("ticket-from-another-worker")  # as if another worker had written
    p.employees_kv.put(key, stored.to_bytes())

    _, loaded = p.employees._load(employee_id, day)
    assert "ticket-from-another-worker" not in loaded.state.handled  # this process's own
    p.employees.end_batch()
    p.employees.forget()
    _, loaded = p.employees._load(employee_id, day)
    assert "ticket-from-another-worker" in loaded.state.handled
