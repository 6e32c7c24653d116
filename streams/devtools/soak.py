"""`kpi soak`: one worker under a steady live feed for a long time, sampled as it runs.

It starts the embedded broker (or uses `--brokers` with a fresh topic prefix), one
`kpi worker` subprocess, and the simulator's live feed at `--rate` events/s for
`--minutes`. Every `--interval` seconds it records, from /proc and the worker's
/metrics: resident memory (VmRSS), CPU, events accepted (throughput over the interval),
consumer lag (`kpi_consumer_lag_messages`, summed over topics) and p99 processing
latency over the interval, and RocksDB's memory (`kpi_rocksdb_memory_bytes`: the shared
block cache fills up to its budget as state grows, then stays). Each sample is printed
and written to a CSV; the summary
compares the second half with the first and fits lines through RSS, and through RSS
less RocksDB's cache, after warm-up, so a leak shows as a slope, not as an impression.

Not part of `make test` (it runs for 30 minutes); `make soak` runs it.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas.topics import INPUT_TOPICS
from streams.devtools.bench import (
    _counted,
    _cpu_seconds,
    _delta,
    _exact,
    _PipeProbe,
    _proc_status,
    _round,
    _scrape,
    _stop,
    highwaters,
    histogram,
    metric_sum,
    quantile,
)
from streams.devtools.broker import EmbeddedBroker, free_port
from streams.settings import Settings

LATENCY = "kpi_processing_latency_seconds"
LAG = "kpi_consumer_lag_messages"
ROCKSDB_CACHE = 'kpi_rocksdb_memory_bytes{kind="cache"}'
ROCKSDB_MEMTABLES = 'kpi_rocksdb_memory_bytes{kind="memtables"}'
ROCKSDB_TABLE_READERS = 'kpi_rocksdb_memory_bytes{kind="table_readers"}'
MIB = 1024 * 1024


class SoakError(RuntimeError):
    """The soak could not run (broker, worker, feed): one readable line."""


@dataclass(frozen=True)
class SoakConfig:
    minutes: float = 30.0
    rate: float = 200.0
    employees: int = 2000
    interval: float = 10.0
    partitions: int = 4
    seed: int = 7
    brokers: str | None = None
    csv_path: Path | None = None
    work_dir: Path | None = None
    keep: bool = False
    rocksdb_memory_mb: int | None = None  # the worker's KPI_ROCKSDB_MEMORY_MB


@dataclass
class Sample:
    t_s: float
    sent: int
    processed: int
    events_per_s: float
    lag_messages: float
    p99_latency_s: float | None
    rss_mib: float
    cpu_pct: float
    rocksdb_mib: float = 0.0
    # parts of RocksDB's memory: memtables (inside the cache's figure) and table readers
    # (outside it, growing with the files on disk)
    memtables_mib: float = 0.0
    table_readers_mib: float = 0.0
    # p99 delivery lag of the same input records to a plain consumer with Faust's fetch
    # settings: the broker's share of p99_latency_s (None: no records this interval)
    broker_p99_s: float | None = None
    # events of the interval processed more than 2 s after their record timestamp (the
    # bound for a snapshot), in percent: exact, 2 s being a bucket bound
    over_2s_pct: float | None = None
    # CPU of the embedded broker's process (None with --brokers) and of this process (the
    # feed and the probe), one core = 100 %: on a 2-core machine the three share the cores,
    # so a latency that moves is read beside who was using them
    broker_cpu_pct: float | None = None
    harness_cpu_pct: float | None = None


@dataclass
class SoakResult:
    config: dict[str, Any]
    samples: list[Sample] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, in value per hour."""
    n = len(points)
    if n < 3:
        return None
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    sxy = sum((x - mx) * (y - my) for x, y in points)
    return sxy / sxx * 3600.0


