"""`kpi replay`: build generation N+1 from the beginning of the input topics beside the live
generation N, then switch every reader to it and report whose figures changed.

Steps: register N+1 as building (with the order cutoff = now: every order issued so far
counts as issued at the start; every worker of N+1 reads it from the registry); run a
worker of generation N+1 (no alerts, no snapshots, not following the registry) until its
consumer group has consumed every input record that existed at the start and its internal
topics are drained; compute both generations' employee figures from their `employees`
changelogs; write the change report; stop the replay worker; mark N+1 active (live
workers follow and restart on it); publish a `kpi.employee_snapshot` for every
(employee, period) whose figures differ.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from processors.calendar import NormOrder, OrderCatalogue, with_cutoff
from projections.employees import (
    EmployeeProjector,
    is_entry_key,
    parse_period,
    split_day_key,
)
from projections.report import ChangeRow, diff, write_report
from projections.roster import Roster
from projections.store import MemoryKV
from schemas.decode import decode
from schemas.events import Event, NormOrderIssued
from schemas.topics import INPUT_TOPICS
from streams.admin import INTERNAL_TOPICS, create_topics, fetched_end_offsets, partitions_of
from streams.ops.builders import BuilderDied, BuildingWorkers
from streams.settings import Settings
from streams.worker import generations as gens

Figures = dict[tuple[str, str], dict[str, Any]]


class ReplayError(RuntimeError):
    """The replay could not complete; the live generation keeps serving."""


def group_id(settings: Settings, generation: int) -> str:
    """Faust's app id for a generation (the consumer group and changelog prefix)."""
    base = f"{settings.topic_prefix}{settings.app_id}"
    return base if generation <= 1 else f"{base}-v{generation}"


def changelog_topic(settings: Settings, generation: int, table: str) -> str:
    return f"{group_id(settings, generation)}-{table}-changelog"


def _consumer(settings: Settings) -> Any:
    from kafka import KafkaConsumer

    return KafkaConsumer(enable_auto_commit=False, consumer_timeout_ms=2000,
                         max_poll_records=5000, **settings.kafka_python_options())


