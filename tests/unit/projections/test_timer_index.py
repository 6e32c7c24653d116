"""The alert timer's in-memory index of the `alert-timers` table (projections/timers.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

import orjson

from processors.calendar import epoch_us
from projections.store import MemoryKV
from projections.timers import IndexedKV, Timer, TimerIndex

T0 = datetime.fromisoformat("2026-11-02T10:00:00+03:00")


def _value(priority: str, *thresholds: tuple[datetime, str, str]) -> bytes:
    return orjson.dumps({"p": priority,
                         "th": sorted([m.isoformat(), t, k] for m, t, k in thresholds)})


def test_a_threshold_is_reached_at_its_exact_microsecond_not_before() -> None:
    warn = T0 + timedelta(minutes=45, microseconds=1)
    timer = Timer.from_bytes(_value("P1", (T0 + timedelta(hours=1), "resolution", "breached"),
                                    (warn, "resolution", "warning")))
    assert timer.priority == "P1"
    assert timer.reached(epoch_us(warn) - 1) == []
    assert timer.reached(epoch_us(warn)) == ["resolution:warning"]
    assert timer.reached(epoch_us(T0 + timedelta(days=1))) == [
        "resolution:warning", "resolution:breached"]


def test_moments_in_other_zones_compare_as_instants() -> None:
    utc = datetime.fromisoformat("2026-11-02T07:00:00+00:00")  # 10:00 at +03:00
    timer = Timer.from_bytes(_value("P2", (utc, "first_response", "breached")))
    assert timer.reached(epoch_us(T0)) == ["first_response:breached"]
    assert timer.reached(epoch_us(T0) - 1) == []


def test_writes_through_the_kv_keep_the_index_current_once_built() -> None:
    table = MemoryKV()
    index = TimerIndex()
    kv = IndexedKV(table, index)
    kv.put("t-1", _value("P1", (T0, "resolution", "breached")))
    assert index.stale and len(index) == 0  # not built yet: the table is the truth
    index.rebuild((k, table.get(k) or b"") for k in table.keys())
    assert not index.stale and "t-1" in index
    kv.put("t-2", _value("P3", (T0, "first_response", "warning")))
    kv.delete("t-1")
    assert [(k, t.priority) for k, t in index.items()] == [("t-2", "P3")]
    assert kv.get("t-2") == table.get("t-2")


def test_a_rebalance_empties_the_index_until_it_is_rebuilt() -> None:
    index = TimerIndex()
    index.rebuild([("t-1", _value("P1", (T0, "resolution", "breached")))])
    index.invalidate()
    assert index.stale and "t-1" not in index
    index.set("t-9", _value("P1", (T0, "resolution", "breached")))  # ignored while stale
    assert len(index) == 0
