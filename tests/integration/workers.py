"""Real worker processes for integration tests: `kpi worker` in a subprocess, over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from streams.admin import create_topics
from streams.api.auth import TokenStore
from streams.devtools.broker import EmbeddedBroker, free_port
from streams.settings import Settings


@dataclass
class HttpResult:
    status: int
    body: Any


def http_get(url: str, timeout: float = 10.0) -> HttpResult:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            raw = resp.read()
            ctype = resp.headers.get("Content-Type", "")
            return HttpResult(resp.status, json.loads(raw) if "json" in ctype else raw.decode())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return HttpResult(exc.code, json.loads(raw))
        except ValueError:
            return HttpResult(exc.code, raw.decode(errors="replace"))


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.25,
             what: str = "condition") -> Any:
    """Poll until predicate() is truthy; a generous timeout, never a speed assertion."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (OSError, urllib.error.URLError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@dataclass
class WorkerProc:
    broker: EmbeddedBroker
    prefix: str
    data_dir: Path
    web_port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    args: list[str] = field(default_factory=list)  # after `kpi worker`

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KPI_BROKERS": self.broker.bootstrap,
            "KPI_TOPIC_PREFIX": self.prefix,
            "KPI_DATA_DIR": str(self.data_dir),
            "KPI_WEB_PORT": str(self.web_port),
            "KPI_SESSION_TIMEOUT": "6",
            "KPI_PARTITIONS": "2",
            "KPI_AUTH_ENABLED": "false",
            **self.extra_env,
        }

    def start(self, wait_healthy: bool = True) -> WorkerProc:
        log = open(self.log_path or os.devnull, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", *self.args], env=self.env(),
            stdout=log, stderr=subprocess.STDOUT,
        )
        if wait_healthy:
            try:
                self.wait_healthy()
            except BaseException:
                self.stop(signal.SIGKILL)  # never leak a half-started worker
                raise
        return self

    def wait_healthy(self, timeout: float = 90.0) -> None:
        def ok() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}; "
                                     f"log: {self.log_path}")
            return http_get(f"{self.base}/health", 2.0).status == 200
        wait_for(ok, timeout, what="worker /health 200")

    def get(self, path: str) -> HttpResult:
        return http_get(self.base + path)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}."


def settings_for(broker: EmbeddedBroker, prefix: str, **over: Any) -> Settings:
    return Settings(brokers=broker.bootstrap, topic_prefix=prefix, partitions=2, **over)


def fresh_prefix(broker: EmbeddedBroker) -> str:
    """A topic prefix of this test's own, its topics created."""
    prefix = unique_prefix()
    create_topics(settings_for(broker, prefix))
    return prefix


def produce(broker: EmbeddedBroker, prefix: str, events: Iterable[dict[str, Any]]) -> int:
    """Publish input events as on the wire (topic and key from the registry)."""
    from schemas.topics import topic_for_type

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=2)
    n = 0
    for ev in events:
        spec = topic_for_type(ev["type"])
        key = ev[spec.key_field].encode() if spec.key_field else None
        producer.send(prefix + spec.name, key=key, value=json.dumps(ev).encode())
        n += 1
    producer.flush()
    producer.close()
    return n


def produce_raw(broker: EmbeddedBroker, topic: str, key: bytes | None, value: bytes) -> None:
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text, whatever the label order; None if absent."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def events_counted(worker: WorkerProc) -> float:
    """Accepted events the worker has counted (kpi_events_total over every label)."""
    text = worker.get("/metrics").body
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("kpi_events_total{"))


def role_tokens(store: TokenStore) -> dict[str, str | None]:
    """A token per role over departments d-1 and d-2 (the employee is e-1), and none."""
    return {
        "employee": store.add("employee", employee_id="e-1")[0],
        "manager_d1": store.add("manager", departments=["d-1"])[0],
        "manager_d2": store.add("manager", departments=["d-2"])[0],
        "operations": store.add("operations")[0],
        "metrics": store.add("metrics")[0],
        "none": None,
    }


def latest_snapshots(s: Settings) -> dict[tuple[str, str], dict[str, Any]]:
    """The latest kpi-employee snapshot of each (employee, period) (one partition per key)."""
    from streams.ops.replay import read_all

    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for _, value in read_all(s, s.topic("kpi-employee")):
        if value:
            snap = json.loads(value)
            latest[(snap["employee_id"], snap["period"])] = snap
    return latest