def summarize(samples: list[Sample], warmup_fraction: float = 0.2) -> dict[str, Any]:
    """Throughput, lag and memory over the run; RSS trend after warm-up."""
    if not samples:
        return {}
    steady = samples[int(len(samples) * warmup_fraction):] or samples
    half = len(steady) // 2
    first, second = steady[:half] or steady, steady[half:] or steady

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs) if xs else 0.0

    rss_first = mean([s.rss_mib for s in first])
    rss_second = mean([s.rss_mib for s in second])
    slope = slope_per_hour([(s.t_s, s.rss_mib) for s in steady])
    # What grows outside RocksDB's bounded cache (the Python heap, buffers): a leak in
    # our code shows here even while the cache is still filling.
    other = slope_per_hour([(s.t_s, s.rss_mib - s.rocksdb_mib) for s in steady])
    # The last quarter alone: once the cache is full, RSS itself must be flat.
    tail = samples[int(len(samples) * 0.75):]
    tail_slope = slope_per_hour([(s.t_s, s.rss_mib) for s in tail])
    p99s = [s.p99_latency_s for s in steady if s.p99_latency_s is not None]
    broker = [s.broker_p99_s for s in steady if s.broker_p99_s is not None]
    over = [s.over_2s_pct for s in steady if s.over_2s_pct is not None]
    # A latency that grows with the run shows as a slope, as RSS does; less the broker's
    # own delivery p99 of the same interval, what is left is the worker's share (the
    # embedded broker keeps every record in memory and slows as a run goes on).
    p99_slope = slope_per_hour([(s.t_s, s.p99_latency_s) for s in steady
                                if s.p99_latency_s is not None])
    own = [(s.t_s, s.p99_latency_s - s.broker_p99_s) for s in steady
           if s.p99_latency_s is not None and s.broker_p99_s is not None]
    own_slope = slope_per_hour(own)

    def median(xs: list[float]) -> float | None:
        return round(sorted(xs)[len(xs) // 2], 3) if xs else None
    last = samples[-1]
    return {
        "duration_s": round(last.t_s, 1),
        "sent": last.sent,
        "processed": last.processed,
        "events_per_s_mean": round(mean([s.events_per_s for s in steady]), 1),
        "lag_messages_mean": round(mean([s.lag_messages for s in steady]), 1),
        "lag_messages_max": max(s.lag_messages for s in samples),
        "p99_latency_s_max": round(max(p99s), 3) if p99s else None,
        "p99_latency_s_median": median(p99s),
        "p99_latency_slope_s_per_hour": _round(p99_slope, 3),
        "p99_less_broker_s_mean": _round(mean([v for _, v in own]), 3) if own else None,
        "p99_less_broker_slope_s_per_hour": _round(own_slope, 3),
        "over_2s_pct_mean": _round(mean(over), 3) if over else None,
        "over_2s_pct_max": max(over) if over else None,
        "broker_p99_s_median": median(broker),
        "broker_p99_s_max": round(max(broker), 3) if broker else None,
        "rss_mib_min": round(min(s.rss_mib for s in samples), 1),
        "rss_mib_max": round(max(s.rss_mib for s in samples), 1),
        "rss_mib_first_half": round(rss_first, 1),
        "rss_mib_second_half": round(rss_second, 1),
        "rss_growth_pct": round(100.0 * (rss_second - rss_first) / rss_first, 2)
        if rss_first else None,
        "rss_slope_mib_per_hour": round(slope, 2) if slope is not None else None,
        "rss_slope_last_quarter_mib_per_hour":
            round(tail_slope, 2) if tail_slope is not None else None,
        "rocksdb_mib_max": round(max(s.rocksdb_mib for s in samples), 1),
        "rss_less_rocksdb_slope_mib_per_hour": round(other, 2) if other is not None else None,
        "cpu_pct_mean": round(mean([s.cpu_pct for s in steady]), 1),
        # the broker's CPU in the first and second half: a broker that works harder as
        # its in-memory log grows shows here
        "broker_cpu_pct_first_half": _mean_or_none([s.broker_cpu_pct for s in first]),
        "broker_cpu_pct_second_half": _mean_or_none([s.broker_cpu_pct for s in second]),
        "harness_cpu_pct_mean": _mean_or_none([s.harness_cpu_pct for s in steady]),
    }


def _mean_or_none(xs: list[float | None]) -> float | None:
    known = [x for x in xs if x is not None]
    return round(sum(known) / len(known), 1) if known else None


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _feed(bootstrap: str, prefix: str, cfg: SoakConfig, limit: int,
          stop: threading.Event, sent: list[int], errors: list[BaseException]) -> None:
    """The simulator's live feed at a steady rate (a thread: it sleeps between events)."""
    from kafka import KafkaProducer

    from streams.ops import simulate as sim

    producer: Any = None
    try:
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        feed = sim.live(employees=cfg.employees, seed=cfg.seed, rate=cfg.rate,
                        now=lambda: datetime.now(UTC))

        def counted() -> Any:
            for ev in feed:
                if stop.is_set():
                    return
                sent[0] += 1
                yield ev

        sim.send(counted(), producer, prefix, rate=cfg.rate, limit=limit, progress=False)
        producer.flush()
    except BaseException as exc:  # reported by the sampling loop
        errors.append(exc)
    finally:
        # Closed here even when the soak was interrupted and the broker is already gone:
        # otherwise kafka-python's exit hook tries again and prints a traceback.
        if producer is not None:
            with contextlib.suppress(Exception):
                producer.close(timeout=1)


def run(cfg: SoakConfig, on_sample: Callable[[Sample], None] | None = None) -> SoakResult:
    from streams.admin import create_topics

    base_dir = Path(tempfile.mkdtemp(prefix="kpi-soak-", dir=cfg.work_dir))
    prefix = f"soak{uuid.uuid4().hex[:6]}."
    broker: EmbeddedBroker | None = None
    proc: subprocess.Popen[bytes] | None = None
    stop = threading.Event()
    feeder: threading.Thread | None = None
    probe: _PipeProbe | None = None
    result = SoakResult(config={k: str(v) if isinstance(v, Path) else v
                                for k, v in asdict(cfg).items()})
    try:
        if cfg.brokers:
            bootstrap = cfg.brokers
        else:
            broker = EmbeddedBroker(log_path=base_dir / "broker.log").start()
            bootstrap = broker.bootstrap
        create_topics(Settings(brokers=bootstrap, topic_prefix=prefix,
                               partitions=cfg.partitions))
        port = free_port()
        env = {"KPI_BROKERS": bootstrap, "KPI_TOPIC_PREFIX": prefix,
               "KPI_DATA_DIR": str(base_dir / "worker-data"), "KPI_WEB_HOST": "127.0.0.1",
               "KPI_WEB_PORT": str(port), "KPI_AUTH_ENABLED": "false",
               "KPI_PARTITIONS": str(cfg.partitions)}
        if cfg.rocksdb_memory_mb is not None:
            env["KPI_ROCKSDB_MEMORY_MB"] = str(cfg.rocksdb_memory_mb)
        with open(base_dir / "worker.log", "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"],
                                    env={**os.environ, **env}, stdout=log,
                                    stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while _scrape(url) is None:
            if proc.poll() is not None:
                raise SoakError(f"worker exited with {proc.returncode} "
                                f"(log: {base_dir / 'worker.log'})")
            if time.monotonic() > deadline:
                raise SoakError("worker did not serve /metrics within 120 s")
            time.sleep(0.5)
        from streams.worker.memory import allocator_in_use

        result.summary["allocator"] = allocator_in_use(f"/proc/{proc.pid}/maps")
        _say(f"soak: worker up (pid {proc.pid}, {result.summary['allocator']} malloc), "
             f"feeding {cfg.rate:g} events/s for "
             f"{cfg.minutes:g} min; samples every {cfg.interval:g} s; state {base_dir}")
        sent = [0]
        errors: list[BaseException] = []
        limit = max(1, int(cfg.rate * cfg.minutes * 60))
        feeder = threading.Thread(target=_feed, name="soak-feed", daemon=True,
                                  args=(bootstrap, prefix, cfg, limit, stop, sent, errors))
        # Beside the worker, a plain consumer of the same input records: when the worker's
        # latency moves, this says whether the broker's delivery moved with it.
        inputs = [prefix + t.name for t in INPUT_TOPICS]
        probe = _PipeProbe(bootstrap, highwaters(bootstrap, inputs))
        probe.start()
        probe.ready.wait(30)
        probed = 0
        t0 = time.monotonic()
        feeder.start()
        prev_t, prev_n = t0, 0
        prev_cpu = _cpu_seconds(proc.pid) or 0.0
        broker_pid = broker.process.pid if broker is not None and broker.process else None
        prev_broker_cpu = _cpu_seconds(broker_pid) if broker_pid else None
        prev_own_cpu = time.process_time()
        prev_hist: list[tuple[float, float]] = []
        end = t0 + cfg.minutes * 60
        writer = None
        csv_file = open(cfg.csv_path, "w", newline="") if cfg.csv_path else None
        try:
            while True:
                now = time.monotonic()
                time.sleep(max(0.0, min(cfg.interval, end - now)))
                if proc.poll() is not None:
                    raise SoakError(f"worker exited with {proc.returncode} "
                                    f"(log: {base_dir / 'worker.log'})")
                if errors:
                    raise SoakError(f"feed failed: {errors[0]}")
                text = _scrape(url) or ""
                now = time.monotonic()
                n = _counted(text)
                hist = histogram(text, LATENCY)
                cpu = _cpu_seconds(proc.pid) or prev_cpu
                broker_cpu = _cpu_seconds(broker_pid) if broker_pid else None
                own_cpu = time.process_time()
                interval = _delta(hist, prev_hist)
                span = now - prev_t
                sample = Sample(
                    t_s=round(now - t0, 1), sent=sent[0], processed=n,
                    events_per_s=round((n - prev_n) / span, 1),
                    lag_messages=metric_sum(text, LAG),
                    p99_latency_s=_p99(interval),
                    over_2s_pct=_over(interval, 2.0),
                    rss_mib=round((_proc_status(proc.pid, "VmRSS") or 0) / MIB, 1),
                    cpu_pct=round(100.0 * (cpu - prev_cpu) / span, 1),
                    rocksdb_mib=round(_gauge(text, ROCKSDB_CACHE) / MIB, 1),
                    memtables_mib=round(_gauge(text, ROCKSDB_MEMTABLES) / MIB, 1),
                    table_readers_mib=round(_gauge(text, ROCKSDB_TABLE_READERS) / MIB, 1),
                    broker_p99_s=_round(_exact(probe.lags[probed:], 0.99), 3),
                    broker_cpu_pct=(round(100.0 * (broker_cpu - prev_broker_cpu) / span, 1)
                                    if broker_cpu is not None and prev_broker_cpu is not None
                                    else None),
                    harness_cpu_pct=round(100.0 * (own_cpu - prev_own_cpu) / span, 1),
                )
                prev_t, prev_n, prev_cpu, prev_hist = now, n, cpu, hist
                prev_broker_cpu, prev_own_cpu = broker_cpu, own_cpu
                probed = len(probe.lags)
                result.samples.append(sample)
                if csv_file is not None:
                    if writer is None:
                        writer = csv.DictWriter(csv_file, fieldnames=list(asdict(sample)))
                        writer.writeheader()
                    writer.writerow(asdict(sample))
                    csv_file.flush()
                if on_sample:
                    on_sample(sample)
                if now >= end:
                    break
        finally:
            if csv_file is not None:
                csv_file.close()
        stop.set()
        feeder.join(30)
        result.summary = {**result.summary, **summarize(result.samples)}
        return result
    finally:
        stop.set()
        if feeder is not None:
            feeder.join(5)  # lets the feeder close its producer
        if probe is not None:
            probe.stopping.set()
            probe.join(5)
        _stop(proc)
        if broker is not None:
            broker.stop()
        if not cfg.keep:
            shutil.rmtree(base_dir, ignore_errors=True)


def _gauge(text: str, series: str) -> float:
    """One series (`name{labels}`) of Prometheus text, 0 when absent."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _p99(buckets: list[tuple[float, float]]) -> float | None:
    return _round(quantile(buckets, 0.99), 3)


def _over(buckets: list[tuple[float, float]], bound: float) -> float | None:
    """Percent of a histogram's observations above `bound` (one of its bucket bounds)."""
    total = buckets[-1][1] if buckets else 0.0
    within = dict(buckets).get(bound)
    if total <= 0 or within is None:
        return None
    return round(100.0 * (total - within) / total, 3)


def print_sample(s: Sample) -> None:
    p99 = "-" if s.p99_latency_s is None else f"{s.p99_latency_s:.3f}s"
    broker = "-" if s.broker_p99_s is None else f"{s.broker_p99_s:.3f}s"
    over = "-" if s.over_2s_pct is None else f"{s.over_2s_pct:.2f}%"
    _say(f"soak t={s.t_s:7.1f}s sent={s.sent:>8,} processed={s.processed:>8,} "
         f"{s.events_per_s:>7.1f} ev/s lag={s.lag_messages:>6.0f} p99={p99:>7} "
         f"(broker {broker:>7}) >2s={over} "
         f"rss={s.rss_mib:7.1f} MiB (rocksdb {s.rocksdb_mib:6.1f}) cpu={s.cpu_pct:5.1f}%"
         + ("" if s.broker_cpu_pct is None else f" broker cpu={s.broker_cpu_pct:5.1f}%"))


def _interrupted(signum: int, frame: object) -> None:
    raise SoakError(f"interrupted by signal {signum}")


def main(cfg: SoakConfig, json_path: Path | None) -> SoakResult:
    # A terminated soak still stops its worker and broker (the `finally` in run()).
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupted)
    result = run(cfg, on_sample=print_sample)
    s = result.summary
    print(f"soak: {s['duration_s']:.0f} s, {s['sent']:,} sent, {s['processed']:,} processed, "
          f"{s['events_per_s_mean']:.1f} events/s (steady state), "
          f"{s.get('allocator', 'unknown')} malloc")
    print(f"  consumer lag: mean {s['lag_messages_mean']}, max {s['lag_messages_max']:.0f}; "
          f"p99 processing latency median {s['p99_latency_s_median']} s, max "
          f"{s['p99_latency_s_max']} s (the broker's delivery to a plain consumer: median "
          f"{s['broker_p99_s_median']} s, max {s['broker_p99_s_max']} s); p99 slope "
          f"{s['p99_latency_slope_s_per_hour']} s/h, less the broker's: mean "
          f"{s['p99_less_broker_s_mean']} s, slope {s['p99_less_broker_slope_s_per_hour']} "
          f"s/h; over 2 s: mean "
          f"{s['over_2s_pct_mean']} %, max {s['over_2s_pct_max']} % of an interval")
    print(f"  RSS: {s['rss_mib_min']}-{s['rss_mib_max']} MiB; first half "
          f"{s['rss_mib_first_half']} MiB, second half {s['rss_mib_second_half']} MiB "
          f"({s['rss_growth_pct']:+}%), slope {s['rss_slope_mib_per_hour']} MiB/h, "
          f"last quarter {s['rss_slope_last_quarter_mib_per_hour']} MiB/h")
    print(f"  RocksDB cache: max {s['rocksdb_mib_max']} MiB (the budget bounds it); RSS less "
          f"RocksDB: slope {s['rss_less_rocksdb_slope_mib_per_hour']} MiB/h")
    if json_path is not None:
        json_path.write_text(json.dumps({"config": result.config, "summary": s,
                                         "samples": [asdict(x) for x in result.samples]},
                                        indent=2))
    return result
