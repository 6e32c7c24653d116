"""The bench's feed: a month of the simulated centre, as many seats as needed or as asked."""

from __future__ import annotations

import orjson
import pytest

from streams.devtools.bench import BenchError, make_feed


def test_a_fixed_centre_spreads_the_events_over_the_seats_asked() -> None:
    records, employees = make_feed(3_000, 1, employees=25)
    assert employees == 25 and len(records) == 3_000
    seats = {orjson.loads(v).get("employee_id") for t, _, v in records if t == "calls"}
    assert 10 < len(seats - {None}) <= 25


def test_a_fixed_centre_too_small_for_the_events_is_a_clear_error() -> None:
    with pytest.raises(BenchError, match=r"a month of 1 seat\(s\) is .* fewer than --events"):
        make_feed(50_000, 1, employees=1)
