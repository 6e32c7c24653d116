"""The worker's tables, and the adapter that puts a Faust table behind the
projectors' KV interface (get/put/delete of bytes by string key)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import faust
from kafka.partitioner.default import murmur2

from projections.store import rocks_prefix_items
from streams.settings import Settings
from streams.worker.changelog import DirectSender, DirectTable


@functools.lru_cache(maxsize=65_536)
def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a key (and so the table partition
    holding every key written while processing it). Memoised: murmur2 is Python code, and
    the same tickets, employees, customers and departments are asked for batch after
    batch (bundles, snapshots, the alert timer's scan of the open tickets)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def as_bytes(value: Any) -> Any:
    """Table values are bytes, or a bytes-like view straight from RocksDB."""
    return value if value is None or isinstance(value, bytes) else bytes(value)


class TableKV:
    """A Faust table (raw keys and values) behind the projectors' KV interface."""

    def __init__(self, table: Any, partitions: int = 0,
                 direct: DirectTable | None = None) -> None:
        self.table = table
        self.partitions = partitions
        # The agents' write path (streams/worker/changelog.py); None: Faust's table as is.
        self.direct = direct

    def scoped(self, owner: str) -> Any:
        """Reads of keys stored in `owner`'s partition (a ticket's, an employee's keys),
        straight from that partition's RocksDB. Outside an event, Faust's table looks a
        key up in every partition, twice (`in`, then the read): that was most of what
        snapshots and gauges cost a live worker. Falls back to the table when the
        partition is not open here."""
        if self.partitions <= 0:
            return self
        db = getattr(self.table.data, "_dbs", {}).get(partition_of(owner, self.partitions))
        return self if db is None else PartitionReader(db)

    def get(self, key: str) -> bytes | None:
        if self.direct is not None:
            return as_bytes(self.direct.get(key.encode()))
        return as_bytes(self.table.get(key.encode()))

    def put(self, key: str, value: bytes) -> None:
        if self.direct is not None:
            self.direct.put(key.encode(), value)
        else:
            self.table[key.encode()] = value

    def delete(self, key: str) -> None:
        if self.direct is not None:
            self.direct.put(key.encode(), None)
        else:
            self.table.pop(key.encode(), None)


class PartitionReader:
    """One partition's RocksDB of a table, read-only, behind the KV interface."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def get(self, key: str) -> bytes | None:
        return as_bytes(self.db.get(key.encode()))

    def prefix_items(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        return rocks_prefix_items(self.db, prefix)

    def put(self, key: str, value: bytes) -> None:
        raise TypeError("a partition reader is read-only")

    def delete(self, key: str) -> None:
        raise TypeError("a partition reader is read-only")


def rocksdb_options(s: Settings) -> dict[str, Any]:
    """Store options for one table (a fresh dict: Faust's Store pops keys from it)."""
    mib = 1024 * 1024
    return {"driver": "rocksdict",
            "write_buffer_size": s.rocksdb_write_buffer_mb * mib,
            "max_write_buffer_number": 2,
            "target_file_size_base": 16 * mib,
            "block_cache_size": s.rocksdb_memory_mb * mib,  # the process's budget
            "block_cache_compressed_size": 0}


class WorkerTables:
    """The tickets, employees, alert-timers, customers and departments tables, and their
    direct write path."""

    def __init__(self, app: faust.App, s: Settings) -> None:
        # bytes keys and values select Faust's raw codec for the store and the changelog,
        # so changelog keys are the same bytes as the source topics' keys (same partition,
        # and readable by `kpi replay`); we serialize values ourselves.
        table_opts: dict[str, Any] = {"partitions": s.partitions, "key_type": bytes,
                                      "value_type": bytes}
        self.tickets = app.Table("tickets", options=rocksdb_options(s), **table_opts)
        self.employees = app.Table("employees", options=rocksdb_options(s), **table_opts)
        self.timers = app.Table("alert-timers", options=rocksdb_options(s), **table_opts)
        # Repeat contacts by customer and cover by department day (streams/worker/rules.py).
        self.customers = app.Table("customers", options=rocksdb_options(s), **table_opts)
        self.departments = app.Table("departments", options=rocksdb_options(s), **table_opts)
        # Agents write their tables and hot outputs through aiokafka directly (see
        # streams/worker/changelog.py); each batch publishes its changelog records before
        # it returns, so before its offsets can be committed.
        self.sender = DirectSender(app)
        self.direct = [DirectTable(t, self.sender) for t in
                       (self.tickets, self.timers, self.employees, self.customers,
                        self.departments)]
        (self.tickets_w, self.timers_w, self.employees_w, self.customers_w,
         self.departments_w) = self.direct

    def settled(self) -> bool:
        """Every local write has its changelog record in aiokafka (after a stop: the
        local state holds nothing its changelogs lack)."""
        return all(t.settled() for t in self.direct) and self.sender.settled()

    async def publish(self) -> None:
        """Changelog records of the batch's table writes, sent before it is acknowledged.
        Every table's writes reach RocksDB first, before any send can yield to another
        task (a rebalance may close a partition's database while a send waits)."""
        for table in self.direct:
            table.write()
        for table in self.direct:
            await table.publish()
