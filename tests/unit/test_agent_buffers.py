"""KPI_BUFFER_BATCHES bounds the agents' queues in fetched chunks on the fast path.

Faust's default (stream_buffer_maxsize, 4,096 messages) suits one record a message; on the
fast path a message is a chunk of thousands of records, and a backlog's read-ahead grew to
GiBs. `app.topic(maxsize=...)` silently drops the argument, so this checks the queues the
agents actually read.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from streams.app import KpiWorker, queued_records
from streams.fastpath import RecordBatch
from streams.settings import Settings


@pytest.mark.parametrize(("fast_path", "batches"), [(True, 5), (False, 5), (True, None)])
def test_agent_queues_bound(tmp_path: Path, fast_path: bool, batches: int | None) -> None:
    s = Settings(brokers="127.0.0.1:1", data_dir=tmp_path, fast_path=fast_path)
    if batches is not None:
        s = s.model_copy(update={"buffer_batches": batches})
    w = KpiWorker(s)
    agents = w.app.agents
    assert set(agents) == {"tickets", "employees", "norm-orders"}
    # The default bounds the fast path's queues at 8 chunks; Faust's path keeps its own.
    want = (batches or 8) if fast_path else w.app.conf.stream_buffer_maxsize
    for agent in agents.values():
        assert agent.channel_iterator.queue.maxsize == want


def test_queued_records_counts_batch_records() -> None:
    events = [SimpleNamespace(value=RecordBatch([object()] * 300)),
              SimpleNamespace(value=b"one record"),
              SimpleNamespace(value=RecordBatch([object()] * 2))]
    assert queued_records(events) == 303
    assert queued_records([]) == 0
