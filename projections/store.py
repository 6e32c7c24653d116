"""One key-value store interface, two implementations (memory, rocksdict), one contract test.

The projectors only need get/put/delete of bytes by string key; in the worker the same
interface is served by a Faust table (changelogged RocksDB), in tests and the pure fold by
these two.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, TypeVar

from rocksdict import Options, Rdict

K = TypeVar("K")
V = TypeVar("V")


class KV(Protocol):
    """Bytes by string key: all a projector needs from its state store."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes) -> None: ...

    def delete(self, key: str) -> None: ...


def prefix_scan(kv: KV, prefix: str) -> Iterator[tuple[str, bytes]] | None:
    """Every (key, value) whose key starts with `prefix`, in key order, when the store can
    read a key range in one pass (RocksDB: one seek); None when it can only `get`."""
    scan = getattr(kv, "prefix_items", None)
    return None if scan is None else scan(prefix)


def rocks_prefix_items(db: Rdict, prefix: str) -> Iterator[tuple[str, bytes]]:
    start = prefix.encode()
    it = db.iter()
    it.seek(start)
    while it.valid():
        key = it.key()
        if not key.startswith(start):
            break
        yield key.decode(), bytes(it.value())
        it.next()


def lru_put(cache: OrderedDict[K, V], key: K, value: V, limit: int) -> None:
    """Put `key` last in an LRU, and drop the least recently put entries beyond `limit`.

    An OrderedDict, not a plain dict: a dict whose oldest entries are deleted over and
    over finds its first live entry by skipping the deleted slots before it, which made
    this a visible share of a worker's profile."""
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > limit:
        cache.popitem(last=False)


def scoped(kv: KV, owner: str) -> KV:
    """The store as seen for keys stored under `owner` (a ticket, an employee): a store
    that can read them from the owner's partition alone offers `scoped(owner)`."""
    narrow = getattr(kv, "scoped", None)
    return kv if narrow is None else narrow(owner)


class MemoryKV:
    """A dict behind the KV interface, for tests and the pure fold."""

    def __init__(self) -> None:
        self._d: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self._d.get(key)

    def put(self, key: str, value: bytes) -> None:
        self._d[key] = value

    def delete(self, key: str) -> None:
        self._d.pop(key, None)

    def keys(self) -> Iterator[str]:
        return iter(sorted(self._d))

    def prefix_items(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        # A scan of every key: the memory store serves tests and the pure fold, not reads
        # at scale.
        return iter([(k, self._d[k]) for k in sorted(self._d) if k.startswith(prefix)])

    def __len__(self) -> int:
        return len(self._d)


def small_machine_options() -> Options:
    """RocksDB sized for a 2-core, few-GiB worker: modest memtables and block cache."""
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.set_write_buffer_size(16 * 1024 * 1024)
    opts.set_max_write_buffer_number(3)
    opts.increase_parallelism(2)
    return opts


class RocksKV:
    """rocksdict (raw bytes mode) behind the KV interface."""

    def __init__(self, path: Path | str) -> None:
        self._db = Rdict(str(path), options=small_machine_options())

    def get(self, key: str) -> bytes | None:
        value = self._db.get(key.encode())
        return bytes(value) if isinstance(value, bytes | bytearray) else None

    def put(self, key: str, value: bytes) -> None:
        self._db.put(key.encode(), value)

    def delete(self, key: str) -> None:
        self._db.delete(key.encode())

    def prefix_items(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        return rocks_prefix_items(self._db, prefix)

    def keys(self) -> Iterator[str]:
        for k in self._db.keys():
            yield k.decode() if isinstance(k, bytes) else str(k)

    def __len__(self) -> int:
        return sum(1 for _ in self._db.keys())

    def close(self) -> None:
        self._db.close()


class BatchKV:
    """A write-back cache over another KV: one write per key per batch, however many events.

    Reads see the batch's own writes; `flush()` hands every changed key to the underlying
    store once. The worker flushes before it acknowledges the batch's records.
    """

    _DELETED = object()

    def __init__(self, inner: KV) -> None:
        self.inner = inner
        self._cache: dict[str, object] = {}
        self._dirty: set[str] = set()

    def get(self, key: str) -> bytes | None:
        if key in self._cache:
            v = self._cache[key]
            return None if v is self._DELETED else v  # type: ignore[return-value]
        value = self.inner.get(key)
        self._cache[key] = self._DELETED if value is None else value
        return value

    def put(self, key: str, value: bytes) -> None:
        self._cache[key] = value
        self._dirty.add(key)

    def delete(self, key: str) -> None:
        self._cache[key] = self._DELETED
        self._dirty.add(key)

    def flush(self) -> int:
        """Write the batch's changes through; returns how many keys were written."""
        n = len(self._dirty)
        for key in self._dirty:
            v = self._cache[key]
            if v is self._DELETED:
                self.inner.delete(key)
            else:
                self.inner.put(key, v)  # type: ignore[arg-type]
        self._dirty.clear()
        self._cache.clear()
        return n


def next_version(last: int) -> int:
    """The version of a replacement that follows `last`: past it, and past every version
    this store's owner may have sent before a crash.

    A replacement is sent before the store that counts it reaches its changelog, so a
    worker that takes the store over from the changelog (after a crash, or on another
    machine) can find a lower count than its receivers already hold; counting on from
    there, its new replacements would be taken as stale. Microseconds of the wall clock
    move past whatever the dead process sent (it sent before it died), and `last + 1`
    keeps the order within one process whatever the clock does.
    """
    return max(last + 1, time.time_ns() // 1000)


def counted_version(last: int) -> int:
    """`next_version` for a fold that never recovers (the pure fold): reproducible."""
    return last + 1
