"""`kpi bench --workers N`: our live worker again, N processes in one consumer group.

The live worker's internal topics (facts, notices) and the generation registry are named
by the topic prefix and the generation, not by the app id, so a second group on the same
prefix would read the first run's facts as well as its own. The N workers therefore run
under a fresh prefix whose input topics are a copy of the preloaded ones: the same records
in the same partitions and order, with their timestamps. Each worker has its own data dir
and web port and every default of `kpi worker` (as the one-worker run).

The group's rate runs from the first event any worker counts until the group's committed
offsets reach the end of every input and internal topic (two polls agreeing), over the N
preloaded events: a partition that moves between members as they join is processed again
from its last commit, which the workers' own counters would count twice. CPU seconds of
each worker and of the broker cover the same window; on a machine with fewer cores than
processes the aggregate rate cannot grow, but the CPU an event costs should not either.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any

from schemas.topics import INPUT_TOPICS
from streams.devtools.benchkit import (
    APP_ID,
    COUNTERS,
    INTERNAL,
    BenchError,
    Meter,
    _bounded,
    _caught_up,
    _committed,
    _counted,
    _cpu_seconds,
    _proc_status,
    _rate,
    _Run,
    _say,
    _scrape,
    _stop,
    highwaters,
)
from streams.net import free_port


def ours_workers(run: _Run, workers: int) -> dict[str, Any]:
    """Copy the preloaded topics under a fresh prefix, run `workers` workers on them."""
    from streams.admin import create_topics

    prefix = f"{run.prefix.rstrip('.')}w{workers}."
    settings = run.settings().model_copy(update={"topic_prefix": prefix})
    create_topics(settings)
    _copy_inputs(run, prefix)
    group = Group(run, prefix, workers)
    try:
        group.start()
        result = _group_backlog(run, group)
    finally:
        group.stop()
    known = [b for b in group.rss if b is not None]
    # The table's columns: the largest worker's peak RSS, the workers' CPU together.
    return {**result, "workers": workers, "topic_prefix": prefix,
            "peak_rss_bytes_workers": group.rss, "peak_rss_bytes": max(known, default=None),
            "cpu_process_s": round(sum(c for c in result["cpu_workers_s"] if c is not None), 2)}


def ours_cpu_per_event(d: dict[str, Any] | None) -> dict[str, Any]:
    """CPU µs per event of the one-worker run's worker and broker: the CPU of its measured
    window over the events of that window."""
    if not d:
        return {}
    n = max(int(d.get("window_events") or d["events"]), 1)
    out: dict[str, Any] = {}
    for key, name in (("cpu_process_s", "workers"), ("cpu_broker_s", "broker")):
        v = d.get(key)
        out[f"cpu_us_per_event_{name}"] = None if v is None else round(1e6 * v / n, 1)
    return out


# -- the copy ---------------------------------------------------------------------------------


def _copy_inputs(run: _Run, prefix: str) -> None:
    ends = run.preloaded  # the preload's records, not the one-worker run's live feed
    total = sum(ends.values())
    with Meter("copying the input topics", total, run.cfg.interactive) as m:
        _bounded(_copy(run, prefix, ends, m), run.cfg.timeout, "copying the input topics")
    copied = sum(highwaters(run.bootstrap, [prefix + t.name for t in INPUT_TOPICS]).values())
    if copied != total:
        raise BenchError(f"ours with workers: the copy holds {copied} input records, "
                         f"expected {total}")


async def _copy(run: _Run, prefix: str, ends: dict[tuple[str, int], int], meter: Meter
                ) -> None:
    """Every input record into the same partition of its topic under `prefix`."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=run.bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", group_id=None)
    producer = AIOKafkaProducer(bootstrap_servers=run.bootstrap, acks="all", linger_ms=20,
                                max_batch_size=256 * 1024, request_timeout_ms=30000)
    await consumer.start()
    await producer.start()
    try:
        tps = [TopicPartition(t, p) for (t, p), end in ends.items() if end]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        left = {tp: ends[(tp.topic, tp.partition)] for tp in tps}
        done, cut = 0, len(run.prefix)
        while any(left.values()):
            pending = []
            for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                end = ends[(tp.topic, tp.partition)]
                for r in records:
                    if r.offset < end:
                        pending.append(await producer.send(
                            prefix + tp.topic[cut:], r.value, key=r.key,
                            partition=tp.partition, timestamp_ms=r.timestamp))
                if records:
                    left[tp] = max(0, end - (records[-1].offset + 1))
            await asyncio.gather(*pending)
            done += len(pending)
            meter.update(done)
    finally:
        await producer.stop()
        await consumer.stop()


# -- the group --------------------------------------------------------------------------------


