"""The consumer's fetch wait follows how far behind the worker is."""

from __future__ import annotations

from streams.settings import Settings
from streams.worker.fastpath import fetch_wait_for


def test_behind_uses_the_backlog_wait_and_caught_up_the_live_one() -> None:
    assert fetch_wait_for(5001, live_ms=1500, backlog_ms=200, backlog_messages=5000) == 200
    assert fetch_wait_for(5000, live_ms=1500, backlog_ms=200, backlog_messages=5000) == 1500
    assert fetch_wait_for(0, live_ms=1500, backlog_ms=200, backlog_messages=5000) == 1500


def test_defaults_keep_a_live_feed_on_fausts_wait() -> None:
    s = Settings()
    # a live centre's lag stays in the hundreds (the soak's max: 622 at 200 events/s)
    assert fetch_wait_for(622, s.fetch_max_wait_ms, s.backlog_fetch_max_wait_ms,
                          s.backlog_messages) == 1500
    assert fetch_wait_for(100_000, s.fetch_max_wait_ms, s.backlog_fetch_max_wait_ms,
                          s.backlog_messages) == 200