def read_all(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every record of a topic, partition by partition, from the beginning to the end."""
    from kafka import TopicPartition

    c = _consumer(settings)
    try:
        parts = c.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return []
        end = fetched_end_offsets(c, tps)  # assigns them
        c.seek_to_beginning(*tps)
        out: list[tuple[bytes | None, bytes | None]] = []
        while any(c.position(tp) < end[tp] for tp in tps):
            batch = c.poll(timeout_ms=2000)
            if not batch:
                break
            for records in batch.values():
                out += [(r.key, r.value) for r in records]
        return out
    finally:
        c.close()


def end_offsets(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    from kafka import TopicPartition

    c = _consumer(settings)
    try:
        tps = [TopicPartition(t, p) for t in topics for p in (c.partitions_for_topic(t) or ())]
        return {(tp.topic, tp.partition): off
                for tp, off in fetched_end_offsets(c, tps).items()}
    finally:
        c.close()


def committed_offsets(settings: Settings, group: str) -> dict[tuple[str, int], int]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(request_timeout_ms=10000, **settings.kafka_python_options())
    try:
        if hasattr(admin, "list_group_offsets"):  # kafka-python >= 3
            offs = admin.list_group_offsets({group: None}).get(group, {})
        else:
            offs = admin.list_consumer_group_offsets(group)
        return {(tp.topic, tp.partition): om.offset for tp, om in offs.items() if om.offset >= 0}
    finally:
        admin.close()


def reference_state(settings: Settings, cutoff: datetime | None) -> tuple[OrderCatalogue, Roster]:
    """Orders (seen with a generation's cutoff) and the roster, read in full."""
    cat, roster = OrderCatalogue(), Roster()
    for key, value in read_all(settings, settings.topic("norm-orders")):
        ev = decode("norm-orders", key, value)
        if isinstance(ev, NormOrderIssued):
            cat.add(with_cutoff(NormOrder.from_event(ev), cutoff))
    for key, value in read_all(settings, settings.topic("roster")):
        ev = decode("roster", key, value)
        if isinstance(ev, Event):
            roster.apply(ev)
    return cat, roster


def generation_figures(settings: Settings, generation: int,
                       cutoff: datetime | None) -> Figures:
    """Every (employee, day) and (employee, month) object of a generation, from its changelog."""
    kv = MemoryKV()
    for raw_key, value in read_all(settings, changelog_topic(settings, generation, "employees")):
        if raw_key is None:
            continue
        key = raw_key.decode()
        # A day's sources (what each call, rating, evaluation and ticket contributed) are
        # summed in its value already; holding them all here would cost ~50-150 bytes per
        # event of history.
        if is_entry_key(key):
            continue
        if value is None:
            kv.delete(key)
        else:
            kv.put(key, value)
    cat, roster = reference_state(settings, cutoff)
    proj = EmployeeProjector(kv, cat, roster, live=True)
    periods: dict[str, set[str]] = {}
    for k in kv.keys():
        found = split_day_key(k)
        if found is not None:
            emp, day = found
            periods.setdefault(emp, set()).update({day, day[:7]})
    return {(emp, p): proj.employee(emp, parse_period(p), generation)
            for emp, ps in periods.items() for p in sorted(ps)}


@dataclass
class ReplayResult:
    old_generation: int
    new_generation: int
    events: int
    seconds: float
    rows: list[ChangeRow]
    csv_path: Path
    json_path: Path
    # From the replay worker's first output (its first batch processed) until caught up:
    # the rate of a long replay, without the worker's start and group join.
    processing_seconds: float | None = None
    workers: int = 1
    # CPU seconds of each building worker over the whole build (None where unreadable)
    worker_cpu_seconds: list[float | None] | None = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


@dataclass
class Progress:
    """Where a replay reports: events done of the total, and what befalls its workers."""

    on_progress: Callable[[int, int], None] | None = None
    on_line: Callable[[str], None] | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.on_progress is not None:
            self.on_progress(done, total)

    def say(self, line: str) -> None:
        if self.on_line is not None:
            self.on_line(line)


def replay(settings: Settings, report_dir: Path, *, timeout_s: float = 3600.0,
           on_progress: Callable[[int, int], None] | None = None,
           log_path: Path | None = None, workers: int = 1, max_restarts: int = 3,
           on_line: Callable[[str], None] | None = None) -> ReplayResult:
    """Build generation N+1 beside the live one with `workers` processes, switch to it,
    report the changes. A building worker that dies is replaced, `max_restarts` times in
    all; `on_line` hears of each replacement. With no workers, the group's members run
    elsewhere (`kpi worker --build-generation N+1`): `on_line` is told the command, and
    the wait is for the group's committed offsets, whoever commits them."""
    progress = Progress(on_progress, on_line)
    # N+1's internal topics and tables are co-partitioned with the input topics as they
    # are, whatever KPI_PARTITIONS the operator's shell has (the worker does the same).
    actual = partitions_of(settings, settings.topic("tickets"))
    if actual and actual != settings.partitions:
        settings = settings.model_copy(update={"partitions": actual})
    reg = gens.read_registry(settings)
    old = reg.active_generation
    new = reg.next_number()
    cutoff = datetime.now(UTC)
    started = time.monotonic()
    g = gens.Generation(new, "building", started_at=gens.now_iso(),
                        orders_cutoff=cutoff.isoformat())
    gens.write(settings, generation=g)
    s_new = settings.model_copy(update={"generation": new})
    create_topics(s_new)
    inputs = [settings.topic(t.name) for t in INPUT_TOPICS]
    target = end_offsets(settings, inputs)
    total = sum(target.values())
    internal = [s_new.internal_topic(n) for n in INTERNAL_TOPICS]
    pool = BuildingWorkers(settings, new, workers, max_restarts, log_path)
    if not workers and on_line is not None:
        on_line(f"generation {new} is registered as building: start `kpi worker "
                f"--build-generation {new}` on each building machine")
    pool.start()
    try:
        first_output = _wait_caught_up(settings, pool, group_id(settings, new), target,
                                       internal, timeout_s, progress, (old, new))
        caught_up = time.monotonic()
        seconds = caught_up - started
        g.state, g.caught_up_at, g.events = "caught_up", gens.now_iso(), total
        gens.write(settings, generation=g)
    except BaseException:
        g.state = "failed"
        gens.write(settings, generation=g)
        pool.stop()
        raise
    pool.stop()
    before = generation_figures(settings, old, gens.cutoff_of(reg, old))
    after = generation_figures(settings, new, cutoff)
    rows = diff(before, after)
    csv_path, json_path = write_report(rows, report_dir, old_gen=old, new_gen=new)
    g.state, g.activated_at = "active", gens.now_iso()
    gens.write(settings, generation=g, active=new)
    previous = reg.generations.get(old) or gens.Generation(old, started_at=None)
    previous.state = "retired"
    gens.write(settings, generation=previous)
    _publish_changed(settings, after, rows, new)
    processing = caught_up - first_output if first_output is not None else None
    return ReplayResult(old, new, total, seconds, rows, csv_path, json_path, processing,
                        workers, pool.cpu_seconds)


class ProgressLines:
    """Replay progress for a log or a pipe (no terminal to redraw a bar on).

    One line at the first report, then at most one every `interval` seconds, and one when
    every event is in: done/total, the mean rate since the replay began and the time left
    at that rate. Repeating the same count each poll told an operator nothing.
    """

    def __init__(self, say: Callable[[str], None], interval: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.say, self.interval, self.clock = say, interval, clock
        self.started = clock()
        self.last: float | None = None
        self.finished = False

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        complete = total > 0 and done >= total
        if complete and self.finished:
            return
        if not complete and self.last is not None and now - self.last < self.interval:
            return
        self.last, self.finished = now, complete
        self.say(progress_line(done, total, now - self.started))


def progress_line(done: int, total: int, elapsed: float) -> str:
    """`replay: 1,200/19,000 events (6.3%), 240/s, 1m14s left`."""
    pct = f" ({100 * done / total:.1f}%)" if total else ""
    rate = done / elapsed if elapsed > 0 else 0.0
    if done >= total:
        left = "done"
    elif rate > 0:
        secs = round((total - done) / rate)
        left = (f"{secs // 3600}h{secs % 3600 // 60:02d}m left" if secs >= 3600 else
                f"{secs // 60}m{secs % 60:02d}s left" if secs >= 60 else f"{secs}s left")
    else:
        left = "time left unknown"
    return f"replay: {done:,}/{total:,} events{pct}, {rate:,.0f}/s, {left}"


def _wait_caught_up(settings: Settings, pool: BuildingWorkers, group: str,
                    target: dict[Any, int], internal: list[str], timeout_s: float,
                    progress: Progress, generations: tuple[int, int]) -> float | None:
    """Wait until the building workers have committed every input record and drained
    their internal topics (one group: its committed offsets cover every member);
    returns when the first output appeared (monotonic seconds). A worker that dies is
    replaced while replacements are left."""
    old, new = generations
    total = sum(target.values())
    done = 0
    stable = 0
    first_output: float | None = None
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            for line in pool.check():
                progress.say(line)
        except BuilderDied as exc:
            raise ReplayError(f"{exc} at {done:,}/{total:,} events; generation {old} keeps "
                              f"serving, generation {new} is marked failed") from None
        if time.monotonic() > deadline:
            raise ReplayError(f"not caught up after {timeout_s:.0f}s; generation {old} "
                              f"keeps serving, generation {new} is marked failed")
        committed = committed_offsets(settings, group)
        done = sum(min(committed.get(tp, 0), end) for tp, end in target.items())
        progress(done, total)
        inputs_done = all(committed.get(tp, 0) >= end for tp, end in target.items() if end)
        internal_end = end_offsets(settings, internal)
        if first_output is None and any(internal_end.values()):
            first_output = time.monotonic()  # its first batch wrote facts
        drained = all(committed.get(tp, 0) >= end for tp, end in internal_end.items() if end)
        stable = stable + 1 if inputs_done and drained else 0
        if stable >= 2:  # drained twice in a row: no fact still in flight
            return first_output
        time.sleep(0.25)


def _publish_changed(settings: Settings, figures: Figures, rows: list[ChangeRow],
                     generation: int) -> None:
    """Snapshots of every (employee, period) whose figures differ, with the new generation."""
    from kafka import KafkaProducer

    producer = KafkaProducer(acks="all", linger_ms=5, **settings.kafka_python_options())
    try:
        for r in rows:
            obj = figures.get((r.employee_id, r.period))
            if obj is None:
                continue
            snap = {"type": "kpi.employee_snapshot", "event_id": str(uuid.uuid4()),
                    "emitted_at": datetime.now(UTC).isoformat(), **obj,
                    "generation": generation}
            producer.send(settings.topic("kpi-employee"), key=r.employee_id.encode(),
                          value=orjson.dumps(snap))
        producer.flush()
    finally:
        producer.close()
