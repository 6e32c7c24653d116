"""The alert clock: the wall clock, except for a partition with records still to process,
whose clock is the latest moment it has processed."""

from __future__ import annotations

import pytest

from processors.alert_clock import AlertClocks, caught_up


@pytest.mark.parametrize(("highwater", "position", "expected"), [
    (10, 10, True),     # everything fetched is processed
    (10, 12, True),     # a position past the last fetch's high watermark
    (10, 9, False),     # one record still to process
    (0, None, True),    # an empty partition
    (None, 5, False),   # nothing fetched yet: not known to be caught up
    (10, None, False),  # no position yet (neither read nor committed)
])
def test_caught_up(highwater: int | None, position: int | None, expected: bool) -> None:
    assert caught_up(highwater, position) is expected


def test_a_partition_behind_runs_on_the_latest_moment_it_processed() -> None:
    now = 1_000_000
    clocks = AlertClocks(now)
    clocks.catching_up(2, 400_000)
    assert clocks.at(2) == 400_000
    assert clocks.at(1) == now  # not behind: the wall clock


def test_the_furthest_behind_input_of_a_partition_number_sets_its_clock() -> None:
    clocks = AlertClocks(1_000_000)
    clocks.catching_up(0, 700_000)  # tickets[0]
    clocks.catching_up(0, 300_000)  # escalations[0]
    clocks.catching_up(0, 900_000)  # reopens[0]
    assert clocks.at(0) == 300_000


def test_a_partition_behind_that_processed_nothing_owes_nothing_yet() -> None:
    clocks = AlertClocks(1_000_000)
    clocks.catching_up(5, -1)
    assert clocks.at(5) == -1


def test_a_frontier_in_the_future_is_capped_at_now() -> None:
    clocks = AlertClocks(1_000_000)
    clocks.catching_up(1, 5_000_000)  # an event stamped ahead of this machine's clock
    assert clocks.at(1) == 1_000_000
