"""What every `kpi bench` phase shares: its configuration and run, progress, the processes
it measures (CPU, peak RSS, stopping), the broker's end and committed offsets, a worker's
metrics, and the status file a measured child process reports through."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas.topics import INPUT_TOPICS
from streams.admin import INTERNAL_TOPICS
from streams.ops.builders import cpu_seconds, stop_process
from streams.settings import Settings
from streams.worker.memory import allocator_env, allocator_in_use

COUNTERS = ("kpi_events_total", "kpi_duplicate_events_total", "kpi_dead_letters_total")
INTERNAL = INTERNAL_TOPICS
APP_ID = "kpi"

Record = tuple[str, bytes, bytes]  # unprefixed topic, key, value
Offsets = dict[tuple[str, int], int]


class BenchError(RuntimeError):
    """A phase failed or ran out of time; the message says which and where the logs are."""


PHASES = ("pure-fold", "plain", "pass-through", "naive", "quix", "ours", "replay")


@dataclass
class BenchConfig:
    events: int = 500_000
    brokers: str | None = None  # None: start the embedded broker
    partitions: int = 4
    timeout: float = 1800.0  # per phase, seconds
    live_rate: float = 1000.0
    live_seconds: float = 10.0
    seed: int = 1
    # Seats of the simulated centre (None: as many as a month of `events` needs); more
    # seats spread the same events over more employees and more, shorter-lived tickets.
    employees: int | None = None
    # Which measurements to run (PHASES; the preload always runs)
    phases: frozenset[str] = frozenset(PHASES)
    work_dir: Path | None = None
    keep: bool = False
    # Workers of a second live run and of a second replay, beside the first ones' single
    # worker (1: none)
    workers: int = 1
    interactive: bool = field(default_factory=lambda: sys.stderr.isatty())


@dataclass
class _Run:
    cfg: BenchConfig
    bootstrap: str
    prefix: str
    dir: Path
    broker_pid: int | None
    employees: int = 0
    records: list[Record] = field(default_factory=list)
    # Employees whose month figures must read the same before and after the worker's
    # warm restart (the first ones the preload's calls name)
    samples: list[str] = field(default_factory=list)
    # End offset of each input partition after the preload (the live feed appends to them)
    preloaded: Offsets = field(default_factory=dict)

    @property
    def inputs(self) -> list[str]:
        return [self.prefix + t.name for t in INPUT_TOPICS]

    def settings(self, **over: Any) -> Settings:
        return Settings(brokers=self.bootstrap, topic_prefix=self.prefix,
                        partitions=self.cfg.partitions, app_id=APP_ID,
                        data_dir=self.dir / "worker-data", **over)

# -- progress ---------------------------------------------------------------------------------


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Meter:
    """One phase's progress: a rich bar on a terminal, else a line every few seconds."""

    def __init__(self, label: str, total: int | None, interactive: bool) -> None:
        self.label, self.total, self.interactive = label, total, interactive
        self.done = 0
        self.started = time.time()
        self._first: tuple[float, int] | None = None
        self._last_line = 0.0
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Meter:
        if self.interactive:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn(f"{self.label:<26}"), BarColumn(),
                                 TextColumn("{task.completed:>10,.0f}/{task.total:,.0f}"),
                                 TextColumn("{task.fields[rate]:>10}"), TimeElapsedColumn(),
                                 console=Console(stderr=True))
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total, rate="")
        else:
            _say(f"{self.label}: started")
        return self

    def update(self, done: int, total: int | None = None) -> None:
        now = time.time()
        self.done = done
        if total is not None:
            self.total = total
        if done and self._first is None:
            self._first = (now, done)
        rate = ""
        if self._first and now - self._first[0] > 0.5:
            rate = f"{(done - self._first[1]) / (now - self._first[0]):,.0f}/s"
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=self.total, rate=rate)
        elif now - self._last_line >= 5.0:
            self._last_line = now
            _say(f"{self.label}: {done:,}/{self.total or 0:,} {rate}")

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
        if exc[0] is None:
            _say(f"{self.label}: {self.done:,} in {time.time() - self.started:.1f}s")


