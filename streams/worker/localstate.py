"""Local table state that the broker no longer backs, found before Faust starts.

A worker's RocksDB tables remember, per partition, the last changelog offset they hold.
When the broker behind them changed (the embedded broker forgets everything when it
stops, topics were deleted and recreated, or KPI_BROKERS now points at another cluster)
those offsets lie beyond what the changelog holds, and Faust stops recovery with a
ConsistencyError traceback. Checking first lets the worker say what it found and how to
start afresh, in one line.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.admin import TABLES
from streams.settings import Settings

OFFSET_KEY = b"__faust\0offset__"  # where faust's RocksDB store keeps a partition's offset
_DB_NAME = re.compile(r"^(?P<table>.+)-(?P<partition>\d+)\.db$")


class LocalStateError(RuntimeError):
    """This worker's local state does not match the broker; the message says what to do."""


@dataclass(frozen=True)
class Mismatch:
    """A table partition whose stored offset the broker's changelog does not reach."""

    topic: str
    partition: int
    stored: int
    end: int | None  # the changelog's end offset; None when the topic does not exist


def state_dir(s: Settings) -> Path:
    """This worker's state for its generation (Faust: datadir / v{version})."""
    return s.data_dir / f"v{s.generation}"


def changelog_topic(s: Settings, table: str) -> str:
    """The changelog Faust writes for `table` (its app id carries -v{n} after generation 1)."""
    base = f"{s.topic_prefix}{s.app_id}"
    app_id = base if s.generation <= 1 else f"{base}-v{s.generation}"
    return f"{app_id}-{table}-changelog"


def stored_offsets(s: Settings) -> dict[tuple[str, int], int]:
    """(changelog topic, partition) -> the offset the local table partition holds."""
    from rocksdict import AccessType, Options, Rdict

    found: dict[tuple[str, int], int] = {}
    tables = state_dir(s) / "tables"
    if not tables.is_dir():
        return found
    for path in sorted(tables.iterdir()):
        m = _DB_NAME.match(path.name)
        if m is None or m["table"] not in TABLES or not path.is_dir():
            continue
        db = Rdict(str(path), options=Options(raw_mode=True),
                   access_type=AccessType.read_only())
        try:
            raw = db.get(OFFSET_KEY)
        finally:
            db.close()
        if raw is not None:
            found[(changelog_topic(s, m["table"]), int(m["partition"]))] = int(raw)
    return found


def end_offsets(s: Settings, topics: set[str]) -> dict[tuple[str, int], int]:
    """(topic, partition) -> end offset, for those of `topics` the broker has."""
    from kafka import KafkaConsumer, TopicPartition

    consumer: Any = KafkaConsumer(request_timeout_ms=15000, **s.kafka_python_options())
    try:
        tps = [TopicPartition(t, p) for t in sorted(topics)
               for p in sorted(consumer.partitions_for_topic(t) or ())]
        ends = consumer.end_offsets(tps) if tps else {}
        return {(tp.topic, tp.partition): int(n) for tp, n in ends.items()}
    finally:
        consumer.close()


def mismatches(stored: dict[tuple[str, int], int], ends: dict[tuple[str, int], int]
               ) -> list[Mismatch]:
    """Partitions with stored state whose changelog the broker lacks or holds empty.

    Only a missing or empty changelog proves another broker: after a SIGKILL the stored
    offset may legitimately run ahead of records still queued for the changelog."""
    out = []
    for (topic, partition), offset in sorted(stored.items()):
        end = ends.get((topic, partition))
        if end is None or (end <= 0 and offset >= 0):
            out.append(Mismatch(topic, partition, offset, end))
    return out


def check(s: Settings) -> None:
    """Raise LocalStateError when the local state is ahead of the broker's changelogs."""
    stored = stored_offsets(s)
    if not stored:
        return
    bad = mismatches(stored, end_offsets(s, {t for t, _ in stored}))
    if not bad:
        return
    first = bad[0]
    where = ("is missing" if first.end is None
             else f"ends at offset {first.end - 1}")
    raise LocalStateError(
        f"local state in {state_dir(s)} does not match the broker {s.brokers}: "
        f"{len(bad)} table partition(s) hold offsets the broker does not have "
        f"({first.topic} [{first.partition}] stored {first.stored}, the topic {where}); "
        "the broker was restarted empty, its topics recreated, or it is another cluster. "
        "Run `kpi worker --reset-local-state` to delete this state and rebuild it from "
        "the broker")


RUNNING_MARK = ".running"


def open_state(s: Settings) -> bool:
    """Mark this generation's state in use; True when a mark left behind says the last
    process on it did not stop cleanly, whose tables are then deleted (to be rebuilt from
    the changelogs).

    Agents write RocksDB at once and hand changelog records to the producer as a batch
    ends; a SIGKILL or a crash in between leaves local writes the changelogs never got,
    and whatever the batch owed other agents unsent. Its input is redelivered, but a
    store that already holds it takes it for a duplicate, so those writes would never
    reach the changelog (a worker taking the partition over would miss them). As Kafka
    Streams does without a clean-shutdown checkpoint, the local copy is not trusted."""
    d = state_dir(s)
    mark = d / RUNNING_MARK
    unclean = mark.exists() and (d / "tables").exists()
    if unclean:
        shutil.rmtree(d / "tables")
    d.mkdir(parents=True, exist_ok=True)
    mark.write_text(f"{os.getpid()}\n")
    return unclean


def close_state(s: Settings) -> None:
    """The process stopped cleanly: its local state is what its changelogs hold."""
    (state_dir(s) / RUNNING_MARK).unlink(missing_ok=True)


def reset(s: Settings) -> Path | None:
    """Delete this worker's state for its generation; the deleted directory, if any."""
    target = state_dir(s)
    if not target.exists():
        return None
    shutil.rmtree(target)
    return target
