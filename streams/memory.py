"""The heap of a long-running worker: fewer malloc arenas, freed pages handed back, and a
garbage collector tuned for a fold.

RocksDB's background threads, aiokafka's fetcher and the event loop each allocate from
their own glibc arena, and values rewritten with a new size on every event (a day growing
call by call) leave holes that glibc keeps: a soak sees RSS creep up long after the data
structures stopped growing. Two standard remedies, both glibc calls, no-ops elsewhere:
capping the number of arenas (what `MALLOC_ARENA_MAX` does, but settable after start)
and `malloc_trim(0)` on a timer, which returns free pages at the top of every arena.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from functools import cache
from typing import Any

_M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)


@cache
def _libc() -> Any | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt  # noqa: B018 - glibc only (musl has neither call)
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def limit_arenas(n: int) -> bool:
    """Cap malloc arenas to n (0 leaves glibc's default: 8 per core). Call before threads
    start: arenas already created stay."""
    libc = _libc()
    if libc is None or n <= 0:
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, n))


def trim() -> bool:
    """Hand free heap pages back to the OS; True when some were released."""
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


def tune_gc(gen0_threshold: int) -> None:
    """Collect the young generation every `gen0_threshold` allocations instead of 700.

    A fold allocates millions of short-lived containers, and the worker holds tens of
    thousands of long-lived ones (fold cursors, batch caches): with CPython's default every
    few hundred events triggered a collection that walked them, about a third of the pure
    fold's time. Objects alive at start-up are moved out of the collector's sight
    (`gc.freeze`), as they are never garbage. 0 leaves the interpreter's defaults.
    """
    if gen0_threshold <= 0:
        return
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)
