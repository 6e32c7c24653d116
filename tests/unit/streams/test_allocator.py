"""Choosing the worker's malloc (streams/worker/memory.py): jemalloc when asked or available."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.worker.memory import JEMALLOC_CONF, AllocatorError, allocator_env, allocator_in_use


@pytest.fixture
def lib(tmp_path: Path) -> tuple[str, ...]:
    path = tmp_path / "libjemalloc.so.2"
    path.write_bytes(b"")
    return (str(tmp_path / "missing.so"), str(path))


def test_auto_preloads_the_library_found_once(lib: tuple[str, ...]) -> None:
    env = allocator_env("auto", {"PATH": "/bin"}, lib)
    assert env is not None
    assert env["LD_PRELOAD"] == lib[1] and env["MALLOC_CONF"] == JEMALLOC_CONF
    assert env["PATH"] == "/bin"
    assert allocator_env("auto", env, lib) is None  # the re-executed worker runs as it is


def test_a_users_preload_and_malloc_conf_are_kept(lib: tuple[str, ...]) -> None:
    env = allocator_env("jemalloc", {"LD_PRELOAD": "/x/libfoo.so", "MALLOC_CONF": "narenas:1"},
                        lib)
    assert env is not None
    assert env["LD_PRELOAD"] == f"{lib[1]} /x/libfoo.so" and env["MALLOC_CONF"] == "narenas:1"


def test_already_on_jemalloc_or_system_chosen_runs_as_it_is(lib: tuple[str, ...]) -> None:
    assert allocator_env("auto", {"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}, lib) is None
    assert allocator_env("system", {}, lib) is None


def test_without_the_library_auto_runs_on_the_system_malloc_and_jemalloc_is_an_error() -> None:
    assert allocator_env("auto", {}, ("/nonexistent/libjemalloc.so.2",)) is None
    with pytest.raises(AllocatorError, match="apt-get install libjemalloc2"):
        allocator_env("jemalloc", {}, ("/nonexistent/libjemalloc.so.2",))


def test_the_allocator_in_use_is_read_from_the_process_maps(tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    maps.write_text("7f00-7f01 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/libjemalloc.so.2\n")
    assert allocator_in_use(str(maps)) == "jemalloc"
    maps.write_text("7f00-7f01 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/libc.so.6\n")
    assert allocator_in_use(str(maps)) == "system"
    assert allocator_in_use(str(tmp_path / "none")) == "system"
