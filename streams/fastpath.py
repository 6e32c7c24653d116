"""Handing agents whole fetched batches instead of one event per Kafka record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class RecordBatch:
    """Consecutive records of one topic-partition, delivered to an agent as one event."""

    records: list[Any]
