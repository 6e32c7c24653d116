"""Shared fixtures: the real embedded broker on a free port (no Kafka mocks)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from streams.devtools.broker import EmbeddedBroker

# CI (`.ci/run`) sets HYPOTHESIS_PROFILE=ci: the same examples on every run, so that a
# property that a rare input breaks fails here, where someone explores, rather than at
# random in CI. Locally the examples are random and failures are kept in .hypothesis/.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# Tests press Ctrl-C on the processes they start (SIGINT to `kpi dev`, `kpi broker`). A
# test run started in the background of a non-interactive shell (`make test &`, a job
# runner) inherits SIGINT ignored, and so would every process it starts, which then never
# sees the Ctrl-C: this process takes Python's own handler back, which a child re-installs.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One Tansu broker for the whole session; tests isolate themselves by topic prefix."""
    log = Path(tmp_path_factory.mktemp("broker")) / "tansu.log"
    b = EmbeddedBroker(log_path=log).start()
    try:
        yield b
    finally:
        b.stop()
