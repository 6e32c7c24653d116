"""RocksDB for the worker's tables under one memory budget for the whole process.

Faust's rocksdict store gives every partition of every table its own block cache and
memtables, and keeps index and filter blocks outside any cache, so a worker's memory
grows with the partitions it owns and with the data on disk (a 30-minute soak showed it).
This store is Faust's, with one change to the options each partition's database is
opened with: all of them share one block cache, index and filter blocks are charged to
it, and memtables are charged to it through one write-buffer manager. The process's
RocksDB memory is then about `KPI_ROCKSDB_MEMORY_MB`, whatever the partitions and data.

Registered as the `kpirocksdb` store through the `faust.stores` entry point (pyproject),
as the fast path is registered as a transport.
"""

from __future__ import annotations

import weakref
from typing import Any

import rocksdict
from faust.stores import rocksdb as _faust_rocksdb

# One budget per process (per size, should two ever be configured).
_BUDGETS: dict[int, tuple[Any, Any]] = {}
# Every open store of the process, for the memory outside the budget (table readers).
_STORES: weakref.WeakSet[Store] = weakref.WeakSet()


def shared_budget(total_bytes: int) -> tuple[Any, Any]:
    """The process's block cache and the write-buffer manager charging memtables to it."""
    if total_bytes not in _BUDGETS:
        cache = rocksdict.Cache(total_bytes)
        memtables = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
            total_bytes // 2, False, cache)
        _BUDGETS[total_bytes] = (cache, memtables)
    return _BUDGETS[total_bytes]


def budget_usage() -> dict[str, int]:
    """Bytes used under the process's budget: `cache` is the shared block cache's usage
    (memtables, index and filter blocks are charged to it, so it is the whole), `memtables`
    the write-buffer manager's part of it, `budget` the configured total; `table_readers`
    is outside the budget (RocksDB's estimate over every open database). Empty before any
    table is opened."""
    usage = {"cache": 0, "memtables": 0, "budget": 0, "table_readers": 0}
    for total, (cache, memtables) in _BUDGETS.items():
        usage["cache"] += int(cache.get_usage())
        usage["memtables"] += int(memtables.get_usage())
        usage["budget"] += total
    for store in list(_STORES):
        for db in list(store._dbs.values()):
            try:  # not charged to the cache: RocksDB's own estimate per open database
                usage["table_readers"] += int(
                    db.property_int_value("rocksdb.estimate-table-readers-mem") or 0)
            except Exception:  # closed under a rebalance meanwhile
                continue
    return usage if _BUDGETS else {}


class BudgetedOptions(_faust_rocksdb.RocksDBOptions):
    """Faust's options, with the shared cache and write-buffer manager (`block_cache_size`
    is the whole process's budget here)."""

    def as_options(self) -> Any:
        opts = super().as_options()
        cache, memtables = shared_budget(self.block_cache_size)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, True)
        table.set_block_cache(cache)
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        opts.set_block_based_table_factory(table)
        opts.set_write_buffer_manager(memtables)
        return opts


class Store(_faust_rocksdb.Store):
    """Faust's RocksDB store opening its databases with `BudgetedOptions`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rocksdb_options = BudgetedOptions(**(self.options or {}), use_rocksdict=True)
        _STORES.add(self)