# -- processes and /proc --------------------------------------------------------------------


def _proc_status(pid: int, field_name: str) -> int | None:
    """A kB field of /proc/<pid>/status (VmHWM: peak RSS) in bytes."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process so far (all its threads)."""
    return None if pid is None else cpu_seconds(pid)


def _stop(proc: subprocess.Popen[bytes] | None, grace: float = 30.0) -> None:
    if proc is not None:
        stop_process(proc, grace)


class _Cpu:
    """CPU seconds of the measured process and of the broker between two samples."""

    def __init__(self, pid: int | None, broker_pid: int | None) -> None:
        self.pids = (pid, broker_pid)
        self.start: tuple[float | None, ...] = (None, None)

    def begin(self) -> None:
        self.start = tuple(_cpu_seconds(p) for p in self.pids)

    def end(self) -> dict[str, float | None]:
        now = [_cpu_seconds(p) for p in self.pids]
        out: dict[str, float | None] = {}
        for name, a, b in zip(("process", "broker"), self.start, now, strict=True):
            out[f"cpu_{name}_s"] = round(b - a, 2) if a is not None and b is not None else None
        return out


def _rate(n_end: int, first: tuple[float, int] | None, t_end: float, t_start: float
          ) -> dict[str, Any]:
    """Events after the first observation over the time since it; whole phase if too short.
    `window_events`: the events of that window (what a CPU reading over it paid for)."""
    if first is not None and t_end - first[0] > 1e-3 and n_end > first[1]:
        seconds, counted = t_end - first[0], n_end - first[1]
    else:
        seconds, counted = max(t_end - t_start, 1e-6), n_end
    return {"events": n_end, "seconds": round(seconds, 3),
            "events_per_s": round(counted / seconds, 1), "window_events": counted}


def _bounded(coro: Any, timeout: float, phase: str) -> Any:
    async def go() -> Any:
        return await asyncio.wait_for(coro, timeout)

    try:
        return asyncio.run(go())
    except TimeoutError as exc:
        raise BenchError(f"{phase}: not finished after {timeout:.0f}s") from exc


# -- Kafka helpers ----------------------------------------------------------------------------


def highwaters(bootstrap: str, topics: list[str], timeout: float = 15.0) -> Offsets:
    """End offset of every partition as a fetch reports it (ListOffsets is only a hint)."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaTimeoutError

    from streams.admin import fetched_end_offsets

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                      request_timeout_ms=10000)
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(c.partitions_for_topic(t)
                                                                      or ())]
        try:
            ends = fetched_end_offsets(c, tps, timeout)
        except KafkaTimeoutError as exc:
            raise BenchError(str(exc)) from exc
        return {(tp.topic, tp.partition): off for tp, off in ends.items()}
    finally:
        c.close()


def _committed(settings: Settings, group: str) -> Offsets:
    from streams.ops.replay import committed_offsets

    return committed_offsets(settings, group)


def _caught_up(committed: Offsets, ends: Offsets) -> bool:
    return all(committed.get(tp, 0) >= end for tp, end in ends.items() if end)



# -- a worker's metrics ---------------------------------------------------------------------


def _scrape(base: str, names: tuple[str, ...] = ()) -> str | None:
    """The worker's /metrics, or only the series `names` (a poll should not make a worker
    with thousands of employees encode all their gauges several times a second)."""
    query = "?" + "&".join(f"name[]={n}" for n in names) if names else ""
    status, body = _get(base + "/metrics" + query)
    return body.decode() if status == 200 else None


def _get(url: str) -> tuple[int, bytes]:
    """(HTTP status, body) of a GET; status 0 when the worker does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except (OSError, urllib.error.URLError):
        return 0, b""