class Group:
    """N `kpi worker` processes in one consumer group, each with its data dir and port."""

    def __init__(self, run: _Run, prefix: str, count: int) -> None:
        self.run, self.prefix, self.count = run, prefix, count
        self.procs: list[subprocess.Popen[bytes]] = []
        self.bases: list[str] = []
        self.rss: list[int | None] = []

    def log(self, i: int) -> str:
        return str(self.run.dir / f"ours-{self.count}-workers-{i + 1}.log")

    def start(self) -> None:
        run = self.run
        for i in range(self.count):
            port = free_port()
            env = {**os.environ, "KPI_BROKERS": run.bootstrap, "KPI_TOPIC_PREFIX": self.prefix,
                   "KPI_DATA_DIR": str(run.dir / f"ours-{self.count}-workers-data-{i + 1}"),
                   "KPI_WEB_HOST": "127.0.0.1", "KPI_WEB_PORT": str(port),
                   "KPI_AUTH_ENABLED": "false", "KPI_APP_ID": APP_ID,
                   "KPI_PARTITIONS": str(run.cfg.partitions), "KPI_GENERATION": "1"}
            with open(self.log(i), "ab") as log:
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "streams.cli", "worker"], env=env, stdout=log,
                    stderr=subprocess.STDOUT))
            self.bases.append(f"http://127.0.0.1:{port}")

    def alive(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc.poll() is not None:
                raise BenchError(f"ours with {self.count} workers: worker {i + 1} exited "
                                 f"with {proc.returncode} (log: {self.log(i)})")

    def cpu(self) -> list[float | None]:
        return [_cpu_seconds(p.pid) for p in self.procs]

    def stop(self) -> None:
        self.rss = [_proc_status(p.pid, "VmHWM") for p in self.procs]
        for proc in self.procs:  # all at once: each leaves the group while the others do
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            _stop(proc)


def _group_backlog(run: _Run, group: Group) -> dict[str, Any]:
    """Until the group has committed every input record and drained its internal topics."""
    cfg = run.cfg
    n = cfg.events
    s = run.settings().model_copy(update={"topic_prefix": group.prefix})
    topics = [s.topic(t.name) for t in INPUT_TOPICS] + [s.internal_topic(t) for t in INTERNAL]
    label = f"kpi worker x{group.count} (ours)"
    t_start = time.time()
    deadline = time.monotonic() + cfg.timeout
    first: tuple[float, int] | None = None
    cpu0: tuple[list[float | None], float | None] = ([], None)
    candidate: tuple[float, Any] | None = None
    counted, each = 0, [0] * group.count
    with Meter(label, n, cfg.interactive) as m:
        while True:
            group.alive()
            if time.monotonic() > deadline:
                raise BenchError(f"ours with {group.count} workers: {counted}/{n} events "
                                 f"counted after {cfg.timeout:.0f}s (logs: {group.log(0)}, ...)")
            now = time.time()
            # A worker busy with a batch may not answer: its last count stands.
            each = [_counted(text) if (text := _scrape(b, COUNTERS)) is not None else was
                    for b, was in zip(group.bases, each, strict=True)]
            counted = sum(each)
            m.update(min(counted, n))
            if counted and first is None:
                first = (now, min(counted, n))
                cpu0 = (group.cpu(), _cpu_seconds(run.broker_pid))
            if counted >= n:
                ends = highwaters(run.bootstrap, topics)
                if _caught_up(_committed(s, f"{group.prefix}{APP_ID}"), ends):
                    if candidate is not None and candidate[1] == ends:
                        break  # two polls agree: nothing was still in flight
                    candidate = (now, ends)
                else:
                    candidate = None
            time.sleep(0.25 if first else 0.1)
    assert first is not None and candidate is not None
    if not cfg.interactive:
        _say(f"{label}: the group committed every event")
    rate = _rate(n, first, candidate[0], t_start)
    return {**rate, "counted": counted, "counted_workers": each,
            **_cpu_window(cpu0, group.cpu(), _cpu_seconds(run.broker_pid),
                          rate["window_events"])}


def _cpu_window(start: tuple[list[float | None], float | None], workers: list[float | None],
                broker: float | None, events: int) -> dict[str, Any]:
    before, broker_before = start
    per = [None if a is None or b is None else round(b - a, 2)
           for a, b in zip(before, workers, strict=True)]
    known = [c for c in per if c is not None]
    used = None if broker is None or broker_before is None else broker - broker_before
    return {"cpu_workers_s": per,
            "cpu_us_per_event_workers": round(1e6 * sum(known) / events, 1) if known else None,
            "cpu_broker_s": None if used is None else round(used, 2),
            "cpu_us_per_event_broker": None if used is None else round(1e6 * used / events, 1)}


def scaling_lines(results: dict[str, Any]) -> list[str]:
    """The live worker's CPU per event with one worker and with N, for the printout."""
    out = []
    for key in ("ours", "ours_workers"):
        d = results.get(key)
        if not d or d.get("cpu_us_per_event_workers") is None:
            continue
        n = d.get("workers", 1)
        per = d.get("cpu_workers_s") or [d.get("cpu_process_s")]
        broker = d.get("cpu_us_per_event_broker")
        out.append(f"ours with {n} worker(s): {d['events_per_s']:,.0f} events/s, CPU per event "
                   f"{d['cpu_us_per_event_workers']:.0f} µs in the workers "
                   f"({', '.join(f'{c:.1f}' for c in per if c is not None)} s), "
                   + ("broker not measured" if broker is None
                      else f"{broker:.0f} µs in the broker"))
    return out
