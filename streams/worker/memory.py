"""The heap of a long-running worker: jemalloc when the machine has it, else fewer glibc
malloc arenas and freed pages handed back; and a garbage collector tuned for a fold.

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
import os
from collections.abc import Mapping
from functools import cache
from typing import Any

_M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)

# Where distributions install jemalloc (Debian/Ubuntu `libjemalloc2` per architecture,
# Fedora/Alpine/source builds).
JEMALLOC_PATHS = (
    "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
    "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
    "/usr/lib64/libjemalloc.so.2",
    "/usr/lib/libjemalloc.so.2",
    "/usr/local/lib/libjemalloc.so.2",
)
# Background purging returns freed pages within seconds without the worker calling in.
JEMALLOC_CONF = "background_thread:true,dirty_decay_ms:5000,muzzy_decay_ms:5000"
_REEXEC_MARK = "KPI_ALLOCATOR_REEXEC"


class AllocatorError(RuntimeError):
    """KPI_ALLOCATOR=jemalloc on a machine without the library."""


def find_jemalloc(paths: tuple[str, ...] = JEMALLOC_PATHS) -> str | None:
    return next((p for p in paths if os.path.isfile(p)), None)


def allocator_env(choice: str, env: Mapping[str, str],
                  paths: tuple[str, ...] = JEMALLOC_PATHS) -> dict[str, str] | None:
    """The environment to re-execute the worker with so that it runs on jemalloc, or None
    to run as it is (already on jemalloc, `system` chosen, or `auto` without the library).

    Why jemalloc: under glibc's malloc a live worker's RSS kept rising ~2 MiB a minute after
    every cache had filled (RocksDB's block cache churns variously sized blocks through
    the main arena, and freed holes are not reused well); under jemalloc the same soak is
    flat (README, Soak). A preload has to be in place before the process starts, hence
    the re-exec, which keeps the PID (systemd, containers) and the command line.
    """
    if choice == "system" or env.get(_REEXEC_MARK) or "jemalloc" in env.get("LD_PRELOAD", ""):
        return None
    lib = find_jemalloc(paths)
    if lib is None:
        if choice == "jemalloc":
            raise AllocatorError(
                "KPI_ALLOCATOR=jemalloc but no libjemalloc.so.2 in "
                f"{', '.join(paths)} (Debian/Ubuntu: apt-get install libjemalloc2)")
        return None
    preload = " ".join(x for x in (lib, env.get("LD_PRELOAD", "")) if x)
    return {**env, "LD_PRELOAD": preload, "MALLOC_CONF": env.get("MALLOC_CONF", JEMALLOC_CONF),
            _REEXEC_MARK: "1"}


def allocator_in_use(maps: str = "/proc/self/maps") -> str:
    """`jemalloc` when the library is mapped into the process, else `system`."""
    try:
        with open(maps) as f:
            return "jemalloc" if "libjemalloc" in f.read() else "system"
    except OSError:
        return "system"


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
