"""Building workers are replaced when they die, within a bound; then the replay fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.ops.builders import BuilderDied, BuildingWorkers, cpu_seconds, exit_text
from streams.settings import Settings


class _Sleepers(BuildingWorkers):
    """Real processes standing in for workers: they sleep until stopped."""

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def _pool(tmp_path: Path, count: int, max_restarts: int) -> _Sleepers:
    return _Sleepers(Settings(data_dir=tmp_path / "data"), 2, count, max_restarts)


def test_a_dead_worker_is_replaced_until_the_bound(tmp_path: Path) -> None:
    pool = _pool(tmp_path, 2, 1)
    pool.start()
    try:
        assert pool.check() == []
        first = pool.procs[1]
        first.kill()
        first.wait()
        said = pool.check()
        assert said == ["building worker 2 died (killed by SIGKILL); replaced "
                        "(1 of 1 replacements)"]
        assert pool.procs[1] is not first and pool.procs[1].poll() is None
        pool.procs[0].kill()
        pool.procs[0].wait()
        with pytest.raises(BuilderDied, match=r"^building worker 1 died \(killed by SIGKILL\) "
                                              r"after 1 replacement\(s\)$"):
            pool.check()
    finally:
        pool.stop()
    assert all(p.poll() is not None for p in pool.procs)
    assert len(pool.cpu_seconds) == 2


def test_one_worker_without_replacements_fails_at_its_death(tmp_path: Path) -> None:
    pool = _pool(tmp_path, 1, 0)
    pool.start()
    pool.procs[0].terminate()
    pool.procs[0].wait()
    with pytest.raises(BuilderDied, match=r"^the replay worker died \(killed by SIGTERM\)$"):
        pool.check()
    pool.stop()


def test_extra_workers_keep_their_state_apart_and_it_is_removed(tmp_path: Path) -> None:
    pool = _pool(tmp_path, 3, 0)
    assert pool.data_dir(0) == tmp_path / "data"
    assert pool.data_dir(2) == tmp_path / "data-build-2"
    pool.data_dir(2).mkdir()
    pool.start()
    pool.stop()
    assert not pool.data_dir(2).exists()


def test_exit_text_and_cpu_seconds() -> None:
    assert exit_text(3) == "died (exit status 3)"
    assert exit_text(-9) == "died (killed by SIGKILL)"
    assert exit_text(-200) == "died (killed by signal 200)"
    own = cpu_seconds(os.getpid())
    assert own is not None and own > 0


class _Recording(_Sleepers):
    """Records, at each wait for the group to settle, which workers still run."""

    waits: list[tuple[list[int], list[bool]]]

    def _wait_settled(self, indexes: list[int], timeout: float = 60.0) -> None:
        self.waits.append((indexes, [p.poll() is None for p in self.procs]))


def test_workers_stop_one_at_a_time_the_rest_settled_in_between(tmp_path: Path) -> None:
    pool = _Recording(Settings(data_dir=tmp_path / "data"), 2, 3, 0)
    pool.waits = []
    pool.start()
    pool.stop()
    # before each next stop, the ones stopped so far are gone and the rest still run
    assert pool.waits == [([1, 2], [False, True, True]), ([2], [False, False, True])]
    assert all(p.poll() is not None for p in pool.procs)
