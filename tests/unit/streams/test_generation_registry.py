"""A worker's generation and order cutoff come from the registry; replay progress lines."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from streams.ops.replay import ProgressLines, progress_line
from streams.settings import Settings
from streams.worker.generations import (
    Generation,
    NothingToBuild,
    Registry,
    UnknownGeneration,
    resolve,
    serving_settings,
)

CUT = "2026-11-20T08:30:00.123456+00:00"


def _registry(active: int | None) -> Registry:
    return Registry({1: Generation(1, "retired"),
                     2: Generation(2, "active", orders_cutoff=CUT),
                     3: Generation(3, "building", orders_cutoff="2026-11-21T00:00:00+00:00")},
                    active)


def test_a_follower_serves_the_active_generation_with_its_recorded_cutoff() -> None:
    # An operator's stray variable changes nothing: the registry decides.
    s = Settings(generation=1, orders_cutoff=datetime(2020, 1, 1, tzinfo=UTC))
    r = resolve(_registry(2), s)
    assert (r.generation, r.orders_cutoff) == (2, datetime.fromisoformat(CUT))


def test_a_replay_worker_builds_its_own_generation_with_its_cutoff() -> None:
    s = Settings(generation=3, follow_active=False)
    r = resolve(_registry(2), s)
    assert (r.generation, r.orders_cutoff) == (3, datetime(2026, 11, 21, tzinfo=UTC))


def test_generation_one_is_live() -> None:
    r = resolve(_registry(None), Settings(orders_cutoff=datetime(2020, 1, 1, tzinfo=UTC)))
    assert (r.generation, r.orders_cutoff) == (1, None)


def test_an_unrecorded_generation_is_refused() -> None:
    with pytest.raises(UnknownGeneration, match="generation 7 is not in the registry"):
        resolve(_registry(2), Settings(generation=7, follow_active=False))


def test_a_building_worker_refuses_a_generation_no_longer_building() -> None:
    s = Settings(generation=2, follow_active=False, stop_when_built=True)
    with pytest.raises(NothingToBuild, match="generation 2 is active: there is nothing to build"):
        resolve(_registry(2), s)
    built = resolve(_registry(2), s.model_copy(update={"generation": 3}))
    assert built.generation == 3  # still building: it builds


def test_a_later_generation_waits_for_the_registry() -> None:
    calls: list[int] = []
    slept: list[float] = []

    def read(s: Settings) -> Registry:
        calls.append(1)
        if len(calls) < 3:
            raise OSError("broker away")
        return _registry(2)

    said: list[str] = []
    r = serving_settings(Settings(generation=2), said.append, sleep=slept.append, read=read)
    assert (r.generation, r.orders_cutoff) == (2, datetime.fromisoformat(CUT))
    assert slept == [1.0, 2.0]
    assert any("needs its order cutoff" in line for line in said)


def test_generation_one_serves_live_when_the_registry_is_unreadable() -> None:
    def read(s: Settings) -> Registry:
        raise OSError("broker away")

    r = serving_settings(Settings(orders_cutoff=datetime(2020, 1, 1, tzinfo=UTC)),
                         lambda _: None, sleep=lambda _: None, read=read)
    assert (r.generation, r.orders_cutoff) == (1, None)


LINE = re.compile(r"^replay: [\d,]+/[\d,]+ events \(\d+\.\d%\), [\d,]+/s, "
                  r"(\d+s left|\d+m\d\ds left|\d+h\d\dm left|done|time left unknown)$")


def test_progress_line_format() -> None:
    assert (progress_line(1200, 19000, 5.0)
            == "replay: 1,200/19,000 events (6.3%), 240/s, 1m14s left")
    assert progress_line(0, 19, 2.0) == "replay: 0/19 events (0.0%), 0/s, time left unknown"
    assert progress_line(19, 19, 2.0) == "replay: 19/19 events (100.0%), 10/s, done"
    assert progress_line(10, 1_000_000, 1.0).endswith("27h46m left")
    for line in (progress_line(1200, 19000, 5.0), progress_line(0, 19, 2.0),
                 progress_line(19, 19, 2.0), progress_line(5, 90, 1.0)):
        assert LINE.match(line), line


def test_progress_lines_come_at_intervals_and_once_at_the_end() -> None:
    now = [0.0]
    out: list[str] = []
    lines = ProgressLines(out.append, interval=5.0, clock=lambda: now[0])
    for t, done in ((0.25, 0), (1.0, 0), (4.0, 100), (5.5, 200), (6.0, 300), (11.0, 900),
                    (12.0, 1000), (12.5, 1000)):
        now[0] = t
        lines(done, 1000)
    assert out == [progress_line(0, 1000, 0.25), progress_line(200, 1000, 5.5),
                   progress_line(900, 1000, 11.0), progress_line(1000, 1000, 12.0)]
