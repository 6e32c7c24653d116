"""The KV contract every store behind the projectors keeps (memory, rocksdict on tmp_path,
the worker's table adapter over its RocksDB store, a Faust partition's RocksDB through
`PartitionReader`), and the month read that uses its one-pass range read."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from rocksdict import Options, Rdict

from projections.employees import EmployeeProjector, parse_period
from projections.pipeline import Pipeline
from projections.store import KV, BatchKV, MemoryKV, RocksKV, prefix_scan
from streams.settings import Settings
from streams.worker.faustapp import build_app
from streams.worker.tables import PartitionReader, TableKV, WorkerTables
from tests import factory as f


class _AgentEvent:
    """What an agent's event tells a table write: the partition being processed (Faust
    keeps a weak reference to the current event in a context variable)."""

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition)


@pytest.fixture
def table_kv(tmp_path: Path) -> Iterator[TableKV]:
    """The adapter the worker's agents write through (streams/worker/tables.py): a Faust
    table of the worker's app, its RocksDB store (rocksdict) in tmp_path, written inside
    an event of partition 3 as an agent writes it."""
    from faust.streams import _current_event

    s = Settings(brokers="127.0.0.1:1", data_dir=tmp_path / "state", partitions=4)
    tables = WorkerTables(build_app(s), s)
    event = _AgentEvent(3)
    token = _current_event.set(weakref.ref(event))  # type: ignore[arg-type]
    try:
        yield TableKV(tables.employees, direct=tables.employees_w)
    finally:
        _current_event.reset(token)
        for db in list(cast(Any, tables.employees.data)._dbs.values()):
            db.close()


@pytest.fixture(params=["memory", "rocksdict", "batch-over-rocksdict", "table",
                        "batch-over-table"])
def kv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryKV()
        return
    if request.param.endswith("table"):
        table = request.getfixturevalue("table_kv")
        yield table if request.param == "table" else BatchKV(table)
        return
    store = RocksKV(tmp_path / "db")
    yield store if request.param == "rocksdict" else BatchKV(store)
    store.close()


def test_get_put_delete(kv: Any) -> None:
    assert kv.get("a") is None
    kv.put("a", b"1")
    kv.put("a|b", b"\x00\xff")
    assert kv.get("a") == b"1" and kv.get("a|b") == b"\x00\xff"
    kv.put("a", b"2")
    kv.delete("a")
    kv.delete("never-there")
    assert kv.get("a") is None and kv.get("a|b") == b"\x00\xff"
    if isinstance(kv, BatchKV):
        kv.flush()
        assert kv.inner.get("a") is None and kv.inner.get("a|b") == b"\x00\xff"


def test_keys_are_any_text_and_values_any_bytes(kv: Any) -> None:
    keys = ["e|2026-11-02", "e|\u00e9|#2026-11-02|s#", "\x00orders-reconciled", "k" * 300]
    for i, k in enumerate(keys):
        kv.put(k, bytes([i, 0, 255]) * 3)
    for i, k in enumerate(keys):
        got = kv.get(k)
        assert type(got) is bytes and got == bytes([i, 0, 255]) * 3


def test_the_table_adapter_writes_the_events_partition_and_queues_its_changelog(
        table_kv: TableKV) -> None:
    assert table_kv.direct is not None
    table_kv.put("gone", b"x")
    table_kv.direct.write()
    table_kv.put("e-1|2026-11-02", b"v")
    table_kv.delete("gone")
    db = table_kv.table.data._db_for_partition(3)
    # Gathered in a write batch until the next read or write-out: then all at once.
    assert db.get(b"e-1|2026-11-02") is None and db.get(b"gone") == b"x"
    assert table_kv.get("e-1|2026-11-02") == b"v" and table_kv.get("gone") is None
    assert bytes(db.get(b"e-1|2026-11-02")) == b"v" and db.get(b"gone") is None
    assert table_kv.direct._pending == {3: [(b"gone", b"x"), (b"e-1|2026-11-02", b"v"),
                                            (b"gone", None)]}
    # Read outside an agent's event, through the partition reader the API uses.
    reader = PartitionReader(db)
    assert reader.get("e-1|2026-11-02") == b"v" and reader.get("gone") is None


def test_a_prefix_scan_reads_exactly_the_keys_of_the_prefix_in_order(tmp_path: Path) -> None:
    keys = ["e|2026-10-31", "e|2026-11-01", "e|2026-11-01|sum", "e|2026-11-02",
            "e|2026-12-01", "e", "e|2026-11", "f|2026-11-01", "e|2026-11-\xe9"]
    raw = Rdict(str(tmp_path / "raw"), options=Options(raw_mode=True))
    stores: list[KV] = [MemoryKV(), RocksKV(tmp_path / "kv")]
    for k in keys:
        raw.put(k.encode(), k.encode())
        for s in stores:
            s.put(k, k.encode())
    stores.append(PartitionReader(raw))
    for s in stores:
        found = prefix_scan(s, "e|2026-11-")
        assert found is not None
        assert list(found) == [(k, k.encode()) for k in sorted(
            k for k in keys if k.startswith("e|2026-11-"))], type(s)
    assert prefix_scan(BatchKV(MemoryKV()), "e|") is None  # the batch cache only gets


class PointReads:
    """A store without range reads: the month is read with two point reads a day."""

    def __init__(self, inner: MemoryKV) -> None:
        self.inner = inner

    def get(self, key: str) -> bytes | None:
        return self.inner.get(key)

    def put(self, key: str, value: bytes) -> None:
        self.inner.put(key, value)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


def test_a_month_read_in_one_pass_equals_the_month_read_day_by_day() -> None:
    AT = "2026-11-{:02d}T{}:00+03:00"
    events = [f.order("2026-10-01T00:00:00+03:00")]
    for day in (2, 3, 17, 30):
        tid = f"t-{day}"
        events += [f.opened(tid, AT.format(day, "10:00"), "e|1", priority="P2",
                            decisions=["reactivation"]),
                   f.resolved(tid, AT.format(day, "11:00"), "e|1"),
                   f.opened(f"{tid}-b", AT.format(day, "12:00"), "e|1|2026-11-03",
                            priority="P2", decisions=["tariff_change"])]
    p = Pipeline(live=True)
    p.apply_all(f.model(ev) for ev in events)
    month = parse_period("2026-11")
    by_gets = EmployeeProjector(PointReads(p.employees_kv), p.cat, p.roster, live=True)
    for emp in ("e|1", "e|1|2026-11-03"):
        scanned = p.employees.employee(emp, month, 1)
        assert scanned == by_gets.employee(emp, month, 1)
        assert scanned["tickets_handled"] >= 1
    assert p.employees.employee("e|1", month, 1)["resolved"] == 4


def test_lru_put_keeps_the_most_recently_put_within_its_limit() -> None:
    from collections import OrderedDict

    from projections.store import lru_put

    cache: OrderedDict[str, int] = OrderedDict()
    for i in range(5):
        lru_put(cache, f"k{i}", i, limit=3)
    assert list(cache.items()) == [("k2", 2), ("k3", 3), ("k4", 4)]
    lru_put(cache, "k2", 20, limit=3)  # put again: now the most recent, new value
    lru_put(cache, "k5", 5, limit=3)   # drops the least recently put: k3
    assert list(cache.items()) == [("k4", 4), ("k2", 20), ("k5", 5)]