def metric_sum(text: str, name: str) -> float:
    """The sum of every sample of `name` (all label sets) in Prometheus text."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")):
            total += float(line.rsplit(" ", 1)[1])
    return total



def _counted(text: str) -> int:
    return round(sum(metric_sum(text, n) for n in COUNTERS))



# -- a measured child process -----------------------------------------------------------------


class StatusFile:
    """A measured child's report to the bench: events seen, when it saw its first, and
    when the N-th (written atomically; the bench polls it)."""

    def __init__(self, path: Path, events: int) -> None:
        self.path, self.events = path, events
        self.st: dict[str, Any] = {"n": 0, "first": None, "n_first": 0, "end": None,
                                   "done": False}

    def write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.st))
        os.replace(tmp, self.path)

    def seen(self, k: int) -> None:
        st = self.st
        if st["first"] is None:
            st["first"], st["n_first"] = time.time(), k
        st["n"] += k
        if st["n"] >= self.events and not st["done"]:
            st["end"], st["done"] = time.time(), True
            self.write()


def status_child(run: _Run, label: str, name: str, args: list[str],
                 until: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Run `python -m <args> --status FILE` until its StatusFile says it saw N events (and
    then until `until()` holds, if given): its rate from its first event, its peak RSS,
    malloc and CPU (and the broker's). The child runs on the malloc our worker picks
    (KPI_ALLOCATOR): the same for every process compared."""
    cfg = run.cfg
    status = run.dir / f"{name}.status.json"
    log_path = run.dir / f"{name}.log"
    env = allocator_env(Settings().allocator, os.environ) or dict(os.environ)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", *args, "--status", str(status)],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
    cpu = _Cpu(proc.pid, run.broker_pid)
    t_start = time.time()
    try:
        st = _await_status(proc, status, cpu, label, log_path, cfg)
        if until is not None:
            st["end"] = _await(until, proc, label, log_path, cfg.timeout)
        rss = _proc_status(proc.pid, "VmHWM")
        allocator = allocator_in_use(f"/proc/{proc.pid}/maps")
        cpu_used = cpu.end()
    finally:
        _stop(proc)
    first = (float(st["first"]), int(st["n_first"]))
    return {**_rate(int(st["n"]), first, float(st["end"]), t_start), "peak_rss_bytes": rss,
            "allocator": allocator, **cpu_used}


def _await_status(proc: subprocess.Popen[bytes], status: Path, cpu: _Cpu, label: str,
                  log_path: Path, cfg: BenchConfig) -> dict[str, Any]:
    deadline = time.monotonic() + cfg.timeout
    st: dict[str, Any] = {}
    began = False
    with Meter(label, cfg.events, cfg.interactive) as m:
        while True:
            if proc.poll() is not None:
                raise BenchError(f"{label} exited with {proc.returncode} (log: {log_path})")
            try:
                st = json.loads(status.read_text())
            except (OSError, ValueError):
                st = {}
            if st.get("first") and not began:
                cpu.begin()
                began = True
            m.update(int(st.get("n", 0)))
            if st.get("done"):
                return st
            if time.monotonic() > deadline:
                raise BenchError(f"{label}: {st.get('n', 0)}/{cfg.events} events after "
                                 f"{cfg.timeout:.0f}s (log: {log_path})")
            time.sleep(0.25)


def _await(until: Callable[[], bool], proc: subprocess.Popen[bytes], label: str,
           log_path: Path, timeout: float) -> float:
    """When `until()` first held (polled every 0.1 s while the child lives)."""
    deadline = time.monotonic() + timeout
    while not until():
        if proc.poll() is not None:
            raise BenchError(f"{label} exited with {proc.returncode} (log: {log_path})")
        if time.monotonic() > deadline:
            raise BenchError(f"{label}: not committed after {timeout:.0f}s (log: {log_path})")
        time.sleep(0.1)
    return time.time()
