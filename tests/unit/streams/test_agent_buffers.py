"""KPI_BUFFER_BATCHES bounds the agents' queues in fetched chunks on the fast path.

Faust's default (stream_buffer_maxsize, 4,096 messages) suits one record a message; on the
fast path a message is a chunk of thousands of records, and a backlog's read-ahead grew to
GiBs. `app.topic(maxsize=...)` silently drops the argument, so this checks the queues the
agents actually read.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from streams.settings import Settings
from streams.worker.app import KpiWorker
from streams.worker.edge import queued_records
from streams.worker.fastpath import RecordBatch


@pytest.mark.parametrize(("fast_path", "batches"), [(True, 5), (False, 5), (True, None)])
def test_agent_queues_bound(tmp_path: Path, fast_path: bool, batches: int | None) -> None:
    s = Settings(brokers="127.0.0.1:1", data_dir=tmp_path, fast_path=fast_path)
    if batches is not None:
        s = s.model_copy(update={"buffer_batches": batches})
    w = KpiWorker(s)
    agents = w.app.agents
    assert set(agents) == {"tickets", "employees", "customers", "departments", "norm-orders"}
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


def test_an_ack_from_an_earlier_assignment_commits_nothing(tmp_path: Path) -> None:
    """Faust's stream acks a message it skips as stale; on the fast path that message is a
    whole chunk, which no agent processed: its offsets must not become committable."""
    from faust.types import TP
    from faust.types.tuples import Message

    w = KpiWorker(Settings(brokers="127.0.0.1:1", data_dir=tmp_path))
    consumer = cast(Any, w.app.consumer)
    app = cast(Any, w.app)
    tp = TP(w.ticket_topic_names[0], 0)
    app.topics._acking_topics.add(tp.topic)  # as once the agents have subscribed
    app.consumer_generation_id = 3

    def message(offset: int, generation: int) -> Message:
        return Message(tp.topic, 0, offset, 0.0, 0, None, b"k", b"v", None, None, tp=tp,
                       generation_id=generation)

    stale = message(5_999, generation=2)
    assert consumer.ack(stale) is False
    assert stale.acked
    assert consumer._new_offset(tp) is None  # nothing to commit
    current = message(41, generation=3)
    assert consumer.ack(current) is True
    assert consumer._new_offset(tp) == 42
