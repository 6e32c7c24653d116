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
from streams.devtools.bench import _delta, _exact, _PipeProbe, _round, histogram, quantile
from streams.devtools.benchkit import (
    _counted,
    _cpu_seconds,
    _proc_status,
    _scrape,
    _stop,
    highwaters,
    metric_sum,
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


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def _median(xs: list[float]) -> float | None:
    return round(sorted(xs)[len(xs) // 2], 3) if xs else None


def summarize(samples: list[Sample], warmup_fraction: float = 0.2) -> dict[str, Any]:
    """Throughput, lag and memory over the run; RSS trend after warm-up."""
    if not samples:
        return {}
    steady = samples[int(len(samples) * warmup_fraction):] or samples
    half = len(steady) // 2
    first, second = steady[:half] or steady, steady[half:] or steady
    last = samples[-1]
    return {
        "duration_s": round(last.t_s, 1),
        "sent": last.sent,
        "processed": last.processed,
        "events_per_s_mean": round(_mean([s.events_per_s for s in steady]), 1),
        "lag_messages_mean": round(_mean([s.lag_messages for s in steady]), 1),
        "lag_messages_max": max(s.lag_messages for s in samples),
        **_latency_summary(steady),
        **_memory_summary(samples, steady, first, second),
        "cpu_pct_mean": round(_mean([s.cpu_pct for s in steady]), 1),
        # the broker's CPU in the first and second half: a broker that works harder as
        # its in-memory log grows shows here
        "broker_cpu_pct_first_half": _mean_or_none([s.broker_cpu_pct for s in first]),
        "broker_cpu_pct_second_half": _mean_or_none([s.broker_cpu_pct for s in second]),
        "harness_cpu_pct_mean": _mean_or_none([s.harness_cpu_pct for s in steady]),
    }


def _latency_summary(steady: list[Sample]) -> dict[str, Any]:
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
    return {
        "p99_latency_s_max": round(max(p99s), 3) if p99s else None,
        "p99_latency_s_median": _median(p99s),
        "p99_latency_slope_s_per_hour": _round(p99_slope, 3),
        "p99_less_broker_s_mean": _round(_mean([v for _, v in own]), 3) if own else None,
        "p99_less_broker_slope_s_per_hour": _round(own_slope, 3),
        "over_2s_pct_mean": _round(_mean(over), 3) if over else None,
        "over_2s_pct_max": max(over) if over else None,
        "broker_p99_s_median": _median(broker),
        "broker_p99_s_max": round(max(broker), 3) if broker else None,
    }


def _memory_summary(samples: list[Sample], steady: list[Sample], first: list[Sample],
                    second: list[Sample]) -> dict[str, Any]:
    rss_first = _mean([s.rss_mib for s in first])
    rss_second = _mean([s.rss_mib for s in second])
    slope = slope_per_hour([(s.t_s, s.rss_mib) for s in steady])
    # What grows outside RocksDB's bounded cache (the Python heap, buffers): a leak in
    # our code shows here even while the cache is still filling.
    other = slope_per_hour([(s.t_s, s.rss_mib - s.rocksdb_mib) for s in steady])
    # The last quarter alone: once the cache is full, RSS itself must be flat.
    tail = samples[int(len(samples) * 0.75):]
    tail_slope = slope_per_hour([(s.t_s, s.rss_mib) for s in tail])
    return {
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


def _start_worker(cfg: SoakConfig, bootstrap: str, prefix: str,
                  base_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A worker subprocess on the soak's topics; returns it and its URL once it serves."""
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
            _stop(proc)
            raise SoakError("worker did not serve /metrics within 120 s")
        time.sleep(0.5)
    return proc, url


class _Sampler:
    """Turns one scrape of the worker's metrics into a Sample of the interval since the
    previous one (throughput, latency, CPU of the worker, the broker and this process)."""

    def __init__(self, pid: int, broker_pid: int | None, probe: _PipeProbe) -> None:
        self.pid, self.broker_pid, self.probe = pid, broker_pid, probe
        self.t0 = self.prev_t = time.monotonic()
        self.prev_n = 0
        self.prev_cpu = _cpu_seconds(pid) or 0.0
        self.prev_broker_cpu = _cpu_seconds(broker_pid) if broker_pid else None
        self.prev_own_cpu = time.process_time()
        self.prev_hist: list[tuple[float, float]] = []
        self.probed = 0

    def take(self, text: str, sent: int) -> Sample:
        now = time.monotonic()
        n = _counted(text)
        hist = histogram(text, LATENCY)
        cpu = _cpu_seconds(self.pid) or self.prev_cpu
        broker_cpu = _cpu_seconds(self.broker_pid) if self.broker_pid else None
        own_cpu = time.process_time()
        interval = _delta(hist, self.prev_hist)
        span = now - self.prev_t
        sample = Sample(
            t_s=round(now - self.t0, 1), sent=sent, processed=n,
            events_per_s=round((n - self.prev_n) / span, 1),
            lag_messages=metric_sum(text, LAG),
            p99_latency_s=_p99(interval),
            over_2s_pct=_over(interval, 2.0),
            rss_mib=round((_proc_status(self.pid, "VmRSS") or 0) / MIB, 1),
            cpu_pct=round(100.0 * (cpu - self.prev_cpu) / span, 1),
            rocksdb_mib=round(_gauge(text, ROCKSDB_CACHE) / MIB, 1),
            memtables_mib=round(_gauge(text, ROCKSDB_MEMTABLES) / MIB, 1),
            table_readers_mib=round(_gauge(text, ROCKSDB_TABLE_READERS) / MIB, 1),
            broker_p99_s=_round(_exact(self.probe.lags[self.probed:], 0.99), 3),
            broker_cpu_pct=(round(100.0 * (broker_cpu - self.prev_broker_cpu) / span, 1)
                            if broker_cpu is not None and self.prev_broker_cpu is not None
                            else None),
            harness_cpu_pct=round(100.0 * (own_cpu - self.prev_own_cpu) / span, 1),
        )
        self.prev_t, self.prev_n, self.prev_cpu, self.prev_hist = now, n, cpu, hist
        self.prev_broker_cpu, self.prev_own_cpu = broker_cpu, own_cpu
        self.probed = len(self.probe.lags)
        return sample


class _CsvOut:
    """The samples as CSV rows, the header from the first one."""

    def __init__(self, path: Path | None) -> None:
        self.file = open(path, "w", newline="") if path else None
        self.writer: Any = None

    def write(self, sample: Sample) -> None:
        if self.file is None:
            return
        if self.writer is None:
            self.writer = csv.DictWriter(self.file, fieldnames=list(asdict(sample)))
            self.writer.writeheader()
        self.writer.writerow(asdict(sample))
        self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _sample_until_end(cfg: SoakConfig, proc: subprocess.Popen[bytes], url: str,
                      sampler: _Sampler, sent: list[int], errors: list[BaseException],
                      result: SoakResult, on_sample: Callable[[Sample], None] | None,
                      log_path: Path) -> None:
    end = sampler.t0 + cfg.minutes * 60
    out = _CsvOut(cfg.csv_path)
    try:
        while True:
            time.sleep(max(0.0, min(cfg.interval, end - time.monotonic())))
            if proc.poll() is not None:
                raise SoakError(f"worker exited with {proc.returncode} (log: {log_path})")
            if errors:
                raise SoakError(f"feed failed: {errors[0]}")
            sample = sampler.take(_scrape(url) or "", sent[0])
            result.samples.append(sample)
            out.write(sample)
            if on_sample:
                on_sample(sample)
            if time.monotonic() >= end:
                break
    finally:
        out.close()


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
        proc, url = _start_worker(cfg, bootstrap, prefix, base_dir)
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
        broker_pid = broker.process.pid if broker is not None and broker.process else None
        sampler = _Sampler(proc.pid, broker_pid, probe)
        feeder.start()
        _sample_until_end(cfg, proc, url, sampler, sent, errors, result, on_sample,
                          base_dir / "worker.log")
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
